"""Vectorised packing, bit for bit what seqio packs, and the feature converters that use it.

seqio's ``utils.trim_and_pack_dataset`` groups the example stream into padded batches of
``max(lengths)`` examples and packs each group greedily ("next fit": an example joins the current
row if every feature still fits, else the row is written and a new one starts) with a
``tf.while_loop`` that concatenates tensors and writes TensorArrays once per EXAMPLE. That loop is
the most expensive step of the cached input path. Here the same groups are packed with a fixed
number of whole-group tensor ops:

1. per feature k, the length of each example (its count of non-zero tokens: seqio keeps that many
   leading tokens) and the exclusive prefix sums S_k of the lengths;
2. for every example i, the first example that no longer fits in a row starting at i:
   ``next(i) = min_k searchsorted_right(S_k, S_k[i] + L_k) - 1`` (greedy next fit only ever
   starts rows at ``0, next(0), next(next(0)), ...``);
3. those row starts, by pointer doubling on ``next`` (``ceil(log2(group + 1))`` gathers);
4. every cell of the ``[rows, L_k]`` output gathered from the group: its example (a searchsorted
   of the cell's token number in S_k), position and segment number (work ~ output size).

The groups, the row order, every token, position and segment id equal seqio's, including its
corner cases (an empty example takes no segment number; a group of only empty examples gives one
all-padding row); tests/test_packing.py checks this against seqio's own converters. The pipeline
is pure TF ops (no py_function), so tf.data can still save and restore the iterator state.

``fast_packing(converter)`` returns the converter with only its packing step replaced: the task
and mixture datasets, the converter's validation and feature mapping stay seqio's.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

import seqio
import tensorflow as tf

_AUTOTUNE = tf.data.AUTOTUNE


def _lengths(tokens: tf.Tensor) -> tf.Tensor:
    """seqio's example length: the number of non-zero tokens (that many leading tokens are kept)."""
    return tf.reduce_sum(tf.cast(tf.not_equal(tokens, 0), tf.int32), axis=1)


def _exclusive_cumsum(x: tf.Tensor) -> tf.Tensor:
    """[n] -> [n + 1]: 0, x0, x0 + x1, ..."""
    return tf.concat([tf.zeros([1], x.dtype), tf.cumsum(x)], axis=0)


def _row_starts(sums: list[tf.Tensor], limits: list[int], n: tf.Tensor, group: int) -> tf.Tensor:
    """Indices of the examples that start a packed row, in order (greedy next fit)."""
    # nxt[i]: the first example that does not fit in a row starting at i (n: none left). Every
    # example fits an empty row (it was trimmed to L_k), so nxt[i] > i and the chain advances.
    nxt = None
    for s, limit in zip(sums, limits, strict=True):
        end = tf.searchsorted(s[None, :], (s[:-1] + limit)[None, :], side="right")[0] - 1
        nxt = end if nxt is None else tf.minimum(nxt, end)
    jump = tf.concat([tf.cast(nxt, tf.int32), n[None]], axis=0)  # jump[n] = n: the chain's end
    # chain[m] = nxt^m(0) for m = 0..group, by the binary digits of m (jump becomes nxt^(2^t)).
    m = tf.range(group + 1, dtype=tf.int32)
    chain = tf.zeros([group + 1], tf.int32)
    for t in range(max(1, math.ceil(math.log2(group + 1)))):
        take = tf.equal(tf.bitwise.bitwise_and(tf.bitwise.right_shift(m, t), 1), 1)
        chain = tf.where(take, tf.gather(jump, chain), chain)
        jump = tf.gather(jump, jump)
    starts = tf.boolean_mask(chain, chain < n)
    # A group of only empty examples still gives one (all-padding) row, as seqio's loop does.
    return tf.cond(tf.size(starts) > 0, lambda: starts, lambda: tf.zeros([1], tf.int32))


def pack_group(group: Mapping[str, tf.Tensor], lengths: Mapping[str, int], group_size: int
               ) -> dict[str, tf.Tensor]:
    """Pack one padded group ``{k: [n, width_k]}`` into ``{k, k_positions, k_segment_ids: [rows, L_k]}``.

    ``group_size`` is the static upper bound of ``n`` (seqio's ``max(lengths)``).
    """
    keys = list(lengths)
    tokens = {k: tf.cast(group[k][:, : lengths[k]], tf.int32) for k in keys}
    n = tf.shape(tokens[keys[0]])[0]
    lens = {k: _lengths(tokens[k]) for k in keys}
    sums = {k: _exclusive_cumsum(lens[k]) for k in keys}
    starts = _row_starts([sums[k] for k in keys], [lengths[k] for k in keys], n, group_size)
    ends = tf.concat([starts[1:], n[None]], axis=0)  # one past each row's last example
    out: dict[str, tf.Tensor] = {}
    for k in keys:
        out.update(_fill_rows(k, tokens[k], lens[k], sums[k], starts, ends, lengths[k]))
    return out


