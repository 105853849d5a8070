"""Training FLOPs and model FLOPs utilisation (MFU).

Convention (stated so numbers can be compared with peers, see peers.md):

- Matmul parameters only: attention projections, MLP kernels and the output projection (the
  ``logits_dense`` kernel, or the embedding when ``logits_via_embedding``). Embedding look-ups,
  layer norms and relative-position biases cost no matmul FLOPs and are not counted.
- Training costs 6 FLOPs per parameter per token (2 forward + 4 backward), counted per side for
  encoder-decoder models: encoder tokens times encoder parameters, plus target (decoder) tokens
  times decoder parameters (self-attention, cross-attention, MLP and the output projection).
- Attention scores and the weighted sum add ``12 * context * heads * head_dim`` per token per
  attention layer (2 matmuls x 2 FLOPs x 3 for training). Causal self-attention is counted at
  full length (as in the PaLM MFU formula); cross-attention uses the encoder length as context.
- Token counts are the padded lengths actually computed on (``batch * length``), so packing
  raises useful throughput, not the FLOPs of a step.

MFU = model FLOPs per step / (step seconds * number of devices * peak FLOP/s per device). Peaks
are dense bf16 figures; unknown devices (e.g. CPU) give ``None`` and MFU is then not reported.
"""

from __future__ import annotations

from typing import Any

# Dense bf16 peak FLOP/s per device; matched against jax's ``device_kind`` (lower-cased).
PEAK_FLOPS_PER_DEVICE: dict[str, float] = {
    "h100": 989e12,
    "h200": 989e12,
    "a100": 312e12,
    "tpu v4": 275e12,
    "tpu v5 lite": 197e12,
    "tpu v5e": 197e12,
    "tpu v5p": 459e12,
    "tpu v5": 459e12,  # 'TPU v5' without 'lite' is v5p
}


def peak_flops_per_device(device_kind: str) -> float | None:
    """Peak dense bf16 FLOP/s for a jax ``device_kind`` string, or None if unknown (CPU)."""
    kind = device_kind.lower()
    # Longest key first so 'tpu v5 lite' wins over 'tpu v5'.
    for key in sorted(PEAK_FLOPS_PER_DEVICE, key=len, reverse=True):
        if key in kind:
            return PEAK_FLOPS_PER_DEVICE[key]
    return None


def _attn_proj_params(cfg: Any) -> int:
    # query, key, value: [embed, heads*head_dim]; out: [heads*head_dim, embed].
    return 4 * cfg.emb_dim * cfg.num_heads * cfg.head_dim


def _mlp_params(cfg: Any) -> int:
    return (len(cfg.mlp_activations) + 1) * cfg.emb_dim * cfg.mlp_dim


def encoder_matmul_params(cfg: Any) -> int:
    """Matmul parameters applied to every encoder token (0 for decoder-only models)."""
    if getattr(cfg, "decoder_only", False):
        return 0
    return cfg.num_encoder_layers * (_attn_proj_params(cfg) + _mlp_params(cfg))


def decoder_matmul_params(cfg: Any) -> int:
    """Matmul parameters applied to every target token, output projection included."""
    cross = 0 if getattr(cfg, "decoder_only", False) else _attn_proj_params(cfg)
    per_layer = _attn_proj_params(cfg) + cross + _mlp_params(cfg)
    return cfg.num_decoder_layers * per_layer + cfg.emb_dim * cfg.vocab_size


def train_flops_per_step(
    cfg: Any, batch_size: int, encoder_length: int, decoder_length: int
) -> float:
    """Training FLOPs of one step on ``batch_size`` sequences (convention in the module doc).

    For decoder-only models ``decoder_length`` is the whole (input + target) length and
    ``encoder_length`` is ignored.
    """
    attn_dim = cfg.num_heads * cfg.head_dim
    dec_tokens = batch_size * decoder_length
    dec_attn = cfg.num_decoder_layers * 12 * decoder_length * attn_dim
    if getattr(cfg, "decoder_only", False):
        return float(dec_tokens * (6 * decoder_matmul_params(cfg) + dec_attn))
    enc_tokens = batch_size * encoder_length
    enc_attn = cfg.num_encoder_layers * 12 * encoder_length * attn_dim
    cross_attn = cfg.num_decoder_layers * 12 * encoder_length * attn_dim
    encoder = enc_tokens * (6 * encoder_matmul_params(cfg) + enc_attn)
    decoder = dec_tokens * (6 * decoder_matmul_params(cfg) + dec_attn + cross_attn)
    return float(encoder + decoder)


def train_flops_per_token(cfg: Any, encoder_length: int, decoder_length: int) -> float:
    """Training FLOPs per target token (the step's FLOPs over its target tokens)."""
    return train_flops_per_step(cfg, 1, encoder_length, decoder_length) / decoder_length


def mfu(
    flops_per_step: float, step_seconds: float, num_devices: int, device_kind: str
) -> float | None:
    """Model FLOPs utilisation in [0, 1], or None when the device's peak is unknown."""
    peak = peak_flops_per_device(device_kind)
    if peak is None or step_seconds <= 0 or num_devices <= 0:
        return None
    return flops_per_step / (step_seconds * num_devices * peak)
