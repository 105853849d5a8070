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
    output_dtype: jnp.dtype | None = None  # e.g. float32 logits from bf16 operands (fp32 accumulation)

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
        y = jnp.dot(
            x.astype(self.dtype).reshape(-1, x.shape[-1]),
            kernel.astype(self.dtype),
            preferred_element_type=self.output_dtype,
        )
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


def choose_attention_impl(
    requested: str, dtype: jnp.dtype, head_dim: int, *, dropout: bool, decode: bool
) -> str:
    """``'xla'`` or ``'cudnn'`` for one attention call, decided at trace time.

    ``'auto'`` takes cuDNN's fused kernel only where it applies: a GPU backend, bf16/fp16
    activations, a head_dim that is a multiple of 8 up to 128, no attention dropout (the
    fused kernel's dropout pattern is not T5X's broadcast one) and not single-token decoding.
    ``'cudnn'`` forces it and fails with a clear message where it cannot run.
    """
    if requested == "xla":
        return "xla"
    on_gpu = jax.default_backend() == "gpu"
    fits = jnp.dtype(dtype) in (jnp.bfloat16, jnp.float16) and head_dim % 8 == 0 and head_dim <= 128
    if requested == "cudnn":
        if not on_gpu:
            raise ValueError(
                f"attention_impl='cudnn' needs a GPU backend (this one is {jax.default_backend()!r}); "
                "use attention_impl='auto' or 'xla'."
            )
        if not fits:
            raise ValueError(
                f"attention_impl='cudnn' needs dtype bfloat16/float16 and head_dim a multiple of 8 "
                f"<= 128 (got {jnp.dtype(dtype).name}, head_dim={head_dim}); use 'auto' or 'xla'."
            )
        return "cudnn"
    return "cudnn" if on_gpu and fits and not dropout and not decode else "xla"


def fused_attention(q: jax.Array, k: jax.Array, v: jax.Array, bias: jax.Array | None, implementation: str) -> jax.Array:
    """``jax.nn.dot_product_attention`` with T5's conventions: no 1/sqrt(d) scale, additive bias.

    The bias (relative positions plus the -1e10 mask) is passed as ``bias`` so cuDNN also
    returns its gradient (the relative position table trains through it).
    """
    if bias is not None:
        bias = bias.astype(q.dtype)
        if q.dtype == jnp.float16:  # -1e10 overflows fp16; the most negative finite value masks too
            bias = jnp.maximum(bias, jnp.finfo(jnp.float16).min)
    return jax.nn.dot_product_attention(q, k, v, bias=bias, scale=1.0, implementation=implementation)


def _grouped_attention(q: jax.Array, k: jax.Array, v: jax.Array, bias: jax.Array | None, dtype: jnp.dtype) -> jax.Array:
    """Attention of ``q [rows*n, lq, h, d]`` over ``k, v [rows, lk, h, d]`` shared by n consecutive rows.

    Beam search keeps one copy of the projected encoder output per input row, not per beam: the
    beams of a row read the same keys/values, so the cache is ``num_beams`` times smaller and
    beam reordering never copies it. ``bias`` has ``rows*n`` or ``rows`` (or 1) leading rows.
    """
    rows, n = k.shape[0], q.shape[0] // k.shape[0]
    if rows * n != q.shape[0]:
        raise ValueError(f"{q.shape[0]} query rows do not group over {rows} key/value rows.")
    grouped = q.reshape(rows, n, *q.shape[1:])
    logits = jnp.einsum("bnqhd,bkhd->bnhqk", grouped, k).astype(jnp.float32)
    if bias is not None:
        b = bias.astype(jnp.float32)
        logits = logits + (b.reshape(rows, n, *b.shape[1:]) if b.shape[0] == rows * n else b[:, None])
    weights = jax.nn.softmax(logits, axis=-1).astype(dtype)
    return jnp.einsum("bnhqk,bkhd->bnqhd", weights, v)


