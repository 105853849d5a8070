"""Building blocks of T5.1.1 with T5X's parameter names, shapes and logical axis names.

Every kernel is stored exactly as T5X stores it (attention kernels 2-D ``[embed, heads*head_dim]``)
so T5X and Hugging Face checkpoints map one-to-one. Kernels are reshaped to per-head views only
inside the computation; keeping the stored parameters 2-D also sidesteps a flax bug where a
logically partitioned multi-dimensional DenseGeneral kernel fails to initialise under a mesh.
Parameters are float32; activations use ``dtype``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Initializer = Callable[..., jax.Array]
NEG_INF = -1e10  # additive bias for masked attention logits (T5X's value)

default_kernel_init = nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal")
attention_kernel_init = nn.initializers.variance_scaling(1.0, "fan_in", "normal")


def constrain(x: jax.Array, axes: Sequence[str]) -> jax.Array:
    """Activation sharding hint by logical names (a no-op without axis rules or a mesh)."""
    return nn.with_logical_constraint(x, tuple(axes))


class Dense(nn.Module):
    """``y = x @ kernel`` over the last axis with a 2-D logically named kernel and no bias."""

    features: int
    kernel_axes: tuple[str, str]
    dtype: jnp.dtype = jnp.float32
    kernel_init: Initializer = default_kernel_init

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param(
            "kernel",
            nn.with_logical_partitioning(self.kernel_init, self.kernel_axes),
            (x.shape[-1], self.features),
            jnp.float32,
        )
        # A 2-D matmul over flattened tokens, not an einsum over [..., d]: XLA:CPU then lays out
        # the backward's weight-gradient matmul without transposing the activation gradient
        # (a measured ~17% of a T5-small training step on CPU).
        y = jnp.dot(x.astype(self.dtype).reshape(-1, x.shape[-1]), kernel.astype(self.dtype))
        return y.reshape(*x.shape[:-1], self.features)


class Embed(nn.Module):
    """Token embedding ``[vocab, embed]``; ``attend`` reuses it as an output projection."""

    num_embeddings: int
    features: int
    dtype: jnp.dtype = jnp.float32
    embedding_init: Initializer = nn.initializers.normal(stddev=1.0)

    def setup(self) -> None:
        self.embedding = self.param(
            "embedding",
            nn.with_logical_partitioning(self.embedding_init, ("vocab", "embed")),
            (self.num_embeddings, self.features),
            jnp.float32,
        )

    def __call__(self, ids: jax.Array) -> jax.Array:
        if not jnp.issubdtype(ids.dtype, jnp.integer):
            raise TypeError(f"token ids must be integers, got dtype {ids.dtype}.")
        # A gather, not a one-hot matmul: O(tokens * embed) instead of O(tokens * vocab * embed).
        out = jnp.take(self.embedding.astype(self.dtype), ids, axis=0)
        return constrain(out, ("batch", "length", "embed"))

    def attend(self, query: jax.Array) -> jax.Array:
        """Logits against every embedding row (tied output projection)."""
        return jnp.einsum("...d,vd->...v", query.astype(self.dtype), self.embedding.astype(self.dtype))


class LayerNorm(nn.Module):
    """T5's RMS norm: ``x / rms(x) * scale``, no mean subtraction and no bias."""

    epsilon: float = 1e-6
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        scale = self.param(
            "scale", nn.with_logical_partitioning(nn.initializers.ones, ("embed",)), (x.shape[-1],), jnp.float32
        )
        x32 = x.astype(jnp.float32)
        mean2 = jnp.mean(jnp.square(x32), axis=-1, keepdims=True)
        y = (x32 * jax.lax.rsqrt(mean2 + self.epsilon)).astype(self.dtype)
        return y * scale.astype(self.dtype)


def relative_position_bucket(
    relative_position: np.ndarray, bidirectional: bool, num_buckets: int, max_distance: int
) -> np.ndarray:
    """Mesh-TF/T5X bucketing of ``key_pos - query_pos``: exact for short, log-spaced for long."""
    ret = np.zeros_like(relative_position, dtype=np.int32)
    n = -relative_position
    if bidirectional:
        num_buckets //= 2
        ret += (n < 0).astype(np.int32) * num_buckets
        n = np.abs(n)
    else:
        n = np.maximum(n, 0)
    max_exact = num_buckets // 2
    is_small = n < max_exact
    eps = np.finfo(np.float32).eps
    val_if_large = max_exact + (
        np.log(n.astype(np.float32) / max_exact + eps)
        / np.log(max_distance / max_exact)
        * (num_buckets - max_exact)
    ).astype(np.int32)
    val_if_large = np.minimum(val_if_large, num_buckets - 1)
    return ret + np.where(is_small, n, val_if_large).astype(np.int32)


