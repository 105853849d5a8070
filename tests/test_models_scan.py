"""Scanned layers, rematerialisation and the cross-attention decode cache change no numbers.

Every comparison converts the unscanned parameters with ``layer_stacking`` and checks the
scanned/remat/cached model against the plain one (fp32, tiny sizes).
"""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flan_trainer import decoding, layer_stacking
from flan_trainer.models import layers as L
from flan_trainer.models import losses
from flan_trainer.models.config import TransformerConfig
from flan_trainer.models.model_api import DecoderOnlyModel, EncoderDecoderModel
from flan_trainer.models.t5 import cache_batch_axes

CFG = TransformerConfig(
    vocab_size=96, emb_dim=32, num_heads=2, num_encoder_layers=2, num_decoder_layers=3,
    head_dim=16, mlp_dim=48, dtype="float32",
)
DEC_CFG = dataclasses.replace(CFG, decoder_only=True, num_encoder_layers=0, logits_via_embedding=True)
SHAPES = {"encoder_input_tokens": (2, 8), "decoder_input_tokens": (2, 6)}


def _batch() -> dict[str, jnp.ndarray]:
    return {
        "encoder_input_tokens": jnp.array([[3, 4, 5, 6, 1, 0, 0, 0], [9, 8, 7, 10, 11, 12, 1, 0]]),
        "decoder_input_tokens": jnp.array([[0, 7, 8, 9, 0, 0], [0, 20, 21, 22, 23, 0]]),
        "decoder_target_tokens": jnp.array([[7, 8, 9, 1, 0, 0], [20, 21, 22, 23, 1, 0]]),
        # Prefix-LM rows for the decoder-only model: the first tokens are the bidirectional prompt.
        "decoder_causal_attention": jnp.array([[1, 1, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0]]),
    }


@pytest.fixture(scope="module")
def encdec_params():
    model = EncoderDecoderModel(CFG)
    return nn.unbox(model.get_initial_variables(jax.random.key(0), SHAPES)["params"])


@pytest.fixture(scope="module")
def deconly_params():
    model = DecoderOnlyModel(DEC_CFG, inputs_bidirectional_attention=True)
    return nn.unbox(model.get_initial_variables(jax.random.key(1), {"decoder_input_tokens": (2, 6)})["params"])


@pytest.fixture(scope="module")
def encdec_reference(encdec_params):
    return _loss_and_grads(EncoderDecoderModel(CFG), encdec_params)


def _loss_and_grads(model, params):
    return jax.jit(jax.value_and_grad(lambda p: model.loss_fn(p, _batch(), None)[0]))(params)


def _assert_trees_close(got, want, rtol=1e-5, atol=2e-6):
    # atol: fp32 reassociation noise (remat recomputes, scan fuses differently) on O(1) gradients.
    assert jax.tree.structure(got) == jax.tree.structure(want)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol), got, want)


def test_stacking_round_trip_and_tree(encdec_params):
    stacked = layer_stacking.stack_layers(encdec_params)
    assert "layers" in stacked["encoder"] and "layers_0" not in stacked["encoder"]
    assert stacked["decoder"]["layers"]["mlp"]["wo"]["kernel"].shape == (3, 48, 32)
    assert stacked["decoder"]["relpos_bias"]["rel_embedding"].shape == (2, 32)  # shared, not stacked
    back = layer_stacking.unstack_layers(stacked)
    jax.tree.map(np.testing.assert_array_equal, back, encdec_params)
    # The scanned model's own tree has exactly the stacked shapes.
    model = EncoderDecoderModel(dataclasses.replace(CFG, scan_layers=True))
    abstract = jax.eval_shape(lambda: nn.unbox(model.get_initial_variables(jax.random.key(0), SHAPES)["params"]))
    assert jax.tree.map(np.shape, abstract) == jax.tree.map(np.shape, stacked)
    # The stacked axis is named 'layers' (replicated by the standard rules).
    boxed = jax.eval_shape(lambda: model.get_initial_variables(jax.random.key(0), SHAPES)["params"])
    spec = nn.get_partition_spec(boxed)["encoder"]["layers"]["attention"]["query"]["kernel"]
    assert tuple(spec) == ("layers", "embed", "joined_kv")


