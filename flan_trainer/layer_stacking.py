"""Converts parameter trees between per-layer (T5X) and scanned (stacked) layouts.

The model runs with ``layers_0 ... layers_{n-1}`` sub-trees (``scan_layers=False``, T5X's and
Hugging Face's naming) or with one ``layers`` sub-tree whose leaves carry a leading layer axis
(``scan_layers=True``, see ``models.t5.run_stack``). Everything that crosses a boundary
(checkpoint restore, HF/T5X import and export) converts with the two pure functions here, so
the layout is a run-time choice only:

* ``stack_layers(tree)``: every mapping holding ``layers_0 .. layers_{n-1}`` gets them replaced
  by ``layers`` (leaves stacked on a new axis 0).
* ``unstack_layers(tree)``: the inverse.

They work on any nested mapping of arrays (params, flax variables, the params-shaped parts of an
optimizer state, abstract ``ShapeDtypeStruct`` trees). numpy leaves stay numpy.

Checkpoints are written in the layout the run uses, so a same-layout resume is bitwise. A
checkpoint restored into the other layout gets its parameters converted (``checkpoints.py``);
its optimizer state is converted by the same rule where it mirrors the parameters (Adafactor's
unfactored ``v`` and factored ``v_row``/``v_col`` of a stacked ``[L, a, b]`` kernel are the
per-layer statistics stacked, because ``optimizers.adafactor`` runs per layer on stacked leaves,
see ``per_layer_transform``); per-parameter placeholders of shape ``(1,)`` are kept as one
placeholder.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

STACKED_KEY = "layers"
_LAYER_RE = re.compile(r"^layers_(\d+)$")


def _layer_indices(node: Mapping) -> list[int] | None:
    """Sorted layer numbers if ``node`` holds a complete ``layers_0..n-1`` run, else None."""
    found = sorted(int(m.group(1)) for k in node if isinstance(k, str) and (m := _LAYER_RE.match(k)))
    if not found:
        return None
    if found != list(range(len(found))):
        raise ValueError(f"layer keys {found} are not a contiguous run layers_0..layers_{len(found) - 1}.")
    return found


def _is_placeholder(leaf: Any) -> bool:
    # Optax keeps a (1,) placeholder for statistics a parameter does not use (Adafactor's v of a
    # factored kernel); a stacked run has one per stacked parameter, not (L, 1). T5 has no
    # parameter of shape (1,), so the rule is unambiguous for parameters.
    return tuple(np.shape(leaf)) == (1,)


def _stack_leaves(*leaves: Any) -> Any:
    first = leaves[0]
    if all(_is_placeholder(x) for x in leaves):
        return first
    if isinstance(first, jax.ShapeDtypeStruct):
        return jax.ShapeDtypeStruct((len(leaves), *first.shape), first.dtype)
    if all(isinstance(x, np.ndarray) for x in leaves):
        return np.stack(leaves)
    return jnp.stack(leaves)


def _unstack_leaf(leaf: Any, n: int, i: int) -> Any:
    if _is_placeholder(leaf):
        return leaf
    if tuple(np.shape(leaf))[:1] != (n,):
        raise ValueError(f"a stacked leaf of shape {np.shape(leaf)} has no leading layer axis of size {n}.")
    if isinstance(leaf, jax.ShapeDtypeStruct):
        return jax.ShapeDtypeStruct(leaf.shape[1:], leaf.dtype)
    return leaf[i]


def _num_layers(node: Any) -> int:
    sizes = {np.shape(x)[0] for x in jax.tree.leaves(node) if np.shape(x) != () and not _is_placeholder(x)}
    if len(sizes) != 1:
        raise ValueError(f"stacked layers disagree on the layer-axis size: {sorted(sizes)}.")
    return sizes.pop()


def _over_mappings(fn, tree: Any) -> Any:
    # Applies fn to every outermost mapping, through tuples/namedtuples/dataclass pytrees
    # (optimizer states, train states); other leaves pass through.
    return jax.tree.map(lambda x: fn(x) if isinstance(x, Mapping) else x, tree, is_leaf=lambda x: isinstance(x, Mapping))


def _mappings(tree: Any) -> list[Mapping]:
    return [x for x in jax.tree.leaves(tree, is_leaf=lambda x: isinstance(x, Mapping)) if isinstance(x, Mapping)]


def stack_layers(tree: Any) -> Any:
    """Per-layer ``layers_i`` sub-trees -> one ``layers`` sub-tree with a leading layer axis."""
    if not isinstance(tree, Mapping):
        return _over_mappings(stack_layers, tree)
    out = {k: stack_layers(v) for k, v in tree.items() if not (isinstance(k, str) and _LAYER_RE.match(k))}
    indices = _layer_indices(tree)
    if indices is not None:
        if STACKED_KEY in tree:
            raise ValueError("a tree level has both 'layers' and 'layers_i' keys; it cannot be converted.")
        per_layer = [stack_layers(tree[f"layers_{i}"]) for i in indices]
        out[STACKED_KEY] = jax.tree.map(_stack_leaves, *per_layer)
    return out


def unstack_layers(tree: Any) -> Any:
    """One stacked ``layers`` sub-tree -> ``layers_0 .. layers_{n-1}`` (the inverse)."""
    if not isinstance(tree, Mapping):
        return _over_mappings(unstack_layers, tree)
    out = {k: unstack_layers(v) for k, v in tree.items() if k != STACKED_KEY}
    if STACKED_KEY in tree:
        stacked = tree[STACKED_KEY]
        n = _num_layers(stacked)
        for i in range(n):
            out[f"layers_{i}"] = unstack_layers(jax.tree.map(lambda x, i=i: _unstack_leaf(x, n, i), stacked))
    return out


def is_stacked(tree: Any) -> bool:
    """Whether any level of ``tree`` holds a stacked ``layers`` sub-tree."""
    if not isinstance(tree, Mapping):
        return any(is_stacked(x) for x in _mappings(tree))
    return STACKED_KEY in tree or any(is_stacked(v) for v in tree.values())


def has_layer_keys(tree: Any) -> bool:
    """Whether any level of ``tree`` holds per-layer ``layers_i`` sub-trees."""
    if not isinstance(tree, Mapping):
        return any(has_layer_keys(x) for x in _mappings(tree))
    return _layer_indices(tree) is not None or any(has_layer_keys(v) for v in tree.values())


def to_layout(tree: Any, scanned: bool) -> Any:
    """``tree`` in the scanned (stacked) or unscanned (per-layer) layout, whichever it is now."""
    if scanned:
        return stack_layers(tree) if has_layer_keys(tree) else tree
    return unstack_layers(tree) if is_stacked(tree) else tree


def layouts_differ(found: Any, target: Any) -> bool:
    """Whether one tree is stacked and the other per-layer (so one must be converted)."""
    return (is_stacked(found) and has_layer_keys(target)) or (has_layer_keys(found) and is_stacked(target))
