"""Adafactor configured exactly as T5X/FLAN use it, and shardings for its state.

T5X settings (see shared reference): factored second moments for parameters whose two largest
dimensions are both >= ``min_dim_size_to_factor`` (128), second-moment decay
``beta2_t = 1 - (t + 1) ** -0.8`` (t counts from 0, so the first step takes the squared gradient
as is), update clipping at RMS 1.0, step size multiplied by ``max(rms(param), 1e-3)``
(epsilon2), ``epsilon1 = 1e-30`` added to squared gradients, no momentum.

``optax.adafactor`` implements the same algorithm (it was ported from T5X's), so we build on it
and wrap it in ``optax.inject_hyperparams`` so the learning rate used at each step lives in the
optimizer state, where the train step reads it for logging. With scanned layers, Adafactor runs
on each layer of a stacked parameter separately (``per_layer_transform.per_layer``, T5X's
``layers`` factor rule): factoring, update clipping and the parameter scale are per layer, so a
scanned run takes the same steps as an unscanned one and its state is the unscanned state
stacked.

Optimizer state shardings: the unfactored second moment ``v`` of a parameter is sharded like
the parameter. A factored parameter keeps ``v_row`` (the parameter's shape without its largest
dimension) and ``v_col`` (without its second-largest); each takes the parameter's
``PartitionSpec`` with that dimension dropped, so statistics stay on the devices that hold the
matching rows/columns (for a stacked parameter, by its per-layer factoring). Placeholder ``(1,)``
arrays, step counters and hyperparameters are replicated.
"""

from __future__ import annotations

import functools
from typing import Any

import gin
import jax
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from optax._src.factorized import FactoredState

from flan_trainer.per_layer_transform import per_layer, stacked_leaves

# Adafactor arguments that are structural (Python control flow), not numeric hyperparameters.
_STATIC_ADAFACTOR_ARGS = (
    "min_dim_size_to_factor",
    "multiply_by_parameter_scale",
    "factored",
    "decay_offset",
    "momentum",
    "dtype_momentum",
    "weight_decay_mask",
)


@gin.configurable
def adafactor(
    learning_rate: float | optax.Schedule = 1e-3,
    *,
    min_dim_size_to_factor: int = 128,
    decay_rate: float = 0.8,
    decay_offset: int = 0,
    multiply_by_parameter_scale: bool = True,
    clipping_threshold: float | None = 1.0,
    epsilon1: float = 1e-30,
    momentum: float | None = None,
    factored: bool = True,
) -> optax.GradientTransformation:
    """T5X's Adafactor as an optax transformation; the current learning rate is kept in state.

    ``decay_offset`` restarts the second-moment decay schedule at that step (useful when
    finetuning from a checkpoint whose optimizer state is not restored). Epsilon2 (1e-3, the
    floor of the parameter scale) is fixed by optax, as in T5X.
    """
    if clipping_threshold is not None and clipping_threshold < 1.0:
        raise ValueError(
            f"clipping_threshold={clipping_threshold} must be >= 1 (T5X uses 1.0) or None."
        )
    return optax.inject_hyperparams(_per_layer_adafactor, static_args=_STATIC_ADAFACTOR_ARGS)(
        learning_rate=learning_rate,
        min_dim_size_to_factor=min_dim_size_to_factor,
        decay_rate=decay_rate,
        decay_offset=decay_offset,
        multiply_by_parameter_scale=multiply_by_parameter_scale,
        clipping_threshold=clipping_threshold,
        momentum=momentum,
        eps=epsilon1,
        factored=factored,
    )


@functools.wraps(optax.adafactor)  # inject_hyperparams reads optax.adafactor's signature through this
def _per_layer_adafactor(*args: Any, **kwargs: Any) -> optax.GradientTransformation:
    return per_layer(optax.adafactor(*args, **kwargs))


def current_learning_rate(opt_state: Any) -> jax.Array | None:
    """The learning rate of the most recent update (from ``inject_hyperparams`` state), or None."""
    leaves = jax.tree_util.tree_leaves(opt_state, is_leaf=_is_inject_state)
    for leaf in leaves:
        if _is_inject_state(leaf) and "learning_rate" in leaf.hyperparams:
            return leaf.hyperparams["learning_rate"]
    return None


def _is_inject_state(x: Any) -> bool:
    # optax has two state classes (stateless / stateful hyperparams); both carry `hyperparams`.
    return isinstance(
        x, (optax.InjectHyperparamsState, optax.InjectStatefulHyperparamsState)
    )


