"""Rank classification with the real EncoderDecoderModel (tiny random fp32 T5).

Checks: scores equal an independent per-option computation from the model's logits; encode-once
equals pair-by-pair scoring; results do not depend on batch size, padding or option order;
row regrouping; reading a real seqio rank task.
"""

import jax
import numpy as np
import pytest

from evals import batching, eval_mesh
from evals import rank_classification as rc
from flan_trainer.models import model_api
from flan_trainer.models.config import TransformerConfig

TINY = TransformerConfig(
    vocab_size=64, emb_dim=32, num_heads=2, head_dim=8, mlp_dim=64,
    num_encoder_layers=2, num_decoder_layers=2, dtype="float32",
)
TINY_MODULE = model_api.EncoderDecoderModel(TINY).module
ONE = eval_mesh.EvalMesh.single_device()  # the unsharded path; tests/test_evals_sharded.py covers meshes


@pytest.fixture(scope="module")
def model_and_params():
    model = model_api.EncoderDecoderModel(TINY)
    shapes = {"encoder_input_tokens": (1, 8), "decoder_input_tokens": (1, 4)}
    params = model.get_initial_variables(jax.random.PRNGKey(0), shapes)["params"]
    return model, params


def _examples(n=7, seed=0):
    # Prompts <= 15 tokens and options <= 13 tokens: one length bucket, so few compiles.
    rng = np.random.default_rng(seed)
    out = []
    for e in range(n):
        prompt = np.append(rng.integers(3, 64, rng.integers(3, 15)), 1).astype(np.int32)
        k = int(rng.integers(2, 5))  # mixed option counts, so batches pad K
        options = tuple(np.append(rng.integers(3, 64, rng.integers(1, 13)), 1).astype(np.int32) for _ in range(k))
        out.append(rc.RankExample(e, prompt, options, gold=(int(rng.integers(k)),)))
    return out


@jax.jit
def _logits(params, enc, dec_in, dec_tgt):
    return TINY_MODULE.apply({"params": params}, enc, dec_in, dec_tgt, enable_dropout=False)


def _reference_scores(params, ex):
    """Independent check: raw module logits per (prompt, option), numpy log-softmax, sum incl. EOS."""
    scores = []
    for opt in ex.options:
        enc = np.zeros((1, 16), np.int32)
        enc[0, : len(ex.inputs)] = ex.inputs
        tgt = np.zeros((1, 16), np.int32)
        tgt[0, : len(opt)] = opt
        logits = np.asarray(_logits(params, enc, batching.shift_right(tgt), tgt)[0], np.float64)
        logp = logits - logits.max(-1, keepdims=True)
        logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
        scores.append(float(np.sum(logp[np.arange(len(opt)), opt])))
    return np.array(scores)


def test_scores_match_independent_forward_pass(model_and_params):
    model, params = model_and_params
    examples = _examples(4)
    result = rc.rank_examples(model, params, examples, batch_size=3, mesh=ONE)
    for ex, got in zip(examples, result.scores, strict=True):
        np.testing.assert_allclose(got, _reference_scores(params, ex), rtol=1e-5, atol=1e-5)
    for s, n, ex in zip(result.scores, result.normalized_scores, examples, strict=True):
        np.testing.assert_allclose(n, s / np.array([len(o) for o in ex.options]))
    assert result.predictions == [int(np.argmax(s)) for s in result.scores]


def test_encode_once_equals_pairwise(model_and_params):
    model, params = model_and_params
    examples = _examples(6, seed=1)
    once = rc.score_options_encode_once(model, params, examples, batch_size=4, mesh=ONE)
    pairs = rc.score_options_pairwise(model, params, examples, batch_size=5, mesh=ONE)
    for a, b in zip(once, pairs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_batch_size_and_option_order_invariance(model_and_params):
    model, params = model_and_params
    examples = _examples(7, seed=2)
    base = rc.rank_examples(model, params, examples, batch_size=1, mesh=ONE)
    for bs in (3, 8):
        other = rc.rank_examples(model, params, examples, batch_size=bs, mesh=ONE)
        assert other.predictions == base.predictions
        for a, b in zip(base.scores, other.scores, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    rng = np.random.default_rng(3)
    perms = [rng.permutation(len(ex.options)) for ex in examples]
    shuffled = [rc.RankExample(ex.example_index, ex.inputs, tuple(ex.options[i] for i in p))
                for ex, p in zip(examples, perms, strict=True)]
    got = rc.rank_examples(model, params, shuffled, batch_size=3, mesh=ONE)
    for a, b, p in zip(base.scores, got.scores, perms, strict=True):
        np.testing.assert_allclose(a[p], b, rtol=1e-5, atol=1e-5)
    # the same winner (mapped back through the permutation), ties aside
    assert [int(p[g]) for g, p in zip(got.predictions, perms, strict=True)] == base.predictions


def test_ties_go_to_lowest_index():
    assert rc.argmax_lowest(np.array([-1.0, -0.5, -0.5])) == 1


def test_group_rank_rows_and_errors():
    def row(e, k, n, correct):
        return {"idx": np.array([e, k]), "inputs": np.array([5, 1]), "targets": np.array([7 + k, 1]),
                "is_correct": correct, "num_options": n, "targets_pretokenized": f"o{k}".encode()}

    rows = [row(0, 1, 2, True), row(0, 0, 2, False), row(1, 0, 3, False), row(1, 1, 3, False),
            row(1, 2, 3, True), row(2, 0, 2, True), row(2, 1, 2, False)]
    got = rc.group_rank_rows(rows)
    assert [e.example_index for e in got] == [0, 1, 2]
    assert got[0].gold == (1,) and [int(o[0]) for o in got[0].options] == [7, 8]
    assert got[1].gold == (2,) and got[1].option_texts == ("o0", "o1", "o2")
    assert len(rc.group_rank_rows(rows, max_examples=2)) == 2
    with pytest.raises(ValueError, match="do not cover"):
        rc.group_rank_rows(rows[:3])
    with pytest.raises(ValueError, match="duplicate"):
        rc.group_rank_rows([rows[0], rows[0]])
    with pytest.raises(ValueError, match="no options"):
        rc.RankExample(0, np.array([1]), ())
    with pytest.raises(ValueError, match="batch_size"):
        rc.score_options_encode_once(None, None, [], 0)


def test_bucket_length():
    assert [batching.bucket_length(n) for n in (0, 1, 16, 17, 100, 512, 513)] == [16, 16, 16, 32, 128, 512, 1024]
    assert batching.bucket_length(5, minimum=4) == 8
