"""Mesh construction, T5X logical axis rules, sharded init, per-host data shards."""

import types

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from flan_trainer import optimizers, partitioning
from flan_trainer.partitioning import PartitioningError


class TinyLM(nn.Module):
    """A two-kernel model with T5X logical names; only used for partitioning unit tests."""

    @nn.compact
    def __call__(self, ids):
        emb = self.param(
            "embedding",
            nn.with_logical_partitioning(nn.initializers.normal(1.0), ("vocab", "embed")),
            (64, 16),
        )
        wi = self.param(
            "wi", nn.with_logical_partitioning(nn.initializers.normal(0.1), ("embed", "mlp")), (16, 32)
        )
        scale = self.param("scale", nn.with_logical_partitioning(nn.initializers.ones, ("embed",)), (16,))
        h = jnp.take(emb, ids, axis=0) * scale
        return jax.nn.relu(h @ wi)


class TinyModelApi:
    """The get_initial_variables surface init_sharded_state needs."""

    module = TinyLM()

    def get_initial_variables(self, rng, input_shapes, input_types=None):
        return self.module.init(rng, jnp.zeros(input_shapes["ids"], jnp.int32))


def test_make_mesh_shapes():
    assert jax.device_count() == 8
    m = partitioning.make_mesh()
    assert m.axis_names == ("data", "model") and m.devices.shape == (8, 1)
    assert partitioning.make_mesh(num_partitions=2).devices.shape == (4, 2)
    assert partitioning.make_mesh(mesh_shape=(2, 4)).devices.shape == (2, 4)
    assert partitioning.make_mesh(devices=jax.devices()[:4], num_partitions=4).devices.shape == (1, 4)


def test_make_mesh_errors_name_the_fix():
    with pytest.raises(PartitioningError, match=r"num_partitions=3 does not divide the 8.*\[1, 2, 4, 8\]"):
        partitioning.make_mesh(num_partitions=3)
    with pytest.raises(PartitioningError, match=r"mesh_shape=\(3, 2\) needs 6 devices but 8"):
        partitioning.make_mesh(mesh_shape=(3, 2))
    with pytest.raises(PartitioningError, match="disagree"):
        partitioning.make_mesh(num_partitions=2, mesh_shape=(2, 4))


def _mesh_specs(logical, rules):
    return nn.logical_to_mesh(logical, rules)


def test_standard_rules_map_t5x_names():
    rules = partitioning.standard_logical_axis_rules()
    lookup = {
        P("vocab", "embed"): P("model", None),
        P("embed", "mlp"): P(None, "model"),
        P("mlp", "embed"): P("model", None),
        P("embed", "joined_kv"): P(None, "model"),
        P("heads", "relpos_buckets"): P("model", None),
        P("batch", "length", "embed"): P("data", None, None),
        P("batch", "length", "heads", "kv"): P("data", None, "model", None),
        P("embed",): P(None),
    }
    for logical, expected in lookup.items():
        assert _mesh_specs(logical, rules) == expected, logical


def test_two_dim_partitioning_variants():
    act = partitioning.standard_logical_axis_rules(activation_partitioning_dims=2)
    assert _mesh_specs(P("batch", "length", "embed"), act) == P("data", None, "model")
    par = partitioning.standard_logical_axis_rules(parameter_partitioning_dims=2)
    assert _mesh_specs(P("vocab", "embed"), par) == P("model", "data")
    assert _mesh_specs(P("embed", "mlp"), par) == P("data", "model")
    extra = partitioning.standard_logical_axis_rules(additional_rules=[("vocab", None)])
    assert _mesh_specs(P("vocab", "embed"), extra) == P(None, None)
    with pytest.raises(PartitioningError, match="set one of them to 1"):
        partitioning.standard_logical_axis_rules(2, 2)
    with pytest.raises(PartitioningError, match="use 1 or 2"):
        partitioning.standard_logical_axis_rules(3)


