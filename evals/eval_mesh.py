"""Evaluation on the training mesh: sharded eval batches, parameters in their training shardings.

`EvalMesh` is the partitioning every evaluator (rank classification, generation) runs through, the
same as training's (`flan_trainer.partitioning`): a ('data', 'model') mesh, T5X's logical axis rules,
parameters laid out by the model's logical axes (model-parallel included), and each eval batch
sharded over 'data'. Programs are jitted with in/out `NamedSharding`s; the eval batch's rows are
split over the data axis, so each device of an (N, 1) mesh computes 1/N of every batch.

Several processes: every host reads the (small) eval task itself, but builds only ITS rows of each
global batch (`local_rows`), which `jax.make_array_from_process_local_data` assembles into the global
array, exactly as the training input pipeline does. Results are gathered back to every host in
example order (`fetch`), so metrics are computed identically everywhere; only process 0 writes
reports.

Every compiled program is counted (`compiles`): shapes are bucketed (evals.batching), so a whole
cluster compiles a bounded number of programs.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from flan_trainer import partitioning

log = logging.getLogger(__name__)


def is_main_process() -> bool:
    """True on the process that writes reports (process 0)."""
    return jax.process_index() == 0


class EvalMesh:
    """A mesh, logical axis rules and the jitted eval programs placed on them.

    mesh: default all devices on 'data' (training's default); rules: default T5X's standard rules.
    """

    def __init__(self, mesh: Mesh | None = None, rules: partitioning.LogicalRules | None = None) -> None:
        self.mesh = mesh if mesh is not None else partitioning.make_mesh()
        self.rules = tuple(rules or partitioning.standard_logical_axis_rules())
        self.batch_sharding = partitioning.batch_sharding(self.mesh)
        self.shard_index, self.num_shards = partitioning.data_shard_info(self.mesh)
        self._programs: dict[tuple, Callable] = {}
        self._signatures: set[tuple] = set()
        self._param_shardings: dict[int, tuple[Any, Any]] = {}

    @classmethod
    def single_device(cls) -> EvalMesh:
        """A 1x1 mesh on the first local device (the unsharded reference)."""
        return cls(partitioning.make_mesh(mesh_shape=(1, 1), devices=jax.local_devices()[:1]))

    # -- batch geometry ------------------------------------------------------------------------
    @property
    def data_size(self) -> int:
        return int(self.mesh.shape[partitioning.DATA_AXIS])

    def global_batch_size(self, batch_size: int) -> int:
        """`batch_size` rounded up to a multiple of the data axis (extra rows are padding)."""
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        return -(-batch_size // self.data_size) * self.data_size

    def local_rows(self, batch_size: int) -> tuple[int, int]:
        """[start, stop) of the global batch rows this host feeds (all rows with one process)."""
        per_host = batch_size // self.num_shards
        return self.shard_index * per_host, (self.shard_index + 1) * per_host

    def to_global(self, local: Any) -> Any:
        """Global arrays (rows over 'data') from this host's rows of every leaf."""
        return jax.tree.map(
            lambda x: jax.make_array_from_process_local_data(self.batch_sharding, np.asarray(x)), local)

    # -- parameters ----------------------------------------------------------------------------
    def param_shardings(self, model: Any) -> Any:
        """The training shardings of `model`'s parameters on this mesh (from its logical axes)."""
        key = id(model)
        if key not in self._param_shardings or self._param_shardings[key][0] is not model:
            shapes = {"encoder_input_tokens": (1, 16), "decoder_input_tokens": (1, 16)}
            _, _, shardings = partitioning.params_shardings(
                lambda r: model.get_initial_variables(r, shapes), jax.random.PRNGKey(0), self.mesh, self.rules)
            self._param_shardings[key] = (model, shardings)
        return self._param_shardings[key][1]

    def place_params(self, model: Any, params: Any) -> Any:
        """`params` in their training shardings on this mesh (no copy when they already are)."""
        shardings = self.param_shardings(model)
        params = nn.meta.unbox(params)  # get_initial_variables' params carry logical-axis boxes

        def place(x, s: NamedSharding):
            if isinstance(x, jax.Array) and x.sharding == s:
                return x
            if isinstance(x, jax.Array) and not x.is_fully_addressable:
                return jax.device_put(x, s)  # already global: reshard on device
            host = np.asarray(x)  # same values on every host: each host fills its own shards
            return jax.make_array_from_callback(host.shape, s, lambda idx: host[idx])

        return jax.tree.map(place, params, shardings)

    # -- programs ------------------------------------------------------------------------------
    def program(self, model: Any, fn_name: str, **static: Any) -> Callable:
        """`model.<fn_name>(params, *batch_args)` jitted with the params' training shardings, every
        batch argument and the output sharded over 'data'; keyword arguments are static.

        The body runs under `shard_map` over 'data' only ('model' stays automatic): eval rows never
        interact, so each device computes exactly its rows, with no collective over 'data'. Plain
        SPMD propagation would otherwise gather beam search's top-k over the whole batch on every
        device. Model parallelism inside (heads, mlp, vocab over 'model') is as in training.
        """
        key = (id(model), fn_name, tuple(sorted(static.items())))
        if key not in self._programs:
            fn = functools.partial(getattr(model, fn_name), **static)
            # Inside the shard_map 'data' is manual: activation constraints must not name it.
            local_rules = [(name, None if axis == partitioning.DATA_AXIS else axis) for name, axis in self.rules]

            def traced(params, args):  # args: the tuple of batch arguments
                with partitioning.axis_rules(local_rules):
                    return fn(params, *args)

            per_shard = jax.shard_map(
                traced, mesh=self.mesh, in_specs=(P(), P(partitioning.DATA_AXIS)),
                out_specs=P(partitioning.DATA_AXIS), axis_names={partitioning.DATA_AXIS}, check_vma=False)
            self._programs[key] = jax.jit(
                per_shard, in_shardings=(self.param_shardings(model), self.batch_sharding),
                out_shardings=self.batch_sharding)
        return self._programs[key]

    def run(self, model: Any, fn_name: str, params: Any, *batch: Any, **static: Any) -> jax.Array:
        """Dispatches one eval program (asynchronously: the result is not waited for)."""
        jitted = self.program(model, fn_name, **static)
        shapes = tuple((tuple(x.shape), str(x.dtype)) for x in jax.tree.leaves(batch))
        self._signatures.add((id(model), fn_name, tuple(sorted(static.items())), shapes))
        with self.context():
            return jitted(params, batch)

    def lower(self, model: Any, fn_name: str, params: Any, *batch: Any, **static: Any) -> Any:
        """The lowered program `run` would execute (for inspecting shardings and per-device shapes)."""
        jitted = self.program(model, fn_name, **static)
        with self.context():
            return jitted.lower(params, batch)

    def context(self) -> contextlib.AbstractContextManager:
        # The models' logical activation constraints take effect under the mesh, as in training.
        return jax.set_mesh(self.mesh)

    @property
    def compiles(self) -> int:
        """How many distinct programs (model, method, decoding keywords, shapes) have run."""
        return len(self._signatures)

    # -- results -------------------------------------------------------------------------------
    def fetch(self, x: jax.Array) -> np.ndarray:
        """The whole global array on this host (an all-gather across processes when needed)."""
        if x.is_fully_addressable:
            return np.asarray(x)
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))


