"""Orbax checkpoints: round trip, keep-N, resharding, mismatch errors, restore order, crash safety."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from flan_trainer import checkpoints as ck


def _mesh(data: int, model: int) -> Mesh:
    return Mesh(np.array(jax.devices()[: data * model]).reshape(data, model), ("data", "model"))


def _specs():
    # Kernel split over both axes, embedding over model, scale replicated.
    return {"dense": {"kernel": P("data", "model")}, "embed": P(None, "model"), "scale": P()}


def _state(mesh: Mesh, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    raw = {
        "dense": {"kernel": rng.normal(size=(8, 8)).astype(np.float32)},
        "embed": rng.normal(size=(16, 4)).astype(np.float32),
        "scale": np.ones((8,), np.float32),
    }
    params = jax.tree.map(lambda x, s: jax.device_put(x, NamedSharding(mesh, s)), raw, _specs())
    tx = optax.adam(1e-2)
    opt_state = tx.init(params)
    # One real update so the optimizer moments are non-trivial.
    grads = jax.tree.map(lambda p: p * 0.5, params)
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    return {"step": jnp.asarray(1, jnp.int32), "params": params, "opt_state": opt_state}


def _assert_same(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


DATA = ck.data_state_dict(steps=10, examples=80, seed=3, mixture="tiny_mix")


def test_round_trip_with_opt_and_data_state(tmp_path):
    mesh = _mesh(8, 1)
    state = _state(mesh)
    with ck.CheckpointManager(tmp_path, keep=None, period=10) as mgr:
        assert mgr.save(10, state, DATA)
        assert (tmp_path / "checkpoint_10" / "state").is_dir()
        assert (tmp_path / "checkpoint_10" / "data_state").is_dir()
        assert mgr.latest_step() == 10
        restored, data = mgr.restore(None, ck.abstract_like(state))
    _assert_same(state, restored)
    assert data == DATA
    assert restored["params"]["dense"]["kernel"].sharding == state["params"]["dense"]["kernel"].sharding
    # Adam's moments came back (not re-initialised).
    mu = restored["opt_state"][0].mu["embed"]
    assert float(jnp.abs(mu).sum()) > 0


def test_period_keep_n_and_no_overwrite(tmp_path):
    mesh = _mesh(8, 1)
    state = _state(mesh)
    with ck.CheckpointManager(tmp_path, keep=2, period=2) as mgr:
        saved = [s for s in range(1, 8) if mgr.save(s, state, DATA)]
        assert saved == [2, 4, 6]
        assert mgr.save(7, state, DATA, force=True)
        assert mgr.all_steps() == [6, 7]
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("checkpoint_")) == [
            "checkpoint_6", "checkpoint_7"]
        # An existing step is never rewritten.
        other = _state(mesh, seed=1)
        assert not mgr.save(7, other, DATA, force=True)
        restored, _ = mgr.restore(7, ck.abstract_like(state))
    _assert_same(state, restored)


def test_restore_onto_different_mesh(tmp_path):
    state = _state(_mesh(8, 1))
    with ck.CheckpointManager(tmp_path, period=1) as mgr:
        mgr.save(1, state, DATA)
    new_mesh = _mesh(2, 4)
    target = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=NamedSharding(new_mesh, P())), state)
    target["params"] = jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=NamedSharding(new_mesh, s)),
        state["params"], _specs())
    with ck.CheckpointManager(tmp_path, period=1) as mgr:
        restored, _ = mgr.restore(1, target)
    _assert_same(state, restored)
    kernel = restored["params"]["dense"]["kernel"]
    assert kernel.sharding.mesh.shape == {"data": 2, "model": 4}
    assert kernel.sharding.spec == P("data", "model")
    assert {s.data.shape for s in kernel.addressable_shards} == {(4, 2)}


def test_shape_dtype_and_key_mismatch_are_named(tmp_path):
    mesh = _mesh(8, 1)
    state = _state(mesh)
    with ck.CheckpointManager(tmp_path, period=1) as mgr:
        mgr.save(1, state, DATA)
        target = ck.abstract_like(state)
        target["params"]["embed"] = jax.ShapeDtypeStruct((32, 4), jnp.float32)
        with pytest.raises(ck.CheckpointMismatchError) as err:
            mgr.restore(1, target)
        msg = str(err.value)
        assert "params/embed" in msg and "(32, 4)" in msg and "(16, 4)" in msg
        target = ck.abstract_like(state)
        target["params"]["scale"] = jax.ShapeDtypeStruct((8,), jnp.bfloat16)
        target["params"]["extra"] = jax.ShapeDtypeStruct((2,), jnp.float32)
        with pytest.raises(ck.CheckpointMismatchError) as err:
            mgr.restore(1, target)
        msg = str(err.value)
        assert "params/scale" in msg and "bfloat16" in msg and "float32" in msg
        assert "missing in checkpoint: params/extra" in msg
        # The checkpoint is intact after the failed restores.
        restored, _ = mgr.restore(1, ck.abstract_like(state))
    _assert_same(state, restored)


def test_restore_order_and_params_only(tmp_path):
    mesh = _mesh(8, 1)
    init_calls = []

    def init_fn():
        init_calls.append(1)
        return _state(mesh, seed=99)

    abstract = ck.abstract_like(_state(mesh))
    model_dir, initial_dir = tmp_path / "model", tmp_path / "initial"
    # 1) nothing anywhere -> scratch.
    state, data, source = ck.restore_or_initialize(model_dir, None, "full", init_fn, abstract)
    assert source == "initialized from scratch" and data is None
    _assert_same(state, _state(mesh, seed=99))
    # 2) an initial checkpoint (full state) -> params-only and full modes.
    pretrained = _state(mesh, seed=5)
    with ck.CheckpointManager(initial_dir, period=1) as mgr:
        mgr.save(100, pretrained, DATA)
    state, data, source = ck.restore_or_initialize(model_dir, initial_dir, "params", init_fn, abstract)
    assert "params from initial checkpoint" in source and source.endswith("checkpoint_100")
    _assert_same(state["params"], pretrained["params"])
    _assert_same(state["opt_state"], _state(mesh, seed=99)["opt_state"])
    state, data, source = ck.restore_or_initialize(
        model_dir, initial_dir / "checkpoint_100", "full", init_fn, abstract)
    assert "full state" in source and data is None
    _assert_same(state, pretrained)
    # 3) MODEL_DIR has a checkpoint -> it wins over the initial one.
    mine = _state(mesh, seed=7)
    with ck.CheckpointManager(model_dir, period=1) as mgr:
        mgr.save(3, mine, DATA)
    calls_before = len(init_calls)
    state, data, source = ck.restore_or_initialize(model_dir, initial_dir, "params", init_fn, abstract)
    assert source.startswith("resumed from") and data == DATA
    _assert_same(state, mine)
    assert len(init_calls) == calls_before  # no wasted init when resuming


def test_params_only_from_params_tree_and_mismatch(tmp_path):
    mesh = _mesh(8, 1)
    params = _state(mesh)["params"]
    with ck.CheckpointManager(tmp_path, period=1) as mgr:
        mgr.save(1, params)  # A params-only checkpoint (e.g. converted from elsewhere).
    got = ck.restore_params_only(tmp_path, ck.abstract_like(params))
    _assert_same(params, got)
    bad = ck.abstract_like(params)
    bad["dense"]["kernel"] = jax.ShapeDtypeStruct((8, 9), jnp.float32)
    with pytest.raises(ck.CheckpointMismatchError, match=r"dense/kernel.*\(8, 9\).*\(8, 8\)"):
        ck.restore_params_only(tmp_path / "checkpoint_1", bad)
    with pytest.raises(ck.CheckpointNotFoundError, match="no complete checkpoint"):
        ck.restore_params_only(tmp_path / "empty", bad)


def test_partial_and_tmp_dirs_are_ignored(tmp_path):
    mesh = _mesh(8, 1)
    state = _state(mesh)
    with ck.CheckpointManager(tmp_path, period=1) as mgr:
        mgr.save(5, state, DATA)
    # What a killed save leaves (orbax's temporary name), and a half-copied step directory.
    (tmp_path / "checkpoint_9.orbax-checkpoint-tmp-1234" / "state").mkdir(parents=True)
    (tmp_path / "checkpoint_8" / "state").mkdir(parents=True)
    (tmp_path / "checkpoint_8" / "state" / "junk").write_text("partial")
    assert ck.complete_steps(tmp_path) == [5]
    state2, data, source = ck.restore_or_initialize(
        tmp_path, None, "full", lambda: pytest.fail("must not init"), ck.abstract_like(state))
    assert source.endswith("checkpoint_5") and data == DATA
    _assert_same(state, state2)
    with pytest.raises(ck.CheckpointNotFoundError, match="not a complete checkpoint"):
        ck.resolve_checkpoint_dir(tmp_path / "checkpoint_8")


_SAVER = textwrap.dedent("""
    import os, sys
    os.environ["JAX_PLATFORMS"] = "cpu"
    import numpy as np
    from flan_trainer import checkpoints as ck
    model_dir = sys.argv[1]
    small = {"w": np.arange(6, dtype=np.float32)}
    mgr = ck.CheckpointManager(model_dir, period=1)
    mgr.save(1, small, {"steps": 1})
    print("saved1", flush=True)
    big = {"w": np.random.default_rng(0).normal(size=(6000, 6000)).astype(np.float32)}
    for step in range(2, 50):
        mgr.save(step, big, {"steps": step})
