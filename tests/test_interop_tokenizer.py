"""The T5 SentencePiece model tokenises the same through seqio and through an exported HF tokenizer."""

import random

import pytest

transformers = pytest.importorskip("transformers")
seqio = pytest.importorskip("seqio")

from flan_trainer.interop import hf_export  # noqa: E402

pytestmark = pytest.mark.interop

_WORDS = ("the quick brown fox jumps over lazy dog question answer premise hypothesis entailment "
          "translate English German: Paris 1999 3.14 don't it's co-operate naïve café über Zürich "
          "OPTIONS: - yes - no Q: A: (a) (b) $100 50% e-mail C++ #hashtag @user").split()


def _sentences(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = rng.choices(_WORDS, k=rng.randint(1, 18))
        text = " ".join(words)
        if rng.random() < 0.3:  # irregular whitespace and punctuation, as real prompts have
            text = text.replace(" ", rng.choice(["  ", " , ", "\n", ". "]), 2)
        out.append(text)
    return out


def test_exported_tokenizer_matches_seqio(spm_path, tmp_path):
    hf_export.write_tokenizer(tmp_path, spm_path)
    hf_tok = transformers.AutoTokenizer.from_pretrained(tmp_path)
    vocab = seqio.SentencePieceVocabulary(str(spm_path), extra_ids=100)  # T5's standard vocabulary
    assert len(hf_tok) == vocab.vocab_size  # 32000 pieces + 100 sentinels
    sentences = _sentences(300)
    mismatches = []
    for text in sentences:
        ours = list(vocab.encode(text))
        theirs = hf_tok(text, add_special_tokens=False)["input_ids"]
        if ours != theirs:
            mismatches.append((text, ours, theirs))
    assert not mismatches, f"{len(mismatches)} of {len(sentences)} differ, e.g. {mismatches[:2]}"
    # with special tokens HF appends EOS (id 1), as seqio's add_eos=True features do
    assert hf_tok("hello world")["input_ids"][-1] == 1
    assert hf_tok.convert_tokens_to_ids("<extra_id_0>") == vocab.vocab_size - 1
