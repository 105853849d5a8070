"""Generation evaluation with the real EncoderDecoderModel (tiny random fp32 T5, byte vocabulary)."""

import jax
import numpy as np
import pytest
import seqio

from evals import batching, eval_mesh, generation, metrics
from flan_trainer.models import model_api
from flan_trainer.models.config import TransformerConfig

VOCAB = seqio.ByteVocabulary()
TINY = TransformerConfig(
    vocab_size=VOCAB.vocab_size, emb_dim=32, num_heads=2, head_dim=8, mlp_dim=64,
    num_encoder_layers=1, num_decoder_layers=2, dtype="float32",
)
DECODE_LEN = 8
ONE = eval_mesh.EvalMesh.single_device()  # the unsharded path; tests/test_evals_sharded.py covers meshes


@pytest.fixture(scope="module")
def model_and_params():
    model = model_api.EncoderDecoderModel(TINY)
    shapes = {"encoder_input_tokens": (1, 8), "decoder_input_tokens": (1, 4)}
    return model, model.get_initial_variables(jax.random.PRNGKey(1), shapes)["params"]


def _examples(n=6, seed=0):
    rng = np.random.default_rng(seed)
    words = ["cat", "dog", "a bird", "two", "red fox"]
    out = []
    for i in range(n):
        text = " ".join(rng.choice(words, size=rng.integers(1, 3)))
        ids = np.array(VOCAB.encode(text) + [1], np.int32)
        out.append(generation.GenExample(i, ids, (text, "The " + text), target_length=5, row={"inputs": ids}))
    return out


def _greedy_reference(model, params, prompt, length):
    """Independent greedy loop: re-run the teacher-forced model on the growing prefix, unpadded."""
    @jax.jit
    def logits_fn(enc, dec_in, dec_tgt):
        return model.module.apply({"params": params}, enc, dec_in, dec_tgt, enable_dropout=False)

    out = []
    for _ in range(length):
        dec_in = np.array([[0, *out] + [0] * (length - len(out) - 1)], np.int32)
        # Targets only mark real positions (non-zero) for the mask; the next one is a placeholder.
        dec_tgt = np.array([[*out, 2] + [0] * (length - len(out) - 1)], np.int32)
        logits = np.asarray(logits_fn(prompt[None], dec_in, dec_tgt))
        token = int(np.argmax(logits[0, len(out)]))
        out.append(token)
        if token == 1:
            break
    return generation.cut_at_eos(np.array(out))


def test_greedy_matches_step_by_step_reference(model_and_params):
    model, params = model_and_params
    examples = _examples(3)
    got = generation.decode_examples(model, params, examples, batch_size=2, max_decode_length=DECODE_LEN, mesh=ONE)
    for ex, ids in zip(examples, got, strict=True):
        np.testing.assert_array_equal(ids, _greedy_reference(model, params, ex.inputs, DECODE_LEN))


@pytest.mark.parametrize("method", ["greedy", "beam"])
def test_decoding_is_batch_size_invariant(model_and_params, method):
    model, params = model_and_params
    examples = _examples(4, seed=3)
    sizes = (1, 3, 8) if method == "greedy" else (1, 3)  # beam compiles are the slow part
    runs = [
        generation.decode_examples(model, params, examples, bs, max_decode_length=DECODE_LEN, method=method,
                                   num_beams=2, mesh=ONE)
        for bs in sizes
    ]
    for other in runs[1:]:
        for a, b in zip(runs[0], other, strict=True):
            np.testing.assert_array_equal(a, b)


def test_evaluate_generation_scores_postprocessed_text(model_and_params):
    model, params = model_and_params
    examples = _examples(4, seed=5)

    def upper(text, example=None, is_target=False):  # a task postprocessor: sees every string
        assert example is not None
        return text.upper()

    res = generation.evaluate_generation(model, params, examples, VOCAB, ["exact_match", "bleu"], 3,
                                         postprocess_fn=upper, max_decode_length=DECODE_LEN, mesh=ONE)
    assert res.texts == [generation.detokenize(VOCAB, ids) for ids in res.token_ids]
    assert res.predictions == [t.upper() for t in res.texts]
    assert res.targets == [[r.upper() for r in e.references] for e in examples]
    expected = metrics.compute_metrics(["exact_match", "bleu"], res.targets, res.predictions)
    assert res.scores == pytest.approx(expected)
    # References equal to the model's own output must score 100: checks order and detokenisation.
    echo = [generation.GenExample(e.example_index, e.inputs, (t,), 5)
            for e, t in zip(examples, res.texts, strict=True)]
    again = generation.evaluate_generation(model, params, echo, VOCAB, ["exact_match"], 2,
                                           max_decode_length=DECODE_LEN, mesh=ONE)
    assert again.scores["exact_match"] == 100.0


def test_rows_to_examples_and_helpers():
    rows = [
        {"inputs": np.array([5, 1]), "targets": np.array([6, 7, 1]), "answers": np.array([b"x", b"y"])},
        {"inputs": np.array([5, 1]), "targets": np.array([6, 1]), "targets_pretokenized": b"z"},
    ]
    got = generation.rows_to_examples(rows)
    assert got[0].references == ("x", "y") and got[0].target_length == 3
    assert got[1].references == ("z",)
    assert len(generation.rows_to_examples(rows, max_examples=1)) == 1
    with pytest.raises(ValueError, match="answers"):
        generation.rows_to_examples([{"inputs": np.array([1]), "targets": np.array([1])}])
    np.testing.assert_array_equal(generation.cut_at_eos(np.array([7, 0, 8, 1, 9, 0])), [7, 8])
    batch = batching.prefix_lm_prompt_batch([np.array([4, 5, 1])], 2, 8)
    np.testing.assert_array_equal(batch["decoder_input_tokens"][0], [0, 4, 5, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(batch["decoder_causal_attention"][1], [1, 1, 1, 1, 0, 0, 0, 0])
    with pytest.raises(ValueError, match="greedy"):
        generation.decode_examples(None, None, [], 1, max_decode_length=4, method="temperature")