class RelativePositionBiases(nn.Module):
    """One learned scalar per (head, distance bucket); shared by all layers of a stack."""

    num_buckets: int
    max_distance: int
    num_heads: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(
        self, qlen: int, klen: int, bidirectional: bool, query_offset: jax.Array | None = None
    ) -> jax.Array:
        """Bias ``[1, heads, qlen, klen]``; queries sit at ``query_offset + 0..qlen-1``.

        Buckets are numpy constants (positions are static); a dynamic ``query_offset`` (decoding)
        slices rows of the ``[klen, klen]`` table, so decoding sees bit-identical buckets.
        """
        if query_offset is None:
            relative = np.arange(klen)[None, :] - np.arange(qlen)[:, None]
            buckets = jnp.asarray(
                relative_position_bucket(relative, bidirectional, self.num_buckets, self.max_distance)
            )
        else:
            relative = np.arange(klen)[None, :] - np.arange(klen)[:, None]
            full = relative_position_bucket(relative, bidirectional, self.num_buckets, self.max_distance)
            buckets = jax.lax.dynamic_slice_in_dim(jnp.asarray(full), query_offset, qlen, axis=0)
        table = self.param(
            "rel_embedding",
            nn.with_logical_partitioning(
                nn.initializers.variance_scaling(1.0, "fan_avg", "uniform"), ("heads", "relpos_buckets")
            ),
            (self.num_heads, self.num_buckets),
            jnp.float32,
        )
        values = jnp.take(table.astype(self.dtype), buckets, axis=1)  # [heads, q, k]
        return values[None]


def mask_to_bias(mask: jax.Array | None, dtype: jnp.dtype) -> jax.Array | None:
    """Boolean keep-mask -> additive bias (0 where kept, -1e10 where masked)."""
    if mask is None:
        return None
    return jnp.where(mask, 0.0, NEG_INF).astype(dtype)


class MultiHeadDotProductAttention(nn.Module):
    """Multi-head attention without 1/sqrt(d) scaling (folded into the query init, as in T5X).

    With ``decode=True`` keys and values are appended to a ``cache`` collection at
    ``cache_index`` (given by the caller, which owns the position counter); the call then
    attends over the whole cache and the caller's mask says which slots are visible.
    """

    num_heads: int
    head_dim: int
    dtype: jnp.dtype = jnp.float32
    dropout_rate: float = 0.0

    def _projection(self, name: str, features: int, axes: tuple[str, str], init: Initializer) -> Dense:
        return Dense(features, axes, dtype=self.dtype, kernel_init=init, name=name)

    @nn.compact
    def __call__(
        self,
        inputs_q: jax.Array,
        inputs_kv: jax.Array,
        bias: jax.Array | None = None,
        *,
        deterministic: bool = True,
        decode: bool = False,
        cache_index: jax.Array | None = None,
    ) -> jax.Array:
        inner = self.num_heads * self.head_dim
        depth_scaling = np.sqrt(self.head_dim).astype(np.float32)

        def query_init(*args):
            return attention_kernel_init(*args) / depth_scaling

        def heads(x: jax.Array) -> jax.Array:  # [b, l, h*d] -> [b, l, h, d]; a free reshape
            return constrain(x.reshape(*x.shape[:-1], self.num_heads, self.head_dim), ("batch", "length", "heads", "kv"))

        q = heads(self._projection("query", inner, ("embed", "joined_kv"), query_init)(inputs_q))
        k = heads(self._projection("key", inner, ("embed", "joined_kv"), attention_kernel_init)(inputs_kv))
        v = heads(self._projection("value", inner, ("embed", "joined_kv"), attention_kernel_init)(inputs_kv))

        if decode:
            k, v = self._update_cache(k, v, cache_index)

        logits = jnp.einsum("bqhd,bkhd->bhqk", q, k).astype(jnp.float32)
        if bias is not None:
            logits = logits + bias.astype(jnp.float32)
        weights = jax.nn.softmax(logits, axis=-1).astype(self.dtype)
        if not deterministic and self.dropout_rate > 0.0:
            # Broadcast over the query axis, as T5X's broadcast_dropout does.
            b, h, _, k_len = weights.shape
            keep = jax.random.bernoulli(self.make_rng("dropout"), 1.0 - self.dropout_rate, (b, h, 1, k_len))
            weights = weights * (keep / (1.0 - self.dropout_rate)).astype(self.dtype)
        out = jnp.einsum("bhqk,bkhd->bqhd", weights, v)
        out = out.reshape(*out.shape[:2], inner)
        return self._projection("out", inputs_q.shape[-1], ("joined_kv", "embed"), attention_kernel_init)(out)

    def _update_cache(self, k: jax.Array, v: jax.Array, cache_index: jax.Array | None):
        """Writes this call's keys/values at ``cache_index``; returns the full cached k/v.

        On the first (shape-only) call the cache is created with ``k``'s full length and left
        empty, so initialising it with a ``[batch, max_length]`` dummy input sizes it.
        """
        initialized = self.has_variable("cache", "cached_key")
        cached_k = self.variable("cache", "cached_key", jnp.zeros, k.shape, k.dtype)
        cached_v = self.variable("cache", "cached_value", jnp.zeros, v.shape, v.dtype)
        if not initialized:
            return k, v
        if cache_index is None:
            raise ValueError("decode=True needs the cache_index of the first query position.")
        idx = jnp.asarray(cache_index, jnp.int32)
        zero = jnp.zeros((), jnp.int32)
        cached_k.value = jax.lax.dynamic_update_slice(cached_k.value, k.astype(cached_k.value.dtype), (zero, idx, zero, zero))
        cached_v.value = jax.lax.dynamic_update_slice(cached_v.value, v.astype(cached_v.value.dtype), (zero, idx, zero, zero))
        return cached_k.value, cached_v.value