""")


def test_killed_save_leaves_last_good_checkpoint(tmp_path):
    script = tmp_path / "saver.py"
    script.write_text(_SAVER)
    model_dir = tmp_path / "model"
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": repo}
    proc = subprocess.Popen([sys.executable, str(script), str(model_dir)], stdout=subprocess.PIPE, env=env,
                            cwd=repo)
    try:
        assert proc.stdout.readline().strip() == b"saved1"
        deadline = time.time() + 120
        while time.time() < deadline:  # Kill as soon as a big save is in flight.
            tmp = [p.name for p in model_dir.iterdir() if ".orbax-checkpoint-tmp" in p.name]
            if tmp:
                break
            time.sleep(0.005)
        else:
            pytest.fail("the step-2 save never started")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        killed_step = int(tmp[0].split(".")[0].split("_")[1])
    finally:
        if proc.poll() is None:
            proc.kill()
    good = ck.complete_steps(model_dir)
    assert killed_step not in good and good[-1] == killed_step - 1
    target = {"w": jax.ShapeDtypeStruct((6,), jnp.float32)}
    with ck.CheckpointManager(model_dir, period=1) as mgr:  # also cleans the tmp dir up
        restored, data = mgr.restore(1, target)
        assert mgr.latest_step() == killed_step - 1
    np.testing.assert_array_equal(np.asarray(restored["w"]), np.arange(6, dtype=np.float32))
    assert data == {"steps": 1}
    assert not any(".orbax-checkpoint-tmp" in p.name for p in model_dir.iterdir())


@flax.struct.dataclass
class _StructState:  # Same shape as flan_trainer.train_state.TrainState: a flax struct pytree.
    step: jax.Array
    params: dict
    opt_state: optax.OptState


def test_flax_struct_state_full_and_params_mode(tmp_path):
    mesh = _mesh(8, 1)

    def make(seed):
        d = _state(mesh, seed)
        return _StructState(step=d["step"], params=d["params"], opt_state=d["opt_state"])

    saved = make(1)
    with ck.CheckpointManager(tmp_path / "init", period=1) as mgr:
        mgr.save(2, saved, DATA)
    abstract = ck.abstract_like(make(0))
    state, _, _ = ck.restore_or_initialize(tmp_path / "m", tmp_path / "init", "full", lambda: make(0), abstract)
    assert isinstance(state, _StructState)
    _assert_same(state, saved)
    state, _, _ = ck.restore_or_initialize(tmp_path / "m", tmp_path / "init", "params", lambda: make(0), abstract)
    _assert_same(state.params, saved.params)
    _assert_same(state.opt_state, make(0).opt_state)
