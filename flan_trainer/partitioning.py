"""Device mesh, T5X logical axis rules, and the shardings built from them.

The mesh always has the two axes T5X uses, ``('data', 'model')``. Modules name their array
dimensions with logical names (``vocab``, ``embed``, ``mlp`` ...); the rules below map those
names onto mesh axes. Parameters, optimizer state and batches all get ``NamedSharding``s
derived from the same rules, so the whole train state can be created directly in its sharded
layout (``init_sharded_state``) without any host holding the full model.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import flax.linen as nn
import jax
import numpy as np
from jax.experimental import mesh_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

_log = logging.getLogger(__name__)

DATA_AXIS = "data"
MODEL_AXIS = "model"
MESH_AXES = (DATA_AXIS, MODEL_AXIS)

LogicalRules = Sequence[tuple[str, str | None]]


class PartitioningError(ValueError):
    """A mesh, batch or rule setting that cannot work; the message says how to fix it."""


# ---------------------------------------------------------------------------------------------
# Mesh
# ---------------------------------------------------------------------------------------------


def make_mesh(
    num_partitions: int | None = None,
    mesh_shape: tuple[int, int] | None = None,
    devices: Sequence[jax.Device] | None = None,
) -> Mesh:
    """Builds a ``('data', 'model')`` mesh over ``devices`` (default: all devices).

    Give either ``num_partitions`` (the model-axis size, T5X's name; the data axis takes the
    rest) or an explicit ``mesh_shape=(data, model)``. With neither, all devices go on 'data'.
    """
    devs = list(jax.devices() if devices is None else devices)
    n = len(devs)
    if mesh_shape is not None and num_partitions is not None and mesh_shape[1] != num_partitions:
        raise PartitioningError(
            f"mesh_shape={mesh_shape} and num_partitions={num_partitions} disagree on the model "
            "axis size; pass only one of them."
        )
    if mesh_shape is None:
        model = 1 if num_partitions is None else int(num_partitions)
        if model < 1 or n % model:
            raise PartitioningError(
                f"num_partitions={num_partitions} does not divide the {n} available devices; "
                f"choose a model-axis size among {_divisors(n)}."
            )
        mesh_shape = (n // model, model)
    data, model = (int(d) for d in mesh_shape)
    if data < 1 or model < 1 or data * model != n:
        raise PartitioningError(
            f"mesh_shape={tuple(mesh_shape)} needs {data * model} devices but {n} are available; "
            f"use a (data, model) shape whose product is {n}, e.g. ({n // max(model, 1)}, "
            f"{model if model >= 1 and n % model == 0 else 1})."
        )
    try:
        # Respects the physical topology on TPU/GPU; falls back to a plain reshape elsewhere.
        grid = mesh_utils.create_device_mesh((data, model), devices=devs)
    except Exception:  # noqa: BLE001 -- topology helpers reject some virtual device sets
        grid = np.asarray(devs, dtype=object).reshape(data, model)
    return Mesh(grid, MESH_AXES)


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


# ---------------------------------------------------------------------------------------------
# Logical axis rules
# ---------------------------------------------------------------------------------------------


def standard_logical_axis_rules(
    activation_partitioning_dims: int = 1,
    parameter_partitioning_dims: int = 1,
    additional_rules: LogicalRules | None = None,
) -> list[tuple[str, str | None]]:
    """T5X's standard logical-to-mesh rules, highest priority first.

    With ``activation_partitioning_dims=2`` activations' ``embed`` dimension is split over
    'model'; with ``parameter_partitioning_dims=2`` parameters' ``embed`` dimension is split over
    'data' (ZeRO-3 style). ``additional_rules`` come first, so they override the standard ones.
    """
    for name, dims in (
        ("activation_partitioning_dims", activation_partitioning_dims),
        ("parameter_partitioning_dims", parameter_partitioning_dims),
    ):
        if dims not in (1, 2):
            raise PartitioningError(f"{name}={dims} is not supported; use 1 or 2.")
    if activation_partitioning_dims == 2 and parameter_partitioning_dims == 2:
        # Both would need 'embed' at once (over 'model' and over 'data'); T5X rejects it too.
        raise PartitioningError(
            "activation_partitioning_dims=2 and parameter_partitioning_dims=2 together are not "
            "supported; set one of them to 1."
        )
    rules: list[tuple[str, str | None]] = [
        ("batch", DATA_AXIS),
        ("vocab", MODEL_AXIS),
        ("mlp", MODEL_AXIS),
        ("heads", MODEL_AXIS),
        ("kv", None),
        ("joined_kv", MODEL_AXIS),
        ("relpos_buckets", None),
        ("abspos_buckets", None),
        ("length", None),
        ("layers", None),
        ("stack", None),
        ("mlp_activations", None),
    ]
    if activation_partitioning_dims == 2:
        rules.append(("embed", MODEL_AXIS))
    if parameter_partitioning_dims == 2:
        rules.append(("embed", DATA_AXIS))
    rules.append(("embed", None))
    return list(additional_rules or []) + rules


# ---------------------------------------------------------------------------------------------
# Logical specs -> shardings
# ---------------------------------------------------------------------------------------------


def _is_spec(x: Any) -> bool:
    return isinstance(x, PartitionSpec)


def logical_partition_specs(boxed_tree: Any) -> Any:
    """Logical ``PartitionSpec``s for a tree of (possibly abstract) flax-boxed variables.

    Leaves that carry no partitioning metadata get ``PartitionSpec()`` (replicated).
    """
    return nn.get_partition_spec(boxed_tree)


def logical_to_shardings(logical_specs: Any, mesh: Mesh, rules: LogicalRules) -> Any:
    """Maps a tree of logical ``PartitionSpec``s to ``NamedSharding``s on ``mesh``."""
    return nn.logical_to_mesh_sharding(logical_specs, mesh, list(rules))


def replicated(mesh: Mesh) -> NamedSharding:
    """A sharding that places a full copy on every device of ``mesh``."""
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Sharding for every batch feature: the leading (batch) dimension over 'data'."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def check_batch_size(batch_size: int, mesh: Mesh, num_microbatches: int = 1) -> None:
    """Raises a clear error unless the global batch splits over the data axis (and microbatches).

    Each microbatch is itself sharded over 'data', so ``batch_size`` must divide by
    ``data_axis_size * num_microbatches``.
    """
    data = mesh.shape[DATA_AXIS]
    if batch_size % data:
        raise PartitioningError(
            f"batch size {batch_size} is not divisible by the mesh data axis size {data}; set "
            f"BATCH_SIZE to a multiple of {data} (e.g. {max(data, batch_size // data * data)}) "
            "or change the mesh (num_partitions / mesh_shape)."
        )
    if num_microbatches < 1 or batch_size % (data * num_microbatches):
        raise PartitioningError(
            f"batch size {batch_size} cannot be split into {num_microbatches} microbatches that "
            f"each divide over the data axis ({data}); use a batch size that is a multiple of "
            f"{data * max(num_microbatches, 1)} or a num_microbatches that divides "
            f"{batch_size // data}."
        )


def shard_batch(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Assembles global batch arrays from this host's rows (its data shard, see data_shard_info).

    With one process the local rows are the whole batch. Arrays come back sharded by
    ``batch_sharding(mesh)``.
    """
    sharding = batch_sharding(mesh)
    return {
        k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
        for k, v in batch.items()
    }