_ACTIVATION_FNS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "gelu": lambda x: jax.nn.gelu(x, approximate=True),  # T5.1.1's "gelu_new" (tanh form)
    "gelu_exact": lambda x: jax.nn.gelu(x, approximate=False),
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
    "linear": lambda x: x,
}


class MlpBlock(nn.Module):
    """Gated MLP: product of ``act_i(x @ wi_i)`` then ``wo``; one activation -> plain ``wi``."""

    intermediate_dim: int
    activations: tuple[str, ...] = ("gelu", "linear")
    dropout_rate: float = 0.0
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool = True) -> jax.Array:
        hidden = None
        for i, act in enumerate(self.activations):
            name = "wi" if len(self.activations) == 1 else f"wi_{i}"
            h = _ACTIVATION_FNS[act](Dense(self.intermediate_dim, ("embed", "mlp"), dtype=self.dtype, name=name)(x))
            hidden = h if hidden is None else hidden * h
        hidden = constrain(hidden, ("batch", "length", "mlp"))
        hidden = nn.Dropout(self.dropout_rate, broadcast_dims=(-2,))(hidden, deterministic=deterministic)
        out = Dense(x.shape[-1], ("mlp", "embed"), dtype=self.dtype, name="wo")(hidden)
        return constrain(out, ("batch", "length", "embed"))


def attention_mask(query_keep: jax.Array, key_keep: jax.Array) -> jax.Array:
    """``[b, 1, q, k]`` mask that keeps a pair only when both query and key are kept."""
    return jnp.logical_and(query_keep[:, None, :, None], key_keep[:, None, None, :])


def segment_mask(query_segments: jax.Array, key_segments: jax.Array) -> jax.Array:
    """``[b, 1, q, k]`` mask: attention only within the same packed example."""
    return query_segments[:, None, :, None] == key_segments[:, None, None, :]


def causal_mask(length: int) -> jax.Array:
    """``[1, 1, l, l]`` lower-triangular mask (a query sees itself and earlier keys)."""
    return jnp.tril(jnp.ones((length, length), jnp.bool_))[None, None]


def combine_masks(*masks: jax.Array | None) -> jax.Array | None:
    """Logical AND of the given masks (None entries skipped)."""
    present = [m for m in masks if m is not None]
    if not present:
        return None
    out = present[0]
    for m in present[1:]:
        out = jnp.logical_and(out, m)
    return out
