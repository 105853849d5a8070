"""T5.1.1 / Flan-T5 encoder-decoder (flax linen) with T5X's exact parameter tree.

Tree: ``token_embedder/embedding``; ``encoder/{relpos_bias, layers_i, encoder_norm}``;
``decoder/{relpos_bias, layers_i, decoder_norm, logits_dense}``. The ``Decoder`` here is also
the decoder-only model's stack (``decoder_only.py``), built without cross-attention.

Packing: segment ids keep attention inside each packed example. Relative position biases only
see differences of in-row offsets, which are the same inside a packed segment as for the
example alone, so the converter's ``*_positions`` features are accepted but not needed.
"""

from __future__ import annotations

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


def _attention(cfg: TransformerConfig, name: str) -> L.MultiHeadDotProductAttention:
    return L.MultiHeadDotProductAttention(
        num_heads=cfg.num_heads,
        head_dim=cfg.head_dim,
        dtype=cfg.activation_dtype,
        dropout_rate=cfg.dropout_rate,
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
    """Pre-norm self-attention then gated MLP, each with a residual connection."""

    config: TransformerConfig

    @nn.compact
    def __call__(self, x: jax.Array, bias: jax.Array, deterministic: bool = True) -> jax.Array:
        cfg = self.config
        y = _norm(cfg, "pre_attention_layer_norm")(x)
        y = _attention(cfg, "attention")(y, y, bias, deterministic=deterministic)
        x = x + _dropout(cfg, y, deterministic)
        y = _norm(cfg, "pre_mlp_layer_norm")(x)
        y = _mlp(cfg)(y, deterministic=deterministic)
        return L.constrain(x + _dropout(cfg, y, deterministic), ("batch", "length", "embed"))


class DecoderLayer(nn.Module):
    """Causal self-attention, optional encoder-decoder attention, gated MLP."""

    config: TransformerConfig
    cross_attention: bool = True

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        self_bias: jax.Array,
        encoded: jax.Array | None = None,
        cross_bias: jax.Array | None = None,
        *,
        deterministic: bool = True,
        decode: bool = False,
        cache_index: jax.Array | None = None,
    ) -> jax.Array:
        cfg = self.config
        y = _norm(cfg, "pre_self_attention_layer_norm")(x)
        y = _attention(cfg, "self_attention")(
            y, y, self_bias, deterministic=deterministic, decode=decode, cache_index=cache_index
        )
        x = x + _dropout(cfg, y, deterministic)
        if self.cross_attention:
            y = _norm(cfg, "pre_cross_attention_layer_norm")(x)
            y = _attention(cfg, "encoder_decoder_attention")(y, encoded, cross_bias, deterministic=deterministic)
            x = x + _dropout(cfg, y, deterministic)
        y = _norm(cfg, "pre_mlp_layer_norm")(x)
        y = _mlp(cfg)(y, deterministic=deterministic)
        return L.constrain(x + _dropout(cfg, y, deterministic), ("batch", "length", "embed"))


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
        for i in range(cfg.num_encoder_layers):
            x = EncoderLayer(cfg, name=f"layers_{i}")(x, bias, deterministic)
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

    def setup(self) -> None:
        cfg = self.config
        if self.shared_embedding is None:
            self.token_embedder = L.Embed(cfg.vocab_size, cfg.emb_dim, dtype=cfg.activation_dtype)
        self.relpos_bias = L.RelativePositionBiases(
            num_buckets=cfg.relative_attention_num_buckets,
            max_distance=cfg.relative_attention_max_distance,
            num_heads=cfg.num_heads,
            dtype=cfg.activation_dtype,
        )
        self.layers = [DecoderLayer(cfg, cross_attention=self.cross_attention) for _ in range(cfg.num_decoder_layers)]
        self.decoder_norm = L.LayerNorm(epsilon=cfg.layer_norm_epsilon, dtype=cfg.activation_dtype)
        if not cfg.logits_via_embedding:
            self.logits_dense = L.Dense(cfg.vocab_size, ("embed", "vocab"), dtype=jnp.float32)
        self.cache_state = CacheState()
        self.embed_dropout = nn.Dropout(cfg.dropout_rate, broadcast_dims=(-2,))
        self.final_dropout = nn.Dropout(cfg.dropout_rate, broadcast_dims=(-2,))

    def _embedder(self) -> nn.Module:
        return self.token_embedder if self.shared_embedding is None else self.shared_embedding

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
        the cache's position.
        """
        cfg = self.config
        if self.cross_attention and (encoded is None or encoder_input_tokens is None):
            raise ValueError("the encoder-decoder Decoder needs `encoded` and `encoder_input_tokens`.")
        if decode:
            self_bias, cache_index = self._decode_self_bias(decoder_input_tokens, decode_key_mask, prefill_bidirectional)
            query_keep = jnp.ones_like(decoder_input_tokens, jnp.bool_)
        else:
            if decoder_target_tokens is None:
                raise ValueError("decoder_target_tokens is required unless decode=True (it marks padding).")
            self_bias = self._train_self_bias(decoder_target_tokens, decoder_segment_ids, decoder_causal_attention)
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

        x = self.embed_dropout(self._embedder()(decoder_input_tokens), deterministic=deterministic)
        for layer in self.layers:
            x = layer(
                x, self_bias, encoded, cross_bias, deterministic=deterministic, decode=decode, cache_index=cache_index
            )
        x = self.final_dropout(self.decoder_norm(x), deterministic=deterministic)
        if cfg.logits_via_embedding:
            # T5X scales tied logits by 1/sqrt(d_model).
            logits = self._embedder().attend(x).astype(jnp.float32) / jnp.sqrt(jnp.float32(x.shape[-1]))
        else:
            logits = self.logits_dense(x.astype(jnp.float32))
        return L.constrain(logits, ("batch", "length", "vocab"))

    def _train_self_bias(
        self,
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
        return self.relpos_bias(length, length, False) + L.mask_to_bias(mask, self.config.activation_dtype)

    def _decode_self_bias(
        self, tokens: jax.Array, decode_key_mask: jax.Array | None, prefill_bidirectional: bool
    ) -> tuple[jax.Array, jax.Array]:
        qlen = tokens.shape[1]
        initialized, cur, key_mask = self.cache_state(tokens, decode_key_mask)
        if not initialized:
            # Shape-only call that sizes the cache to the dummy input's length.
            bias = self.relpos_bias(qlen, qlen, False) + L.mask_to_bias(L.causal_mask(qlen), self.config.activation_dtype)
            return bias, cur
        max_length = key_mask.shape[1]
        q_pos = cur + jnp.arange(qlen)
        k_pos = jnp.arange(max_length)
        visible = k_pos[None, :] <= q_pos[:, None]
        if prefill_bidirectional:
            visible = jnp.logical_or(visible, (k_pos < cur + qlen)[None, :])
        mask = jnp.logical_and(visible[None, None], key_mask[:, None, None, :])
        bias = self.relpos_bias(qlen, max_length, False, query_offset=cur)
        return bias + L.mask_to_bias(mask, self.config.activation_dtype), cur


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
