"""T5.1.1 / Flan-T5 encoder-decoder (flax linen) with T5X's exact parameter tree.

Tree: ``token_embedder/embedding``; ``encoder/{relpos_bias, layers_i, encoder_norm}``;
``decoder/{relpos_bias, layers_i, decoder_norm, logits_dense}``. The ``Decoder`` here is also
the decoder-only model's stack (``decoder_only.py``), built without cross-attention.

Packing: segment ids keep attention inside each packed example. Relative position biases only
see differences of in-row offsets, which are the same inside a packed segment as for the
example alone, so the converter's ``*_positions`` features are accepted but not needed.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from flan_trainer.models import layers as L
from flan_trainer.models.config import TransformerConfig


def _dropout(cfg: TransformerConfig, x: jax.Array, deterministic: bool) -> jax.Array:
    # T5X shares one dropout pattern along the length axis of each residual stream.
    return nn.Dropout(cfg.dropout_rate, broadcast_dims=(-2,))(x, deterministic=deterministic)


def _norm(cfg: TransformerConfig, name: str) -> L.LayerNorm:
    return L.LayerNorm(epsilon=cfg.layer_norm_epsilon, dtype=cfg.activation_dtype, name=name)


def _attention(cfg: TransformerConfig, name: str, cache_cross: bool = False) -> L.MultiHeadDotProductAttention:
    return L.MultiHeadDotProductAttention(
        num_heads=cfg.num_heads,
        head_dim=cfg.head_dim,
        dtype=cfg.activation_dtype,
        dropout_rate=cfg.dropout_rate,
        attention_impl=cfg.attention_impl,
        cache_cross=cache_cross,
        name=name,
    )


def _mlp(cfg: TransformerConfig) -> L.MlpBlock:
    return L.MlpBlock(
        intermediate_dim=cfg.mlp_dim,
        activations=cfg.mlp_activations,
        dropout_rate=cfg.dropout_rate,
        dtype=cfg.activation_dtype,
        name="mlp",
    )


def _relpos(cfg: TransformerConfig) -> L.RelativePositionBiases:
    return L.RelativePositionBiases(
        num_buckets=cfg.relative_attention_num_buckets,
        max_distance=cfg.relative_attention_max_distance,
        num_heads=cfg.num_heads,
        dtype=cfg.activation_dtype,
        name="relpos_bias",
    )


class EncoderLayer(nn.Module):
    """Pre-norm self-attention then gated MLP, each with a residual connection.

    Static settings are attributes and ``__call__`` takes arrays only, so the layer can be
    wrapped by ``nn.remat`` and ``nn.scan`` (``scanned=True`` returns ``(x, None)``).
    """

    config: TransformerConfig
    deterministic: bool = True
    scanned: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, bias: jax.Array):
        cfg, det = self.config, self.deterministic
        y = _norm(cfg, "pre_attention_layer_norm")(x)
        y = _attention(cfg, "attention")(y, y, bias, deterministic=det)
        x = x + _dropout(cfg, y, det)
        y = _norm(cfg, "pre_mlp_layer_norm")(x)
        y = _mlp(cfg)(y, deterministic=det)
        x = L.constrain(x + _dropout(cfg, y, det), ("batch", "length", "embed"))
        return (x, None) if self.scanned else x


class DecoderLayer(nn.Module):
    """Causal self-attention, optional encoder-decoder attention, gated MLP (see EncoderLayer).

    While decoding with ``config.cache_cross_attention``, ``encoded=None`` reuses the
    encoder-decoder keys/values cached by an earlier call that passed ``encoded``.
    """

    config: TransformerConfig
    cross_attention: bool = True
    deterministic: bool = True
    decode: bool = False
    scanned: bool = False

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        self_bias: jax.Array,
        encoded: jax.Array | None = None,
        cross_bias: jax.Array | None = None,
        cache_index: jax.Array | None = None,
    ):
        cfg, det, decode = self.config, self.deterministic, self.decode
        y = _norm(cfg, "pre_self_attention_layer_norm")(x)
        y = _attention(cfg, "self_attention")(y, y, self_bias, deterministic=det, decode=decode, cache_index=cache_index)
        x = x + _dropout(cfg, y, det)
        if self.cross_attention:
            y = _norm(cfg, "pre_cross_attention_layer_norm")(x)
            attend = _attention(cfg, "encoder_decoder_attention", cache_cross=cfg.cache_cross_attention)
            # Cross-attention only uses the cache when it keeps the projected encoder output.
            y = attend(y, encoded, cross_bias, deterministic=det, decode=decode and cfg.cache_cross_attention)
            x = x + _dropout(cfg, y, det)
        y = _norm(cfg, "pre_mlp_layer_norm")(x)
        y = _mlp(cfg)(y, deterministic=det)
        x = L.constrain(x + _dropout(cfg, y, det), ("batch", "length", "embed"))
        return (x, None) if self.scanned else x


def remat_policy(name: str):
    """``jax.checkpoint`` policy for a config's ``remat_policy`` (T5X's names)."""
    if name == "minimal":
        return jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims
    if name == "full":
        return None  # save nothing: recompute the whole layer in the backward pass
    raise ValueError(f"remat_policy={name!r} has no checkpoint policy; use 'minimal' or 'full'.")


def run_stack(
    layer_cls: type[nn.Module],
    cfg: TransformerConfig,
    num_layers: int,
    x: jax.Array,
    *args: jax.Array | None,
    decode: bool = False,
    **attrs,
) -> jax.Array:
    """Applies ``num_layers`` layers to ``x`` (``args`` go to every layer unchanged).

    Call from inside a compact method. Unscanned layers are ``layers_0 ... layers_{n-1}``
    (T5X's tree); ``cfg.scan_layers`` makes one ``nn.scan`` named ``layers`` whose parameters
    and decode cache carry a leading layer axis (logical name 'layers'). ``cfg.remat_policy``
    rematerialises each layer (inside the scanned body); decoding never needs it.
    """
    cls = layer_cls
    if cfg.remat_policy != "none" and not decode:
        # prevent_cse only matters outside scan (scan already stops XLA from merging the copies).
        cls = nn.remat(cls, policy=remat_policy(cfg.remat_policy), prevent_cse=not cfg.scan_layers)
    if decode:
        attrs["decode"] = True
    if not cfg.scan_layers:
        for i in range(num_layers):
            x = cls(cfg, name=f"layers_{i}", **attrs)(x, *args)
        return x
    stack = nn.scan(
        cls,
        variable_axes={"params": 0, "cache": 0},
        split_rngs={"params": True, "dropout": True},
        in_axes=(nn.broadcast,) * len(args),
        length=num_layers,
        metadata_params={nn.PARTITION_NAME: "layers"},
    )(cfg, name="layers", scanned=True, **attrs)
    x, _ = stack(x, *args)
    return x


class Encoder(nn.Module):
    """Bidirectional stack over the input tokens."""

    config: TransformerConfig
    shared_embedding: nn.Module

    @nn.compact
    def __call__(
        self,
        encoder_input_tokens: jax.Array,
        encoder_segment_ids: jax.Array | None = None,
        deterministic: bool = True,
    ) -> jax.Array:
        cfg = self.config
        length = encoder_input_tokens.shape[-1]
        mask = L.combine_masks(
            L.attention_mask(encoder_input_tokens > 0, encoder_input_tokens > 0),
            None if encoder_segment_ids is None else L.segment_mask(encoder_segment_ids, encoder_segment_ids),
        )
        bias = _relpos(cfg)(length, length, True) + L.mask_to_bias(mask, cfg.activation_dtype)
        x = _dropout(cfg, self.shared_embedding(encoder_input_tokens), deterministic)
        x = run_stack(EncoderLayer, cfg, cfg.num_encoder_layers, x, bias, deterministic=deterministic)
        x = _norm(cfg, "encoder_norm")(x)
        return _dropout(cfg, x, deterministic)


class Decoder(nn.Module):
    """Decoder stack; with ``cross_attention=False`` it is a decoder-only language model.

    ``shared_embedding=None`` makes the stack own ``token_embedder`` (the decoder-only tree).
    In ``decode`` mode the stack keeps two cache entries of its own: ``cache_index`` (the next
    position to write) and ``key_mask`` ``[batch, max_length]`` (which cache slots are real;
    decoder-only prompts are right-aligned, so their left padding is masked out forever).
    """

    config: TransformerConfig
    shared_embedding: nn.Module | None = None
    cross_attention: bool = True

    @nn.compact
    def __call__(
        self,
        decoder_input_tokens: jax.Array,
        decoder_target_tokens: jax.Array | None = None,
        *,
        encoded: jax.Array | None = None,
        encoder_input_tokens: jax.Array | None = None,
        encoder_segment_ids: jax.Array | None = None,
        decoder_segment_ids: jax.Array | None = None,
        decoder_causal_attention: jax.Array | None = None,
        deterministic: bool = True,
        decode: bool = False,
        decode_key_mask: jax.Array | None = None,
        prefill_bidirectional: bool = False,
    ) -> jax.Array:
        """Logits ``[batch, length, vocab]`` in float32.

        Training/scoring (``decode=False``) needs ``decoder_target_tokens`` for the padding
        mask (inputs start with the 0 BOS, so they cannot mark padding). ``decode=True`` feeds
        a chunk (one token, or a whole prompt with ``prefill_bidirectional`` for prefix-LM) at
        the cache's position; with ``config.cache_cross_attention`` only the first decode call
        needs ``encoded`` (later ones pass None and reuse the cached keys/values).
        """
        cfg = self.config
        if self.cross_attention:
            reuse = decode and cfg.cache_cross_attention
            if encoder_input_tokens is None or (encoded is None and not reuse):
                raise ValueError("the encoder-decoder Decoder needs `encoded` and `encoder_input_tokens`.")
        embedder = self.shared_embedding
        if embedder is None:
            embedder = L.Embed(cfg.vocab_size, cfg.emb_dim, dtype=cfg.activation_dtype, name="token_embedder")
        relpos = L.RelativePositionBiases(
            num_buckets=cfg.relative_attention_num_buckets,
            max_distance=cfg.relative_attention_max_distance,
            num_heads=cfg.num_heads,
            dtype=cfg.activation_dtype,
            name="relpos_bias",
        )
        if decode:
            self_bias, cache_index = self._decode_self_bias(
                relpos, decoder_input_tokens, decode_key_mask, prefill_bidirectional
            )
            query_keep = jnp.ones_like(decoder_input_tokens, jnp.bool_)
        else:
            if decoder_target_tokens is None:
                raise ValueError("decoder_target_tokens is required unless decode=True (it marks padding).")
            self_bias = self._train_self_bias(relpos, decoder_target_tokens, decoder_segment_ids, decoder_causal_attention)
            cache_index = None
            query_keep = decoder_target_tokens > 0
        cross_bias = None
        if self.cross_attention:
            cross_mask = L.combine_masks(
                L.attention_mask(query_keep, encoder_input_tokens > 0),
                None
                if decode or decoder_segment_ids is None or encoder_segment_ids is None
                else L.segment_mask(decoder_segment_ids, encoder_segment_ids),
            )
            cross_bias = L.mask_to_bias(cross_mask, cfg.activation_dtype)

        dropout = nn.Dropout(cfg.dropout_rate, broadcast_dims=(-2,), name="embed_dropout")
        x = dropout(embedder(decoder_input_tokens), deterministic=deterministic)
        x = run_stack(
            DecoderLayer,
            cfg,
            cfg.num_decoder_layers,
            x,
            self_bias,
            encoded,
            cross_bias,
            cache_index,
            decode=decode,
            cross_attention=self.cross_attention,
            deterministic=deterministic,
        )
        x = L.LayerNorm(epsilon=cfg.layer_norm_epsilon, dtype=cfg.activation_dtype, name="decoder_norm")(x)
        x = nn.Dropout(cfg.dropout_rate, broadcast_dims=(-2,), name="final_dropout")(x, deterministic=deterministic)
        if cfg.logits_via_embedding:
            # T5X scales tied logits by 1/sqrt(d_model).
            logits = embedder.attend(x).astype(jnp.float32) / jnp.sqrt(jnp.float32(x.shape[-1]))
        else:
            # Operands in the activation dtype (bf16 matmul speed), float32 accumulation and logits;
            # the loss then needs no further float32 copy of the [tokens, vocab] logits.
            logits = L.Dense(
                cfg.vocab_size, ("embed", "vocab"), dtype=cfg.activation_dtype, output_dtype=jnp.float32,
                name="logits_dense",
            )(x)
        return L.constrain(logits, ("batch", "length", "vocab"))

    def _train_self_bias(
        self,
        relpos: nn.Module,
        targets: jax.Array,
        segment_ids: jax.Array | None,
        causal_attention: jax.Array | None,
    ) -> jax.Array:
        length = targets.shape[-1]
        visible = L.causal_mask(length)
        if causal_attention is not None:
            # Prefix-LM: the inputs part (decoder_causal_attention == 1) is fully visible to itself.
            prefix = causal_attention > 0
            visible = jnp.logical_or(visible, L.attention_mask(prefix, prefix))
        mask = L.combine_masks(
            visible,
            L.attention_mask(targets > 0, targets > 0),
            None if segment_ids is None else L.segment_mask(segment_ids, segment_ids),
        )
        return relpos(length, length, False) + L.mask_to_bias(mask, self.config.activation_dtype)

    def _decode_self_bias(
        self, relpos: nn.Module, tokens: jax.Array, decode_key_mask: jax.Array | None, prefill_bidirectional: bool
    ) -> tuple[jax.Array, jax.Array]:
        qlen = tokens.shape[1]
        initialized, cur, key_mask = CacheState(name="cache_state")(tokens, decode_key_mask)
        if not initialized:
            # Shape-only call that sizes the cache to the dummy input's length.
            bias = relpos(qlen, qlen, False) + L.mask_to_bias(L.causal_mask(qlen), self.config.activation_dtype)
            return bias, cur
        max_length = key_mask.shape[1]
        q_pos = cur + jnp.arange(qlen)
        k_pos = jnp.arange(max_length)
        visible = k_pos[None, :] <= q_pos[:, None]
        if prefill_bidirectional:
            visible = jnp.logical_or(visible, (k_pos < cur + qlen)[None, :])
        mask = jnp.logical_and(visible[None, None], key_mask[:, None, None, :])
        bias = relpos(qlen, max_length, False, query_offset=cur)
        return bias + L.mask_to_bias(mask, self.config.activation_dtype), cur


def cache_batch_axes(cache: Any) -> Any:
    """The batch axis of every decode-cache leaf: 1 under a scanned stack ('layers'), else 0.

    Cached cross-attention keys/values get -1 (``decoding.SHARED``): one copy per input row that
    all its beams read, never repeated or reordered. Scalars (``cache_index``) get 0; decoding
    leaves them alone.
    """

    def axis(path, leaf) -> int:
        keys = [getattr(p, "key", None) for p in path]
        if keys and keys[-1] in ("cached_cross_key", "cached_cross_value"):
            return -1
        return 1 if "layers" in keys else 0

    return jax.tree_util.tree_map_with_path(axis, cache)


class CacheState(nn.Module):
    """The decoder's own cache entries: ``cache_index`` and ``key_mask [batch, max_length]``.

    Each call advances the index by the chunk length. The first call (cache creation, with a
    ``[batch, max_length]`` dummy) only creates them. Returns ``(initialized, index, key_mask)``
    with the index of the chunk's first token.
    """

    @nn.compact
    def __call__(self, tokens: jax.Array, decode_key_mask: jax.Array | None) -> tuple[bool, jax.Array, jax.Array]:
        batch, qlen = tokens.shape
        initialized = self.has_variable("cache", "cache_index")
        index = self.variable("cache", "cache_index", lambda: jnp.zeros((), jnp.int32))
        key_mask = self.variable("cache", "key_mask", lambda: jnp.ones((batch, qlen), jnp.bool_))
        cur = index.value
        if not initialized:
            return False, cur, key_mask.value
        if decode_key_mask is not None:
            if decode_key_mask.shape != key_mask.value.shape:
                raise ValueError(
                    f"decode_key_mask has shape {decode_key_mask.shape}; the cache needs {key_mask.value.shape}."
                )
            key_mask.value = decode_key_mask.astype(jnp.bool_)
        index.value = cur + qlen
        return True, cur, key_mask.value


class Transformer(nn.Module):
    """The T5.1.1 encoder-decoder (T5X's ``network.Transformer``)."""

    config: TransformerConfig

    def setup(self) -> None:
        cfg = self.config
        if cfg.decoder_only:
            raise ValueError("config.decoder_only=True: build flan_trainer.models.decoder_only.DecoderOnly instead.")
        self.token_embedder = L.Embed(cfg.vocab_size, cfg.emb_dim, dtype=cfg.activation_dtype)
        self.encoder = Encoder(cfg, shared_embedding=self.token_embedder)
        self.decoder = Decoder(cfg, shared_embedding=self.token_embedder, cross_attention=True)

    def encode(
        self,
        encoder_input_tokens: jax.Array,
        encoder_segment_ids: jax.Array | None = None,
        enable_dropout: bool = False,
    ) -> jax.Array:
        """Encoder output ``[batch, length, embed]``."""
        return self.encoder(encoder_input_tokens, encoder_segment_ids, deterministic=not enable_dropout)

    def decode(
        self,
        encoded: jax.Array,
        encoder_input_tokens: jax.Array,
        decoder_input_tokens: jax.Array,
        decoder_target_tokens: jax.Array | None = None,
        encoder_segment_ids: jax.Array | None = None,
        decoder_segment_ids: jax.Array | None = None,
        enable_dropout: bool = False,
        decode: bool = False,
    ) -> jax.Array:
        """Decoder logits given an encoding (``decode=True``: one cached step)."""
        return self.decoder(
            decoder_input_tokens,
            decoder_target_tokens,
            encoded=encoded,
            encoder_input_tokens=encoder_input_tokens,
            encoder_segment_ids=encoder_segment_ids,
            decoder_segment_ids=decoder_segment_ids,
            deterministic=not enable_dropout,
            decode=decode,
        )

    def __call__(
        self,
        encoder_input_tokens: jax.Array,
        decoder_input_tokens: jax.Array,
        decoder_target_tokens: jax.Array,
        encoder_segment_ids: jax.Array | None = None,
        decoder_segment_ids: jax.Array | None = None,
        encoder_positions: jax.Array | None = None,
        decoder_positions: jax.Array | None = None,
        *,
        enable_dropout: bool = True,
        decode: bool = False,
    ) -> jax.Array:
        """Teacher-forced logits ``[batch, target_length, vocab]`` (float32)."""
        del encoder_positions, decoder_positions  # relative positions only (see module docstring)
        encoded = self.encode(encoder_input_tokens, encoder_segment_ids, enable_dropout)
        return self.decode(
            encoded,
            encoder_input_tokens,
            decoder_input_tokens,
            decoder_target_tokens,
            encoder_segment_ids,
            decoder_segment_ids,
            enable_dropout,
            decode,
        )