@pytest.mark.parametrize(
    "scan,remat", [(False, "full"), (True, "none"), (True, "minimal"), (True, "full")]
)
def test_encdec_scan_and_remat_keep_loss_and_grads(encdec_params, encdec_reference, scan, remat):
    ref_loss, ref_grads = encdec_reference
    model = EncoderDecoderModel(dataclasses.replace(CFG, scan_layers=scan, remat_policy=remat))
    params = layer_stacking.stack_layers(encdec_params) if scan else encdec_params
    loss, grads = _loss_and_grads(model, params)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
    _assert_trees_close(grads, layer_stacking.stack_layers(ref_grads) if scan else ref_grads)


def test_decoder_only_scan_with_remat_keeps_loss_and_grads(deconly_params):
    ref = DecoderOnlyModel(DEC_CFG, inputs_bidirectional_attention=True)
    ref_loss, ref_grads = _loss_and_grads(ref, deconly_params)
    cfg = dataclasses.replace(DEC_CFG, scan_layers=True, remat_policy="minimal")
    loss, grads = _loss_and_grads(
        DecoderOnlyModel(cfg, inputs_bidirectional_attention=True), layer_stacking.stack_layers(deconly_params)
    )
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
    _assert_trees_close(grads, layer_stacking.stack_layers(ref_grads))


def _decode(model, params, method):
    fn = jax.jit(lambda p, b: model.predict_batch(p, b, method=method, max_decode_length=6, num_beams=3))
    return np.asarray(fn(params, _batch()))


@pytest.mark.parametrize("method", ["greedy", "beam"])
def test_encdec_decoding_same_scanned_and_with_cross_attention_cache(encdec_params, method):
    want = _decode(EncoderDecoderModel(dataclasses.replace(CFG, cache_cross_attention=False)), encdec_params, method)
    stacked = layer_stacking.stack_layers(encdec_params)
    # Every combination for greedy; beam (slow to compile) checks the one furthest from the reference.
    combos = [(False, True), (True, True), (True, False)] if method == "greedy" else [(True, True)]
    for scan, cached in combos:
        cfg = dataclasses.replace(CFG, scan_layers=scan, cache_cross_attention=cached)
        got = _decode(EncoderDecoderModel(cfg), stacked if scan else encdec_params, method)
        np.testing.assert_array_equal(got, want, err_msg=f"scan={scan} cache_cross_attention={cached}")


def test_cross_attention_cache_is_filled_once_per_input(encdec_params):
    """The cache holds the encoder's keys/values ([batch, input_len, heads, head_dim] per layer)."""
    model = EncoderDecoderModel(dataclasses.replace(CFG, scan_layers=True))
    stacked = layer_stacking.stack_layers(encdec_params)
    b = _batch()
    encoded = model.encode(stacked, b["encoder_input_tokens"])
    _, new = model.module.apply(
        {"params": stacked}, encoded, b["encoder_input_tokens"], jnp.zeros((2, 4), jnp.int32),
        decode=True, mutable=["cache"], method="decode",
    )
    cross = new["cache"]["decoder"]["layers"]["encoder_decoder_attention"]
    assert cross["cached_cross_key"].shape == (3, 2, 8, 2, 16)  # [layers, batch, input_len, heads, head_dim]
    # Beam search keeps that one copy per input row: expanding to beams repeats the self-attention
    # cache (batch axis 1 under the scan) but not the cross keys/values, which the beams share.
    wide = decoding.expand_to_beams(new["cache"], 4, cache_batch_axes(new["cache"]))
    wide_cross = wide["decoder"]["layers"]["encoder_decoder_attention"]
    assert wide_cross["cached_cross_key"].shape == (3, 2, 8, 2, 16)
    assert wide["decoder"]["layers"]["self_attention"]["cached_key"].shape[:2] == (3, 8)
    # Later steps need no encoder output at all.
    with pytest.raises(ValueError, match="needs `encoded`"):
        EncoderDecoderModel(CFG).module.apply(
            {"params": encdec_params}, None, b["encoder_input_tokens"], b["decoder_input_tokens"],
            b["decoder_target_tokens"], method="decode",
        )