_DEFAULTS: dict[Any, EvalMesh] = {}


def resolve(mesh: EvalMesh | Mesh | None, rules: partitioning.LogicalRules | None = None) -> EvalMesh:
    """An EvalMesh from an EvalMesh, a bare Mesh or None (all devices on 'data'), with `rules`
    (default T5X's standard ones).

    Bare meshes and None map to one shared EvalMesh per (mesh, rules), so repeated calls (in-loop
    evaluation every EVAL_PERIOD steps) reuse its compiled programs.
    """
    if isinstance(mesh, EvalMesh):
        return mesh
    key = (mesh if mesh is not None else tuple(jax.devices()), tuple(rules or ()))
    if key not in _DEFAULTS:
        _DEFAULTS[key] = EvalMesh(mesh, rules)
    return _DEFAULTS[key]


class Pipeline:
    """Keeps up to `depth` dispatched batches in flight, so the host builds batch n+1 while the
    devices compute batch n; `finish(payload, device_result)` runs as each result is needed."""

    def __init__(self, finish: Callable[[Any, Any], None], depth: int = 2) -> None:
        self.finish, self.depth = finish, max(1, depth)
        self._pending: list[tuple[Any, Any]] = []

    def push(self, payload: Any, result: Any) -> None:
        self._pending.append((payload, result))
        while len(self._pending) > self.depth:
            self.finish(*self._pending.pop(0))

    def drain(self) -> None:
        while self._pending:
            self.finish(*self._pending.pop(0))