def fit_spec_to_shape(spec: PartitionSpec, shape: tuple[int, ...], mesh: Mesh) -> PartitionSpec:
    """Drops mesh axes from dimensions they do not divide evenly (that dimension is replicated).

    jit requires every sharded dimension to divide by its mesh axes; a model whose e.g. head
    count (T5 small: 6) does not divide the 'model' axis (4) would otherwise fail to initialise.
    """
    if len(spec) > len(shape):
        raise PartitioningError(f"spec {spec} has more entries than the array shape {shape}.")
    entries = list(spec) + [None] * (len(shape) - len(spec))
    fitted = []
    for size, axes in zip(shape, entries, strict=True):
        names = (axes,) if isinstance(axes, str) else tuple(axes or ())
        ways = int(np.prod([mesh.shape[a] for a in names])) if names else 1
        if size % ways:
            _log.warning(
                "dimension of size %d in an array of shape %s does not divide over mesh axes %s "
                "(%d ways); replicating that dimension instead.", size, shape, names, ways
            )
        fitted.append(axes if size % ways == 0 else None)
    return PartitionSpec(*fitted)


def fit_specs_to_shapes(specs: Any, shapes: Any, mesh: Mesh) -> Any:
    """``fit_spec_to_shape`` over matching trees of mesh specs and arrays/ShapeDtypeStructs."""
    return jax.tree.map(
        lambda s, x: fit_spec_to_shape(s, tuple(x.shape), mesh), specs, shapes, is_leaf=_is_spec
    )