def _fill_rows(key: str, tokens: tf.Tensor, lens: tf.Tensor, sums: tf.Tensor, starts: tf.Tensor,
               ends: tf.Tensor, limit: int) -> dict[str, tf.Tensor]:
    """Gather each cell of the ``[rows, limit]`` output from the group (work ~ output size)."""
    # Cell (r, c) holds the group's token number g = sums[starts[r]] + c of feature `key` (counting
    # only kept tokens) if that is before the row's end: example e = the last with sums[e] <= g.
    n, width = tf.shape(tokens)[0], tf.shape(tokens)[1]
    begin = tf.gather(sums, starts)
    g = begin[:, None] + tf.range(limit)[None, :]
    valid = g < tf.gather(sums, ends)[:, None]
    flat_g = tf.reshape(g, [1, -1])
    e = tf.reshape(tf.searchsorted(sums[None, :], flat_g, side="right"), tf.shape(g)) - 1
    e = tf.minimum(e, n - 1)  # cells past the group's last token (masked below)
    pos = g - tf.gather(sums, e)
    tok = tf.cond(  # width 0: every example of the group is empty in this feature
        width > 0, lambda: tf.gather(tf.reshape(tokens, [-1]), e * width + tf.minimum(pos, width - 1)),
        lambda: tf.zeros_like(g))
    values = tf.where(valid, tok, 0)
    # Segment of example e in its row: 1 + the number of non-empty examples before it in the row
    # (an empty example takes no number), 0 wherever the token is 0, as seqio's cumsum gives.
    nonempty = _exclusive_cumsum(tf.cast(lens > 0, tf.int32))
    segment = tf.gather(nonempty, e + 1) - tf.gather(nonempty, starts)[:, None]
    return {key: values, f"{key}_positions": tf.where(valid, pos, 0),
            f"{key}_segment_ids": tf.where(tf.not_equal(values, 0), segment, 0)}


def trim_and_pack_dataset(dataset: tf.data.Dataset, feature_lengths: Mapping[str, int]) -> tf.data.Dataset:
    """Drop-in for ``seqio.utils.trim_and_pack_dataset`` (1-D features), bitwise the same output."""
    spec = dataset.element_spec
    for k in feature_lengths:
        if k not in spec:
            raise ValueError(f"Feature '{k}' not found in dataset. Available keys are {list(spec)}")
        if not spec[k].shape.is_compatible_with(tf.TensorShape([None])):
            raise ValueError(f"Features to be packed must be one-dimensional; '{k}' has shape {spec[k].shape}")
    if set(spec) != set(feature_lengths):  # seqio drops the other features too
        dataset = dataset.map(lambda x: {k: x[k] for k in feature_lengths}, num_parallel_calls=_AUTOTUNE)
    # The same groups as seqio: padded batches of max(lengths) untrimmed examples (trimming
    # before or after padding keeps the same leading tokens).
    group_size = max(feature_lengths.values())
    ds = dataset.padded_batch(group_size, padded_shapes={k: [-1] for k in feature_lengths})
    pack = functools.partial(pack_group, lengths=dict(feature_lengths), group_size=group_size)
    ds = ds.map(pack, num_parallel_calls=_AUTOTUNE, deterministic=True)
    return ds.unbatch()


class _FastPacking:
    """Mixin: the converter's packing step is trim_and_pack_dataset above; the rest is seqio's."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _swap_delegates(self)

    def _pack_or_pad(self, ds: tf.data.Dataset, packed_lengths: Mapping[str, int]) -> tf.data.Dataset:
        if self.pack and not self._use_custom_packing_ops:
            return trim_and_pack_dataset(ds, packed_lengths)
        return super()._pack_or_pad(ds, packed_lengths)


def _swap_delegates(converter: Any) -> None:
    # seqio.DecoderFeatureConverter packs through the LM / prefix-LM converters it holds.
    for name, value in vars(converter).items():
        if isinstance(value, seqio.FeatureConverter):
            setattr(converter, name, fast_packing(value))


@functools.cache
def _fast_class(cls: type) -> type:
    return type(f"FastPacking{cls.__name__}", (_FastPacking, cls), {"__module__": __name__})


def fast_packing(feature_converter: Any) -> Any:
    """The same converter (class or instance) with vectorised packing; others pass through.

    A class gives a subclass (still constructed with ``pack=...``); an instance gives a copy of
    that subclass with the same settings.
    """
    if isinstance(feature_converter, type):
        if not issubclass(feature_converter, seqio.FeatureConverter) or issubclass(feature_converter, _FastPacking):
            return feature_converter
        return _fast_class(feature_converter)
    if isinstance(feature_converter, _FastPacking) or not isinstance(feature_converter, seqio.FeatureConverter):
        return feature_converter
    cls = _fast_class(type(feature_converter))
    fast = cls.__new__(cls)
    fast.__dict__.update(feature_converter.__dict__)
    _swap_delegates(fast)
    return fast
