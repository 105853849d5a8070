"""Runs a per-parameter optax transformation on each layer of a stacked (scanned) parameter.

With ``scan_layers=True`` the leaves under a ``layers`` key (``layer_stacking.STACKED_KEY``) hold
all layers of a stack on a leading axis. A transformation that looks at a whole parameter array
(Adafactor: the factoring decision, update clipping by the update's RMS, the step scaled by the
parameter's RMS) would then treat ``[layers, ...]`` as one parameter, so a scanned run would
step differently from an unscanned one. T5X avoids this with a factor rule that excludes its
``layers`` axis; here ``per_layer(inner)`` gets the same effect by ``jax.vmap``-ing ``inner``
over axis 0 of the stacked leaves only (other leaves are not mapped):

* every stacked leaf is updated exactly as its per-layer slices would be (same numbers as an
  unscanned run, up to fp32 reassociation), in one vectorised computation (no unrolled copies);
* the state is the unscanned state in the stacked layout, i.e.
  ``init(stacked) == layer_stacking.stack_layers(init(unstacked))``: statistics of stacked leaves
  get a leading layer axis; per-parameter ``(1,)`` placeholders and shared scalars (step
  counters, hyperparameters) stay unmapped. So checkpoints convert between layouts with
  ``layer_stacking`` as before.

Only for transformations that treat each parameter independently (Adafactor, Adam, ...): a
transformation that couples parameters (global-norm clipping) would become per layer.
With no stacked leaf, ``inner`` runs as is.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
import optax

from flan_trainer.layer_stacking import STACKED_KEY


def stacked_leaves(params: Any) -> Any:
    """A tree like ``params``: True for leaves under a ``layers`` key (scanned, stacked layers)."""
    return jax.tree_util.tree_map_with_path(
        lambda path, _: any(isinstance(k, jax.tree_util.DictKey) and k.key == STACKED_KEY for k in path),
        params,
    )


def _stack_groups(params: Any) -> list[Any]:
    """One vmap axes tree (0 or None per leaf) per distinct layer count among stacked leaves.

    Stacks of different depth (e.g. 2 encoder, 3 decoder layers) cannot share one vmap; they get
    nested ones. Stacks of equal depth share one (the transformation is per parameter anyway).
    """
    sizes = jax.tree.map(lambda stacked, p: np.shape(p)[0] if stacked else None, stacked_leaves(params), params)
    found = sorted({n for n in jax.tree.leaves(sizes, is_leaf=lambda x: x is None) if n is not None})
    return [jax.tree.map(lambda m, n=n: 0 if m == n else None, sizes, is_leaf=lambda x: x is None) for n in found]


def _any_stacked(axes: Any) -> Any:
    """0 where any of the per-group ``axes`` trees maps the leaf."""
    return jax.tree.map(lambda *a: 0 if 0 in a else None, *axes, is_leaf=lambda x: x is None)


def _per_layer_shapes(params: Any, axes: Any) -> Any:
    """Abstract params as one layer sees them (the stacked axis dropped)."""
    return jax.tree.map(
        lambda p, ax: jax.ShapeDtypeStruct(np.shape(p)[1:] if ax == 0 else np.shape(p), p.dtype),
        params, axes, is_leaf=lambda x: x is None,
    )


def _state_axes(layer_state: Any, layer_params: Any, axes: Any) -> Any:
    """vmap axes for a state: 0 for statistics of stacked leaves, None for all else.

    ``layer_state`` is the abstract state of one layer's params. Statistics live in sub-trees
    shaped like the params; a ``(1,)`` leaf there is a placeholder (unused statistic) and stays
    unmapped, as ``layer_stacking`` keeps one placeholder for a stacked parameter.
    """
    params_def = jax.tree.structure(layer_params)

    def params_shaped(x: Any) -> bool:
        try:
            return jax.tree.structure(x) == params_def
        except Exception:  # noqa: BLE001 -- unusual nodes simply do not match
            return False

    def stat_axis(ax, param, leaf):
        placeholder = tuple(leaf.shape) == (1,) and tuple(param.shape) != (1,)
        return None if ax is None or placeholder else 0

    def node_axes(node: Any) -> Any:
        if params_shaped(node):
            return jax.tree.map(stat_axis, axes, layer_params, node, is_leaf=lambda x: x is None)
        return jax.tree.map(lambda _: None, node)

    return jax.tree.map(node_axes, layer_state, is_leaf=lambda x: params_shaped(x) and x is not None)


def per_layer(inner: optax.GradientTransformation) -> optax.GradientTransformation:
    """``inner`` applied to each layer of every stacked leaf separately (see module docstring)."""

    def vmapped(fn: Any, params: Any, in_axes: Any, out_axes: Any) -> Any:
        # fn vmapped once per stack depth: in_axes/out_axes map (group axes, state axes) to specs.
        groups = _stack_groups(params)
        if not groups:
            return fn
        layer_params = _per_layer_shapes(params, _any_stacked(groups))
        layer_state = jax.eval_shape(inner.init, layer_params)
        for axes in groups:
            state_axes = _state_axes(layer_state, layer_params, axes)
            fn = jax.vmap(fn, in_axes=in_axes(axes, state_axes), out_axes=out_axes(axes, state_axes))
        return fn

    def init(params: Any) -> Any:
        fn = vmapped(inner.init, params, lambda a, _: (a,), lambda _, s: s)
        return fn(params)

    def update(updates: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        if params is None:
            raise ValueError("per_layer needs the params in update() to find the stacked leaves.")
        fn = vmapped(inner.update, params, lambda a, s: (a, s, a), lambda a, s: (a, s))
        return fn(updates, state, params)

    return optax.GradientTransformation(init, update)