# ---------------------------------------------------------------------------------------------
# Per-host data shard
# ---------------------------------------------------------------------------------------------


def data_shard_info(
    mesh: Mesh, process_index: int | None = None, device_process: Callable[[Any], int] | None = None
) -> tuple[int, int]:
    """``(index, num_shards)`` of the input data this process must read.

    Processes are grouped by the set of positions on the 'data' axis that their devices
    occupy: processes that differ only along 'model' hold the same rows and so read the same
    shard. Each group must hold one contiguous block of rows, because a host's batch becomes
    that block of the global batch. Works unchanged for a single process, which gets ``(0, 1)``.
    ``device_process`` maps a device to its process (default ``device.process_index``); tests
    use it to lay out a pretend multi-host mesh.
    """
    proc = jax.process_index() if process_index is None else process_index
    owner = device_process or (lambda d: d.process_index)
    data_dim = mesh.axis_names.index(DATA_AXIS)
    rows_of: dict[int, set[int]] = {}
    for idx in np.ndindex(mesh.devices.shape):
        rows_of.setdefault(owner(mesh.devices[idx]), set()).add(idx[data_dim])
    groups = sorted({tuple(sorted(r)) for r in rows_of.values()})
    seen: set[int] = set()
    for g in groups:
        if seen & set(g):
            raise PartitioningError(
                "processes own overlapping but different sets of data-axis positions "
                f"({groups}); build the mesh so that each process covers whole data rows "
                "(make_mesh with the default device order does)."
            )
        if g != tuple(range(g[0], g[0] + len(g))) or len(g) != len(groups[0]):
            raise PartitioningError(
                f"processes hold uneven or non-contiguous positions on the 'data' axis: {groups}. "
                "Build the mesh so each process's devices form one contiguous block along 'data' "
                "(make_mesh with the default device order does)."
            )
        seen |= set(g)
    if proc not in rows_of:
        raise PartitioningError(f"process {proc} owns no device of this mesh.")
    return groups.index(tuple(sorted(rows_of[proc]))), len(groups)


# ---------------------------------------------------------------------------------------------
# Sharded initialisation
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def axis_rules(rules: LogicalRules) -> Iterator[None]:
    """Context that binds the logical axis rules while tracing model code."""
    with nn.logical_axis_rules(list(rules)):
        yield


def params_shardings(
    init_variables_fn: Callable[[jax.Array], dict[str, Any]],
    rng: jax.Array,
    mesh: Mesh,
    rules: LogicalRules,
) -> tuple[Any, Any, Any]:
    """Abstract params, their mesh specs and ``NamedSharding``s, from a variables init fn.

    ``init_variables_fn(rng)`` returns flax variables (``{'params': boxed tree, ...}``); it runs
    under ``jax.eval_shape`` only. Returns ``(abstract_params, mesh_specs, shardings)``: unboxed
    ``ShapeDtypeStruct``s, mesh ``PartitionSpec``s from the rules (dimensions the mesh does not
    divide are replicated, see ``fit_spec_to_shape``), and the matching ``NamedSharding``s.
    """
    with axis_rules(rules):
        boxed = jax.eval_shape(init_variables_fn, rng)
    if "params" not in boxed:
        raise PartitioningError(
            f"the init function returned collections {sorted(boxed)} without 'params'."
        )
    abstract = nn.meta.unbox(boxed["params"])
    logical = logical_partition_specs(boxed["params"])
    specs = fit_specs_to_shapes(nn.logical_to_mesh(logical, list(rules)), abstract, mesh)
    shardings = jax.tree.map(lambda s: NamedSharding(mesh, s), specs, is_leaf=_is_spec)
    return abstract, specs, shardings


def init_sharded_state(
    model: Any,
    optimizer: Any,
    rng: jax.Array,
    input_shapes: dict[str, tuple],
    mesh: Mesh,
    rules: LogicalRules,
    input_types: dict[str, Any] | None = None,
) -> tuple[Any, Any]:
    """Creates ``(TrainState, its shardings)`` in sharded layout; see train_state.init_sharded_state."""
    from flan_trainer import train_state  # local: train_state imports this module

    return train_state.init_sharded_state(
        model, optimizer, rng, input_shapes, mesh, rules, input_types
    )