def factored_dims(shape: tuple[int, ...], min_dim_size_to_factor: int = 128) -> tuple[int, int] | None:
    """``(d1, d0)``: the second-largest and largest dims Adafactor factors over, or None.

    Mirrors optax/T5X: factor only when the second-largest dimension is at least
    ``min_dim_size_to_factor``. ``v_row`` drops ``d0``; ``v_col`` drops ``d1``.
    """
    if len(shape) < 2:
        return None
    order = np.argsort(shape)
    if shape[order[-2]] < min_dim_size_to_factor:
        return None
    return int(order[-2]), int(order[-1])


def _drop(spec: PartitionSpec, ndim: int, dim: int) -> PartitionSpec:
    entries = list(spec) + [None] * (ndim - len(spec))
    del entries[dim]
    return PartitionSpec(*entries)


def _factored_state_specs(state: FactoredState, param_specs: Any, params: Any) -> FactoredState:
    """Specs for optax's FactoredState following the rule in the module docstring.

    Whether a leaf is factored is read from its shape (placeholders are ``(1,)``), so the
    optimizer's ``min_dim_size_to_factor`` need not be passed in. A stacked (scanned) parameter
    is factored per layer: its factored dims are those of one layer, shifted past the layer axis.
    """
    stacked = stacked_leaves(params)

    def stat(drop_largest: bool):
        def fn(spec, param, is_stacked, leaf):
            shape = tuple(param.shape)
            lead = 1 if is_stacked else 0
            dims = factored_dims(shape[lead:], min_dim_size_to_factor=0)
            if dims is None:
                return PartitionSpec()
            dim = lead + (dims[1] if drop_largest else dims[0])
            if tuple(leaf.shape) != shape[:dim] + shape[dim + 1 :]:
                return PartitionSpec()  # unfactored placeholder
            return _drop(spec, len(shape), dim)

        return fn

    def full(spec, param, _is_stacked, leaf):
        return spec if tuple(leaf.shape) == tuple(param.shape) else PartitionSpec()

    def over(fn, tree):
        return jax.tree.map(
            fn, param_specs, params, stacked, tree, is_leaf=lambda x: isinstance(x, PartitionSpec)
        )

    return FactoredState(
        count=PartitionSpec(),
        v_row=over(stat(drop_largest=True), state.v_row),
        v_col=over(stat(drop_largest=False), state.v_col),
        v=over(full, state.v),
    )


def opt_state_partition_specs(opt_state: Any, param_specs: Any, params: Any) -> Any:
    """Mesh ``PartitionSpec``s for an optax state, given the params' mesh specs.

    ``opt_state`` and ``params`` may be abstract (``jax.eval_shape`` output). Adafactor's
    factored statistics follow the rule in the module docstring; any other sub-tree shaped like
    the params (e.g. momentum) is sharded like the params; everything else is replicated.
    """
    params_def = jax.tree.structure(params)

    def is_node(x: Any) -> bool:
        if isinstance(x, FactoredState):
            return True
        return not isinstance(x, (tuple, list)) or _same_structure(x, params_def)

    def spec_of(node: Any) -> Any:
        if isinstance(node, FactoredState):
            return _factored_state_specs(node, param_specs, params)
        if _same_structure(node, params_def):
            return jax.tree.map(
                lambda s, p, x: s if tuple(x.shape) == tuple(p.shape) else PartitionSpec(),
                param_specs, params, node, is_leaf=lambda x: isinstance(x, PartitionSpec),
            )
        return jax.tree.map(lambda _: PartitionSpec(), node)

    return jax.tree.map(spec_of, opt_state, is_leaf=lambda x: is_node(x) or x is None)


def _same_structure(tree: Any, treedef: Any) -> bool:
    try:
        return jax.tree.structure(tree) == treedef
    except Exception:  # noqa: BLE001 -- unusual nodes simply do not match
        return False


def opt_state_shardings(opt_state: Any, param_specs: Any, params: Any, mesh: Mesh) -> Any:
    """``NamedSharding``s for an optax state (see ``opt_state_partition_specs``)."""
    specs = opt_state_partition_specs(opt_state, param_specs, params)
    return jax.tree.map(
        lambda s: NamedSharding(mesh, s), specs, is_leaf=lambda x: isinstance(x, PartitionSpec)
    )
