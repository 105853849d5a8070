"""Adafactor (T5X settings) against an independent float64 numpy implementation."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec as P

from flan_trainer import layer_stacking, optimizers, per_layer_transform, schedules

SHAPES = {
    "factored_rows": (256, 128),  # factored, largest dim 0
    "factored_cols": (128, 300),  # factored, largest dim 1
    "unfactored_small": (64, 512),  # second-largest 64 < 128: full second moment
    "vector": (128,),
    "three_d": (4, 128, 160),  # factors over the two largest dims (1 and 2)
}


def _ref_factored_dims(shape):
    if len(shape) < 2:
        return None
    order = np.argsort(shape)
    if shape[order[-2]] < 128:
        return None
    return int(order[-2]), int(order[-1])


def _rms(x):
    return np.sqrt(np.mean(np.square(x)))


class RefAdafactor:
    """Float64 T5X Adafactor: beta2_t = 1 - (t+1)^-0.8, clip 1.0, param scale, eps1 1e-30."""

    def __init__(self, params):
        self.state = {}
        for k, p in params.items():
            dims = _ref_factored_dims(p.shape)
            if dims is None:
                self.state[k] = {"v": np.zeros(p.shape)}
            else:
                d1, d0 = dims
                self.state[k] = {
                    "vr": np.zeros(np.delete(p.shape, d0)),
                    "vc": np.zeros(np.delete(p.shape, d1)),
                }

    def step(self, params, grads, t, lr):
        decay = 1.0 - (t + 1.0) ** -0.8
        out = {}
        for k, p in params.items():
            g = grads[k]
            g2 = g * g + 1e-30
            st = self.state[k]
            dims = _ref_factored_dims(p.shape)
            if dims is None:
                st["v"] = decay * st["v"] + (1 - decay) * g2
                u = g / np.sqrt(st["v"])
            else:
                d1, d0 = dims
                st["vr"] = decay * st["vr"] + (1 - decay) * g2.mean(axis=d0)
                st["vc"] = decay * st["vc"] + (1 - decay) * g2.mean(axis=d1)
                vr = np.expand_dims(st["vr"], d0)  # back to the param's rank
                vc = np.expand_dims(st["vc"], d1)
                row_mean = vr.mean(axis=d1, keepdims=True)
                u = g / np.sqrt((vr / row_mean) * vc)
            u = u / max(1.0, _rms(u) / 1.0)
            scale = max(_rms(p), 1e-3)
            out[k] = p - lr * scale * u
        return out


def test_adafactor_matches_float64_reference_over_5_steps():
    rng = np.random.default_rng(0)
    params64 = {k: rng.normal(size=s) * 0.05 for k, s in SHAPES.items()}
    params64["vector"] = np.full(SHAPES["vector"], 1e-4)  # below eps2: scale floors at 1e-3
    schedule = schedules.rsqrt(0.01, warmup_steps=2)
    tx = optimizers.adafactor(learning_rate=schedule)
    params = {k: jnp.asarray(v, jnp.float32) for k, v in params64.items()}
    opt_state = tx.init(params)
    ref = RefAdafactor(params64)

    update = jax.jit(tx.update)
    for t in range(5):
        grads64 = {k: rng.normal(size=s) * (1.0 + t) for k, s in SHAPES.items()}
        grads64["factored_rows"][:, 0] *= 50.0  # uneven rows/cols exercise the factoring
        grads = {k: jnp.asarray(v, jnp.float32) for k, v in grads64.items()}
        updates, opt_state = update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        lr = 0.01 / np.sqrt(max(t, 2))
        params64 = ref.step(params64, grads64, t, lr)
        assert float(optimizers.current_learning_rate(opt_state)) == pytest.approx(lr, rel=1e-6)
        for k in SHAPES:
            np.testing.assert_allclose(
                np.asarray(params[k]), params64[k], rtol=2e-5, atol=1e-7, err_msg=f"{k} step {t}"
            )
    # The factored leaves really are factored in optax's state (memory saving is the point).
    factored = opt_state.inner_state[0]
    assert factored.v_row["factored_rows"].shape == (128,)  # drops the largest dim
    assert factored.v_col["factored_rows"].shape == (256,)
    assert factored.v_col["factored_cols"].shape == (300,)
    assert factored.v["unfactored_small"].shape == (64, 512)
    assert factored.v_row["three_d"].shape == (4, 128)


def test_factored_dims_rule():
    assert optimizers.factored_dims((256, 128)) == (1, 0)
    assert optimizers.factored_dims((128, 300)) == (0, 1)
    assert optimizers.factored_dims((64, 512)) is None
    assert optimizers.factored_dims((512,)) is None


def test_clipping_threshold_below_one_is_rejected():
    with pytest.raises(ValueError, match="clipping_threshold"):
        optimizers.adafactor(1e-3, clipping_threshold=0.5)


def test_opt_state_specs_follow_param_dims():
    params = {
        "emb": jax.ShapeDtypeStruct((512, 128), jnp.float32),  # [vocab, embed]
        "wi": jax.ShapeDtypeStruct((128, 384), jnp.float32),  # [embed, mlp]
        "small": jax.ShapeDtypeStruct((64, 32), jnp.float32),
        "scale": jax.ShapeDtypeStruct((128,), jnp.float32),
    }
    specs = {
        "emb": P("model", None),
        "wi": P(None, "model"),
        "small": P(None, "model"),
        "scale": P(),
    }
    tx = optimizers.adafactor(1e-3)
    state = jax.eval_shape(tx.init, params)
    out = optimizers.opt_state_partition_specs(state, specs, params)
    fs = out.inner_state[0]
    # emb: d0 = 0 (vocab, largest). v_row drops vocab -> [embed]; v_col drops embed -> [vocab].
    assert fs.v_row["emb"] == P(None)
    assert fs.v_col["emb"] == P("model")
    # wi: d0 = 1 (mlp). v_row keeps embed, v_col keeps mlp (sharded over model).
    assert fs.v_row["wi"] == P(None)
    assert fs.v_col["wi"] == P("model")
    assert fs.v["small"] == P(None, "model")  # unfactored: like the param
    assert fs.v["emb"] == P()  # placeholder (1,) replicated
    assert fs.count == P()
    assert out.hyperparams["learning_rate"] == P()


def _per_layer_tree(rng, scales):
    """Unscanned-layout params/grads: three layers with very different magnitudes, plus a shared leaf."""
    layers = {f"layers_{i}": {"k": rng.normal(size=(256, 128)) * s, "v": rng.normal(size=(64, 200)) * s,
                              "scale": 1.0 + rng.normal(size=(128,)) * s} for i, s in enumerate(scales)}
    return {"emb": rng.normal(size=(300, 128)), "encoder": layers}


def test_adafactor_steps_each_stacked_layer_like_an_unscanned_run():
    """Scanned layers: factoring, clipping and parameter scale per layer; state = unscanned state stacked."""
    rng = np.random.default_rng(1)
    f32 = lambda t: jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), t)  # noqa: E731
    params = {False: f32(_per_layer_tree(rng, [0.01, 0.1, 1.0]))}
    params[True] = layer_stacking.stack_layers(params[False])
    tx = optimizers.adafactor(schedules.rsqrt(0.01, warmup_steps=2))  # T5X defaults
    states = {scan: tx.init(p) for scan, p in params.items()}
    update = jax.jit(tx.update)
    for _ in range(3):
        grads = f32(_per_layer_tree(rng, [1e-3, 1.0, 30.0]))
        for scan in (False, True):
            g = layer_stacking.stack_layers(grads) if scan else grads
            updates, states[scan] = update(g, states[scan], params[scan])
            params[scan] = optax.apply_updates(params[scan], updates)
    stacked = layer_stacking.stack_layers(jax.device_get({"p": params[False], "s": states[False]}))
    got = jax.device_get({"p": params[True], "s": states[True]})
    assert jax.tree.structure(got) == jax.tree.structure(stacked)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), got, stacked)
    factored = states[True].inner_state[0]
    assert factored.v_row["encoder"]["layers"]["k"].shape == (3, 128)  # per layer: drops 256
    assert factored.v["encoder"]["layers"]["k"].shape == (1,)  # one placeholder, as layer_stacking keeps
    assert factored.v["encoder"]["layers"]["v"].shape == (3, 64, 200)  # 64 < 128: unfactored per layer
    # Elementwise optimizers are unaffected by the wrapper; without stacked leaves it is the inner one.
    adamw = optax.adamw(1e-2)
    for scan in (False, True):
        want = adamw.update(params[scan], adamw.init(params[scan]), params[scan])
        got = per_layer_transform.per_layer(adamw).update(params[scan], adamw.init(params[scan]), params[scan])
        jax.tree.map(np.testing.assert_array_equal, got, want)
    plain = optax.adafactor(0.01)
    jax.tree.map(np.testing.assert_array_equal, per_layer_transform.per_layer(plain).init(params[False]),
                 plain.init(params[False]))


def test_opt_state_specs_of_a_stacked_param_use_its_per_layer_factoring():
    # 200 layers of [128, 160]: the layer axis is the largest dim but is never factored.
    params = {"layers": {"k": jax.ShapeDtypeStruct((200, 128, 160), jnp.float32)}}
    specs = {"layers": {"k": P(None, None, "model")}}
    state = jax.eval_shape(optimizers.adafactor(1e-3).init, params)
    fs = state.inner_state[0]
    assert fs.v_row["layers"]["k"].shape == (200, 128) and fs.v_col["layers"]["k"].shape == (200, 160)
    out = optimizers.opt_state_partition_specs(state, specs, params).inner_state[0]
    assert out.v_row["layers"]["k"] == P(None, None)
    assert out.v_col["layers"]["k"] == P(None, "model")
    assert out.v["layers"]["k"] == P()