@pytest.mark.parametrize("method", ["greedy", "beam"])
def test_decoder_only_decoding_same_scanned(deconly_params, method):
    ref = DecoderOnlyModel(DEC_CFG, inputs_bidirectional_attention=True)
    want = _decode(ref, deconly_params, method)
    scanned = DecoderOnlyModel(dataclasses.replace(DEC_CFG, scan_layers=True), inputs_bidirectional_attention=True)
    np.testing.assert_array_equal(_decode(scanned, layer_stacking.stack_layers(deconly_params), method), want)


def test_attention_impl_choice_and_jax_kernel_conventions():
    assert L.choose_attention_impl("auto", jnp.bfloat16, 64, dropout=False, decode=False) == (
        "cudnn" if jax.default_backend() == "gpu" else "xla"
    )
    assert L.choose_attention_impl("auto", jnp.float32, 64, dropout=False, decode=False) == "xla"
    if jax.default_backend() != "gpu":
        with pytest.raises(ValueError, match="needs a GPU backend"):
            L.choose_attention_impl("cudnn", jnp.bfloat16, 64, dropout=False, decode=False)
    with pytest.raises(ValueError, match="attention_impl='flash' is not valid"):
        dataclasses.replace(CFG, attention_impl="flash")
    with pytest.raises(ValueError, match="remat_policy='some' is not valid"):
        dataclasses.replace(CFG, remat_policy="some")
    # The fused path's conventions (no 1/sqrt(d) scale, additive bias) match the XLA einsum path;
    # checked with jax's own XLA implementation of the same call.
    k1, k2, k3, k4 = jax.random.split(jax.random.key(0), 4)
    q, k, v = (jax.random.normal(r, (2, 5, 2, 8)) for r in (k1, k2, k3))
    bias = jax.random.normal(k4, (2, 2, 5, 5)) + L.mask_to_bias(L.causal_mask(5), jnp.float32)
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) + bias
    want = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(logits, axis=-1), v)
    np.testing.assert_allclose(L.fused_attention(q, k, v, bias, "xla"), want, rtol=1e-5, atol=1e-6)


def _trained_states(mesh, steps: int = 3) -> dict:
    """Train states (scan_layers False/True, same initial params) after ``steps`` Adafactor steps.

    T5X settings (clipping, parameter scale, decay) with min_dim_size_to_factor=2, so the tiny
    kernels get factored statistics and a stacked [layers, embed] scale would be factored too if
    the layer axis counted as a dimension (it must not: per layer it is a vector).
    """
    from flan_trainer import optimizers, partitioning, train_step

    tx = optimizers.adafactor(1e-2, min_dim_size_to_factor=2)
    rules = partitioning.standard_logical_axis_rules()
    shapes = dict(SHAPES, decoder_target_tokens=(2, 6))
    batch = {k: np.asarray(v) for k, v in _batch().items() if k != "decoder_causal_attention"}
    batch["decoder_loss_weights"] = (batch["decoder_target_tokens"] > 0).astype(np.float32)
    states, init_params = {}, None
    for scan in (False, True):
        model = EncoderDecoderModel(dataclasses.replace(CFG, scan_layers=scan))
        state, shardings = partitioning.init_sharded_state(model, tx, jax.random.key(0), shapes, mesh, rules)
        if scan:  # nn.scan draws other random numbers: start from the unscanned run's params
            state = jax.device_put(state.replace(params=layer_stacking.stack_layers(init_params)), shardings)
        init_params = jax.device_get(state.params)
        step = train_step.make_train_step(model, tx, mesh, shardings, rules)
        for _ in range(steps):
            state, _ = step(state, partitioning.shard_batch(batch, mesh), None)
        states[scan] = state
    return states