class MultiHeadDotProductAttention(nn.Module):
    """Multi-head attention without 1/sqrt(d) scaling (folded into the query init, as in T5X).

    With ``decode=True`` keys and values are appended to a ``cache`` collection at
    ``cache_index`` (given by the caller, which owns the position counter); the call then
    attends over the whole cache and the caller's mask says which slots are visible.

    ``cache_cross=True`` (encoder-decoder attention while decoding): a call that is given
    ``inputs_kv`` projects it and stores the keys/values in the cache; a call with
    ``inputs_kv=None`` reuses them, so the encoder output is projected once per input.
    """

    num_heads: int
    head_dim: int
    dtype: jnp.dtype = jnp.float32
    dropout_rate: float = 0.0
    attention_impl: str = "auto"
    cache_cross: bool = False

    def _projection(self, name: str, features: int, axes: tuple[str, str], init: Initializer) -> Dense:
        return Dense(features, axes, dtype=self.dtype, kernel_init=init, name=name)

    @nn.compact
    def __call__(
        self,
        inputs_q: jax.Array,
        inputs_kv: jax.Array | None,
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
        key = self._projection("key", inner, ("embed", "joined_kv"), attention_kernel_init)
        value = self._projection("value", inner, ("embed", "joined_kv"), attention_kernel_init)
        if decode and self.cache_cross:
            k, v = self._cross_cache(inputs_kv, lambda x: heads(key(x)), lambda x: heads(value(x)))
        else:
            k, v = heads(key(inputs_kv)), heads(value(inputs_kv))
            if decode:
                k, v = self._update_cache(k, v, cache_index)

        dropout = not deterministic and self.dropout_rate > 0.0
        impl = choose_attention_impl(self.attention_impl, self.dtype, self.head_dim, dropout=dropout, decode=decode)
        if impl == "cudnn":
            out = fused_attention(q, k, v, bias, "cudnn")
            out = out.reshape(*out.shape[:2], inner)
            return self._projection("out", inputs_q.shape[-1], ("joined_kv", "embed"), attention_kernel_init)(out)

        if q.shape[0] != k.shape[0]:  # beam search over per-row cached cross keys/values
            out = _grouped_attention(q, k, v, bias, self.dtype).reshape(q.shape[0], q.shape[1], inner)
            return self._projection("out", inputs_q.shape[-1], ("joined_kv", "embed"), attention_kernel_init)(out)
        logits = jnp.einsum("bqhd,bkhd->bhqk", q, k).astype(jnp.float32)
        if bias is not None:
            logits = logits + bias.astype(jnp.float32)
        weights = jax.nn.softmax(logits, axis=-1).astype(self.dtype)
        if dropout:
            # Broadcast over the query axis, as T5X's broadcast_dropout does.
            b, h, _, k_len = weights.shape
            keep = jax.random.bernoulli(self.make_rng("dropout"), 1.0 - self.dropout_rate, (b, h, 1, k_len))
            weights = weights * (keep / (1.0 - self.dropout_rate)).astype(self.dtype)
        out = jnp.einsum("bhqk,bkhd->bqhd", weights, v)
        out = out.reshape(*out.shape[:2], inner)
        return self._projection("out", inputs_q.shape[-1], ("joined_kv", "embed"), attention_kernel_init)(out)

    def _cross_cache(self, inputs_kv: jax.Array | None, project_k: Callable, project_v: Callable):
        """Encoder-decoder keys/values: projected and stored when given, else read back."""
        if inputs_kv is None:
            if not self.has_variable("cache", "cached_cross_key"):
                raise ValueError("cached cross-attention has no keys yet: the first decode call must pass `encoded`.")
            return self.get_variable("cache", "cached_cross_key"), self.get_variable("cache", "cached_cross_value")
        k, v = project_k(inputs_kv), project_v(inputs_kv)
        cached_k = self.variable("cache", "cached_cross_key", jnp.zeros, k.shape, k.dtype)
        cached_v = self.variable("cache", "cached_cross_value", jnp.zeros, v.shape, v.dtype)
        cached_k.value, cached_v.value = k, v
        return k, v

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
