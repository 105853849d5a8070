"""Model API: loss normalisation, microbatch exactness, scoring, option scoring invariance."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flan_trainer.models import EncoderDecoderModel, TransformerConfig
from flan_trainer.models.model_api import shift_right

CFG = TransformerConfig(
    vocab_size=80, emb_dim=32, num_heads=2, num_encoder_layers=2, num_decoder_layers=2,
    head_dim=16, mlp_dim=48, dtype="float32",
)


@pytest.fixture(scope="module")
def params():
    shapes = {"encoder_input_tokens": (2, 8), "decoder_input_tokens": (2, 6)}
    return EncoderDecoderModel(CFG).get_initial_variables(jax.random.key(0), shapes)["params"]


def _packed_batch(seed=0):
    """Four rows; rows 0 and 2 hold two packed examples each, with some zero loss weights."""
    rng = np.random.default_rng(seed)
    tgt = rng.integers(2, 80, (4, 6)).astype(np.int32)
    seg = np.array([[1, 1, 2, 2, 2, 0], [1, 1, 1, 1, 0, 0], [1, 2, 2, 2, 2, 2], [1, 1, 1, 1, 1, 1]], np.int32)
    tgt[seg == 0] = 0
    dec_in = np.where(np.c_[np.ones((4, 1), bool), np.diff(seg) != 0], 0, np.c_[np.zeros((4, 1), np.int32), tgt[:, :-1]])
    weights = (tgt > 0).astype(np.float32)
    weights[3, :2] = 0.0
    enc = rng.integers(2, 80, (4, 8)).astype(np.int32)
    enc_seg = np.array([[1, 1, 1, 2, 2, 2, 0, 0], [1] * 5 + [0] * 3, [1, 1, 2, 2, 2, 2, 2, 2], [1] * 8], np.int32)
    enc[enc_seg == 0] = 0
    batch = dict(encoder_input_tokens=enc, decoder_input_tokens=dec_in, decoder_target_tokens=tgt,
                 decoder_loss_weights=weights, encoder_segment_ids=enc_seg, decoder_segment_ids=seg)
    return {k: jnp.asarray(v) for k, v in batch.items()}


def _rows(batch, sl):
    return {k: v[sl] for k, v in batch.items()}


def test_loss_denominator_modes():
    batch = _packed_batch()
    assert float(EncoderDecoderModel(CFG).loss_denominator(batch)) == 1.0
    assert float(EncoderDecoderModel(CFG, loss_normalizing_factor=233472.0).loss_denominator(batch)) == 233472.0
    tokens = EncoderDecoderModel(CFG, loss_normalizing_factor="NUM_REAL_TARGET_TOKENS")
    assert float(tokens.loss_denominator(batch)) == float(np.sum(batch["decoder_loss_weights"])) == 19.0
    per_seq = EncoderDecoderModel(CFG, loss_normalizing_factor="AVERAGE_PER_SEQUENCE")
    assert float(per_seq.loss_denominator(batch)) == 6.0  # 2 + 1 + 2 + 1 packed segments
    with pytest.raises(ValueError, match="loss_normalizing_factor"):
        EncoderDecoderModel(CFG, loss_normalizing_factor="PER_TOKEN")


@pytest.mark.parametrize(
    "factor",
    [None, 100.0, "NUM_REAL_TARGET_TOKENS", pytest.param("AVERAGE_PER_SEQUENCE", marks=pytest.mark.slow)],
)
def test_microbatches_with_global_normalizer_sum_to_full_batch(params, factor):
    model = EncoderDecoderModel(CFG, loss_normalizing_factor=factor)
    batch = _packed_batch()
    loss_fn = jax.jit(model.loss_fn)
    full_loss, full_metrics = loss_fn(params, batch, None)
    norm = model.loss_denominator(batch)
    parts = [loss_fn(params, _rows(batch, sl), None, norm) for sl in (slice(0, 1), slice(1, 4))]
    np.testing.assert_allclose(sum(float(p[0]) for p in parts), float(full_loss), rtol=1e-5)
    for name, value in full_metrics.items():
        np.testing.assert_allclose(sum(float(p[1][name]) for p in parts), float(value), rtol=1e-5, err_msg=name)
    if factor != "AVERAGE_PER_SEQUENCE":
        return  # gradients checked once, for the mode with per-sequence reweighting
    grad = jax.jit(jax.grad(lambda p, b, n: model.loss_fn(p, b, None, n)[0]))
    g_full = grad(params, batch, norm)
    g_parts = [grad(params, _rows(batch, sl), norm) for sl in (slice(0, 1), slice(1, 4))]
    summed = jax.tree_util.tree_map(lambda a, b: a + b, *g_parts)
    for a, b in zip(jax.tree_util.tree_leaves(summed), jax.tree_util.tree_leaves(g_full), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4)


def test_loss_values_follow_t5x_definitions(params):
    batch = _packed_batch()
    model = EncoderDecoderModel(CFG, z_loss=1e-2, loss_normalizing_factor="AVERAGE_PER_SEQUENCE")
    logits = model._logits(params, batch, None)
    logz = jax.nn.logsumexp(logits, -1)
    ce = logz - jnp.take_along_axis(logits, batch["decoder_target_tokens"][..., None], -1)[..., 0]
    w = np.asarray(batch["decoder_loss_weights"])
    seg = np.asarray(batch["decoder_segment_ids"])
    adj = np.zeros_like(w)
    for r in range(4):
        for s in set(seg[r]) - {0}:
            adj[r, seg[r] == s] = w[r, seg[r] == s] / w[r, seg[r] == s].sum()
    expected = np.sum((np.asarray(ce) + 1e-2 * np.asarray(logz) ** 2) * adj) / 6.0
    loss, metrics = jax.jit(model.loss_fn)(params, batch, None)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    np.testing.assert_allclose(float(metrics["z_loss"]), np.sum(1e-2 * np.asarray(logz) ** 2 * adj) / 6, rtol=1e-5)
    assert float(metrics["weight_sum"]) == 19.0 and float(metrics["num_sequences"]) == 6.0
    hits = np.sum(w * (np.argmax(np.asarray(logits), -1) == np.asarray(batch["decoder_target_tokens"])))
    assert float(metrics["correct"]) == hits


def test_all_zero_weights_give_zero_loss_not_nan(params):
    batch = _packed_batch()
    batch["decoder_loss_weights"] = jnp.zeros_like(batch["decoder_loss_weights"])
    model = EncoderDecoderModel(CFG, loss_normalizing_factor="AVERAGE_PER_SEQUENCE")
    loss, metrics = model.loss_fn(params, batch, None, normalizer=1.0)
    assert float(loss) == 0.0 and float(metrics["num_sequences"]) == 0.0


def _unpacked(seed, b=3, lin=7, lt=5):
    rng = np.random.default_rng(seed)
    enc = rng.integers(2, 80, (b, lin)).astype(np.int32)
    tgt = rng.integers(2, 80, (b, lt)).astype(np.int32)
    enc[0, 5:] = 0
    tgt[1, 3:] = 0
    tgt[:, -1] = np.where(tgt[:, -1] > 0, 1, 0)  # EOS
    return enc, tgt


def test_score_batch_is_minus_summed_cross_entropy(params):
    enc, tgt = _unpacked(1)
    model = EncoderDecoderModel(CFG, z_loss=0.5)
    batch = {"encoder_input_tokens": jnp.asarray(enc), "decoder_input_tokens": shift_right(jnp.asarray(tgt)),
             "decoder_target_tokens": jnp.asarray(tgt)}
    scores = jax.jit(model.score_batch)(params, batch)
    logp = jax.nn.log_softmax(jax.jit(model._logits)(params, batch, None))
    expected = np.sum(np.take_along_axis(np.asarray(logp), tgt[..., None], -1)[..., 0] * (tgt > 0), -1)
    np.testing.assert_allclose(scores, expected, rtol=1e-5)
    # z-loss never enters scores; the per-row loss with normalizer 1 and z_loss=0 is -score.
    ref = jax.jit(EncoderDecoderModel(CFG, z_loss=0.0).loss_fn)
    for r in range(3):
        loss, _ = ref(params, _rows(batch, slice(r, r + 1)), None)
        np.testing.assert_allclose(float(loss), -float(scores[r]), rtol=1e-5)


def _options(seed, b=3, k=4, lt=5):
    rng = np.random.default_rng(seed)
    opts = rng.integers(2, 80, (b, k, lt)).astype(np.int32)
    lengths = rng.integers(1, lt + 1, (b, k))
    opts[np.arange(lt)[None, None] >= lengths[..., None]] = 0
    opts[np.arange(lt)[None, None] == lengths[..., None] - 1] = 1
    return opts, (opts > 0).astype(np.float32)


def _expanded_scores(model, params, enc, opts, weights):
    b, k, lt = opts.shape
    tgt = jnp.asarray(opts.reshape(b * k, lt))
    batch = {"encoder_input_tokens": jnp.repeat(jnp.asarray(enc), k, 0), "decoder_input_tokens": shift_right(tgt),
             "decoder_target_tokens": tgt, "decoder_loss_weights": jnp.asarray(weights.reshape(b * k, lt))}
    return np.asarray(jax.jit(model.score_batch)(params, batch)).reshape(b, k)


def test_score_options_equals_score_batch_on_expanded_pairs(params):
    model = EncoderDecoderModel(CFG)
    enc, _ = _unpacked(2)
    opts, weights = _options(3)
    got = jax.jit(model.score_options)(params, jnp.asarray(enc), jnp.asarray(opts), jnp.asarray(weights))
    np.testing.assert_allclose(got, _expanded_scores(model, params, enc, opts, weights), atol=1e-5)


def test_score_options_invariant_to_batch_and_padding(params):
    model = EncoderDecoderModel(CFG)
    enc, _ = _unpacked(4)
    opts, weights = _options(5)
    score = jax.jit(model.score_options)
    base = np.asarray(score(params, jnp.asarray(enc), jnp.asarray(opts), jnp.asarray(weights)))
    # More input and target padding, and each row scored alone.
    enc_pad = np.pad(enc, ((0, 0), (0, 9)))
    opts_pad, w_pad = np.pad(opts, ((0, 0), (0, 0), (0, 6))), np.pad(weights, ((0, 0), (0, 0), (0, 6)))
    padded = score(params, jnp.asarray(enc_pad), jnp.asarray(opts_pad), jnp.asarray(w_pad))
    np.testing.assert_allclose(padded, base, atol=1e-5)
    for r in range(3):
        alone = score(params, jnp.asarray(enc[r:r + 1]), jnp.asarray(opts[r:r + 1]), jnp.asarray(weights[r:r + 1]))
        np.testing.assert_allclose(alone[0], base[r], atol=1e-5)
    with pytest.raises(ValueError, match="option_target_tokens"):
        model.score_options(params, jnp.asarray(enc), jnp.asarray(opts[:, 0]), jnp.asarray(weights[:, 0]))


def test_missing_features_are_named(params):
    with pytest.raises(KeyError, match="decoder_target_tokens"):
        EncoderDecoderModel(CFG).loss_fn(params, {"encoder_input_tokens": jnp.ones((1, 3), jnp.int32)}, None)
