"""Decoder-only language model (causal or prefix-LM) from the T5.1.1 blocks.

Parameter tree (T5X's decoder-only layout): ``decoder/{token_embedder, relpos_bias, layers_i
(pre_self_attention_layer_norm, self_attention, pre_mlp_layer_norm, mlp), decoder_norm}`` plus
``decoder/logits_dense`` unless ``logits_via_embedding`` (the decoder-only presets tie them).
"""

from __future__ import annotations

import flax.linen as nn
import jax

from flan_trainer.models.config import TransformerConfig
from flan_trainer.models.t5 import Decoder


class DecoderOnly(nn.Module):
    """A causal LM; ``decoder_causal_attention`` marks a prefix that attends bidirectionally."""

    config: TransformerConfig

    def setup(self) -> None:
        self.decoder = Decoder(self.config, shared_embedding=None, cross_attention=False)

    def __call__(
        self,
        decoder_input_tokens: jax.Array,
        decoder_target_tokens: jax.Array | None = None,
        decoder_segment_ids: jax.Array | None = None,
        decoder_positions: jax.Array | None = None,
        decoder_causal_attention: jax.Array | None = None,
        *,
        enable_dropout: bool = True,
        decode: bool = False,
        decode_key_mask: jax.Array | None = None,
        prefill_bidirectional: bool = False,
    ) -> jax.Array:
        """Logits ``[batch, length, vocab]`` (float32); see ``t5.Decoder`` for the decode mode."""
        del decoder_positions  # relative position biases need only in-row offsets
        return self.decoder(
            decoder_input_tokens,
            decoder_target_tokens,
            decoder_segment_ids=decoder_segment_ids,
            decoder_causal_attention=decoder_causal_attention,
            deterministic=not enable_dropout,
            decode=decode,
            decode_key_mask=decode_key_mask,
            prefill_bidirectional=prefill_bidirectional,
        )
