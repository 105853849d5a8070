"""The train state pytree and its sharded creation.

``TrainState(step, params, opt_state)`` is a flax struct (a pytree), so it passes through
``jax.jit``, donation and orbax checkpointing as one object. Its shardings are another
``TrainState`` whose leaves are ``NamedSharding``s: params follow the logical axis rules, the
optimizer state follows ``optimizers.opt_state_partition_specs``, the step is replicated.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from flan_trainer import optimizers, partitioning


@flax.struct.dataclass
class TrainState:
    """Everything that changes during training: step counter, parameters, optimizer state."""

    step: jax.Array
    params: Any
    opt_state: Any

    @classmethod
    def create(cls, params: Any, optimizer: optax.GradientTransformation) -> TrainState:
        """A fresh state at step 0 with a newly initialised optimizer state."""
        return cls(step=jnp.zeros((), jnp.int32), params=params, opt_state=optimizer.init(params))


def state_partition_specs(abstract_state: TrainState, param_mesh_specs: Any) -> TrainState:
    """Mesh ``PartitionSpec``s for every leaf of ``abstract_state`` (a TrainState of shapes)."""
    return TrainState(
        step=PartitionSpec(),
        params=param_mesh_specs,
        opt_state=optimizers.opt_state_partition_specs(
            abstract_state.opt_state, param_mesh_specs, abstract_state.params
        ),
    )


def specs_to_shardings(specs: Any, mesh: Mesh) -> Any:
    """Turns a tree of mesh ``PartitionSpec``s into ``NamedSharding``s on ``mesh``."""
    return jax.tree.map(
        lambda s: NamedSharding(mesh, s), specs, is_leaf=lambda x: isinstance(x, PartitionSpec)
    )


def _variables_init_fn(model: Any, input_shapes: Mapping[str, tuple], input_types: Any):
    def init(rng: jax.Array) -> dict[str, Any]:
        return model.get_initial_variables(rng, dict(input_shapes), input_types)

    return init


def init_sharded_state(
    model: Any,
    optimizer: optax.GradientTransformation,
    rng: jax.Array,
    input_shapes: Mapping[str, tuple],
    mesh: Mesh,
    rules: partitioning.LogicalRules,
    input_types: Mapping[str, Any] | None = None,
) -> tuple[TrainState, TrainState]:
    """Creates the train state directly in its sharded layout; returns ``(state, shardings)``.

    Shapes and logical axes come from ``jax.eval_shape`` of the model's init (no memory used);
    the real init then runs under ``jax.jit(..., out_shardings=...)`` so each device computes
    only its own shards and no host materialises the unsharded model. The logical axis rules are
    bound while tracing. A dimension that its mesh axes do not divide evenly is replicated
    instead (``partitioning.fit_spec_to_shape``). No mesh context is entered, because flax's
    DenseGeneral with multi-dimensional logically partitioned kernels fails under
    ``jax.set_mesh`` (flax#3676) and the out_shardings already fix every leaf's placement.
    """
    init_vars = _variables_init_fn(model, input_shapes, input_types)
    _, param_mesh_specs, _ = partitioning.params_shardings(init_vars, rng, mesh, rules)

    def init_state(r: jax.Array) -> TrainState:
        params = nn.meta.unbox(init_vars(r)["params"])
        return TrainState.create(params, optimizer)

    with partitioning.axis_rules(rules):
        abstract_state = jax.eval_shape(init_state, rng)
        shardings = specs_to_shardings(
            state_partition_specs(abstract_state, param_mesh_specs), mesh
        )
        state = jax.jit(init_state, out_shardings=shardings)(rng)
    return state, shardings