@pytest.mark.parametrize("shape", [(4, 2), (2, 4)])
def test_init_sharded_state_places_every_leaf(shape):
    mesh = partitioning.make_mesh(mesh_shape=shape)
    rules = partitioning.standard_logical_axis_rules()
    tx = optimizers.adafactor(1e-3)
    model = TinyModelApi()
    rng = jax.random.PRNGKey(0)
    state, shardings = partitioning.init_sharded_state(model, tx, rng, {"ids": (2, 4)}, mesh, rules)
    params = state.params
    assert params["embedding"].sharding.spec == P("model", None)
    assert params["wi"].sharding.spec == P(None, "model")
    assert params["scale"].sharding.spec == P(None)
    # Each device holds only its slice of the vocab.
    shard = params["embedding"].addressable_shards[0].data
    assert shard.shape == (64 // shape[1], 16)
    assert state.step.sharding.spec == P()
    # Same values as a plain, unsharded init with the same rng.
    plain = nn.meta.unbox(model.get_initial_variables(rng, {"ids": (2, 4)})["params"])
    for k in plain:
        np.testing.assert_array_equal(np.asarray(params[k]), np.asarray(plain[k]))
    # Optimizer state leaves have shardings on the same mesh (all unfactored here: dims < 128).
    v = state.opt_state.inner_state[0].v
    assert v["wi"].sharding.spec == P(None, "model")
    assert shardings.params["wi"].spec == P(None, "model")


def test_indivisible_dims_are_replicated_not_fatal():
    mesh = partitioning.make_mesh(mesh_shape=(2, 4))
    # T5-small-like: 6 heads cannot split 4 ways; the vocab dim still can.
    assert partitioning.fit_spec_to_shape(P("model", None), (6, 32), mesh) == P(None, None)
    assert partitioning.fit_spec_to_shape(P("model", None), (32128, 8), mesh) == P("model", None)
    assert partitioning.fit_spec_to_shape(P(("data", "model")), (16,), mesh) == P(("data", "model"))
    assert partitioning.fit_spec_to_shape(P(("data", "model")), (12,), mesh) == P(None)
    with pytest.raises(PartitioningError, match="more entries"):
        partitioning.fit_spec_to_shape(P("data", None), (4,), mesh)


def test_params_shardings_from_eval_shape():
    mesh = partitioning.make_mesh(mesh_shape=(4, 2))
    rules = partitioning.standard_logical_axis_rules(parameter_partitioning_dims=2)
    model = TinyModelApi()
    abstract, specs, shardings = partitioning.params_shardings(
        lambda r: model.get_initial_variables(r, {"ids": (2, 4)}), jax.random.PRNGKey(0), mesh, rules
    )
    assert isinstance(abstract["wi"], jax.ShapeDtypeStruct) and abstract["wi"].shape == (16, 32)
    assert specs["wi"] == P("data", "model")  # ZeRO-3 style: embed over data
    assert specs["embedding"] == P("model", "data")
    assert shardings["scale"].spec == P("data")


def test_check_batch_size_messages():
    mesh = partitioning.make_mesh(mesh_shape=(4, 2))
    partitioning.check_batch_size(8, mesh)
    with pytest.raises(PartitioningError, match=r"batch size 6 is not divisible by the mesh data axis size 4"):
        partitioning.check_batch_size(6, mesh)
    with pytest.raises(PartitioningError, match=r"cannot be split into 4 microbatches.*multiple of 16"):
        partitioning.check_batch_size(8, mesh, num_microbatches=4)


def test_shard_batch_puts_rows_on_data_axis():
    mesh = partitioning.make_mesh(mesh_shape=(4, 2))
    batch = {"x": np.arange(16, dtype=np.int32).reshape(8, 2)}
    out = partitioning.shard_batch(batch, mesh)
    assert out["x"].sharding.spec == P("data")
    np.testing.assert_array_equal(np.asarray(out["x"]), batch["x"])
    assert out["x"].addressable_shards[0].data.shape == (2, 2)


def test_data_shard_info_single_process():
    assert partitioning.data_shard_info(partitioning.make_mesh(num_partitions=2)) == (0, 1)


def _fake_mesh(process_grid):
    """A mesh-shaped layout of devices owned by the given processes (only process ids matter)."""
    grid = np.empty(np.shape(process_grid), dtype=object)
    for idx in np.ndindex(grid.shape):
        grid[idx] = types.SimpleNamespace(process_index=int(np.asarray(process_grid)[idx]))
    return types.SimpleNamespace(devices=grid, axis_names=("data", "model"))


def test_data_shard_info_groups_processes_along_model():
    # 4 processes: 0/1 share data rows 0-1 (they split 'model'), 2/3 share rows 2-3.
    mesh = _fake_mesh([[0, 1], [0, 1], [2, 3], [2, 3]])
    assert [partitioning.data_shard_info(mesh, p) for p in range(4)] == [(0, 2), (0, 2), (1, 2), (1, 2)]
    # Pure data parallel over 4 processes: 4 shards.
    mesh = _fake_mesh([[0], [1], [2], [3]])
    assert [partitioning.data_shard_info(mesh, p) for p in range(4)] == [(i, 4) for i in range(4)]
    bad = _fake_mesh([[0, 1], [0, 0], [1, 1]])
    with pytest.raises(PartitioningError, match="overlapping"):
        partitioning.data_shard_info(bad, 0)