@pytest.mark.slow
def test_scanned_training_matches_unscanned_and_checkpoints_restore_across_layouts(tmp_path):
    from flan_trainer import checkpoints, partitioning

    mesh = partitioning.make_mesh(mesh_shape=(2, 1), devices=jax.devices()[:2])
    states = _trained_states(mesh)
    # Adafactor steps each layer of a stacked kernel as the unscanned run does (per-layer factoring,
    # clipping, parameter scale), so params AND optimizer state are the unscanned ones stacked.
    got, want = jax.device_get(states[True]), layer_stacking.stack_layers(jax.device_get(states[False]))
    assert jax.tree.structure(got) == jax.tree.structure(want) and int(got.step) == 3
    _assert_trees_close(got.params, want.params, rtol=1e-5, atol=1e-6)
    _assert_trees_close(got.opt_state, want.opt_state, rtol=1e-4, atol=1e-9)
    assert got.opt_state.inner_state[0].v["decoder"]["layers"]["pre_mlp_layer_norm"]["scale"].shape == (3, 32)
    for saved_scan, target_scan in [(False, True), (True, False)]:
        saved, target = states[saved_scan], states[target_scan]
        with checkpoints.CheckpointManager(tmp_path / f"from_scan_{saved_scan}", period=1) as mgr:
            mgr.save(1, saved)
            restored, _ = mgr.restore(None, checkpoints.abstract_like(target))
            params_only = mgr.restore_params_only(None, checkpoints.abstract_like(target.params))
        convert = layer_stacking.stack_layers if target_scan else layer_stacking.unstack_layers
        want = jax.device_get(convert(jax.device_get(saved)))
        assert jax.tree.structure(restored) == jax.tree.structure(target)
        jax.tree.map(np.testing.assert_array_equal, jax.device_get(restored), want)
        jax.tree.map(np.testing.assert_array_equal, jax.device_get(params_only), want.params)
        # Placed like the target (the stacked axis replicated, the rest by the standard rules).
        jax.tree.map(lambda a, b: a.sharding.is_equivalent_to(b.sharding, a.ndim) or pytest.fail(str(a.sharding)),
                     restored.params, target.params)
        if saved_scan:  # the interop reader of our Orbax checkpoints sees the per-layer tree
            from flan_trainer import interop

            imported = interop.import_t5x_orbax(tmp_path / f"from_scan_{saved_scan}")
            assert not imported.config.scan_layers
            jax.tree.map(np.testing.assert_array_equal, jax.device_get(imported.params), want.params)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_cross_entropy_backward_matches_autodiff(dtype):
    """The hand-written backward (keeps only logits and log Z) equals autodiff of the plain formula."""

    def plain(logits, targets, z_loss):
        logits = logits.astype(jnp.float32)
        log_z = jax.nn.logsumexp(logits, axis=-1)
        target_logit = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
        return log_z - target_logit + z_loss * log_z**2, z_loss * log_z**2

    k1, k2, k3 = jax.random.split(jax.random.key(3), 3)
    logits = (3.0 * jax.random.normal(k1, (3, 5, 11))).astype(dtype)
    targets = jax.random.randint(k2, (3, 5), 0, 11)
    weights = jax.random.uniform(k3, (3, 5))

    def objective(fn):
        def f(x):
            loss, z = fn(x, targets, 1e-2)
            return jnp.sum(loss * weights) + 3.0 * jnp.sum(z * weights)  # both outputs get cotangents
        return f

    got, want = jax.grad(objective(losses.cross_entropy_with_logits))(logits), jax.grad(objective(plain))(logits)
    assert got.dtype == dtype  # the gradient comes back in the logits' dtype
    np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(want, np.float32), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        losses.cross_entropy_with_logits(logits, targets, 1e-2)[0], plain(logits, targets, 1e-2)[0], rtol=1e-6
    )
