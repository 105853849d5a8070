"""Model hyperparameters with T5X's names, plus the T5.1.1 / Flan-T5 size presets.

The config is registered with gin as ``network.T5Config`` (T5X's name) and as
``network.TransformerConfig`` so T5X-style gin files bind it unchanged, for example
``network.T5Config.emb_dim = 512``.
"""

from __future__ import annotations

import dataclasses

import gin
import jax.numpy as jnp

_ACTIVATIONS = ("gelu", "relu", "silu", "swish", "gelu_exact", "linear")
# T5X's remat names: 'minimal' saves matmul outputs without batch dims, 'full' saves nothing.
REMAT_POLICIES = ("none", "minimal", "full")
ATTENTION_IMPLS = ("auto", "xla", "cudnn")


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
    """Shape and numerics of a T5.1.1-style transformer (encoder-decoder or decoder-only)."""

    vocab_size: int
    emb_dim: int
    num_heads: int
    num_encoder_layers: int
    num_decoder_layers: int
    head_dim: int
    mlp_dim: int
    mlp_activations: tuple[str, ...] = ("gelu", "linear")
    dropout_rate: float = 0.0
    dtype: str = "bfloat16"
    logits_via_embedding: bool = False
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    layer_norm_epsilon: float = 1e-6
    decoder_only: bool = False
    # Accelerator speed (issue 9); none of them changes the saved parameter layout on disk.
    scan_layers: bool = False  # each stack as one scan over stacked layer params ('layers' axis)
    remat_policy: str = "none"  # per-layer rematerialisation: one of REMAT_POLICIES
    attention_impl: str = "auto"  # 'auto': cuDNN fused attention on GPU when it applies, else XLA
    cache_cross_attention: bool = True  # decoding projects the encoder output to K/V once

    def __post_init__(self) -> None:
        # gin hands lists for tuple fields; keep the dataclass hashable (flax needs that).
        object.__setattr__(self, "mlp_activations", tuple(self.mlp_activations))
        for name in ("vocab_size", "emb_dim", "num_heads", "head_dim", "mlp_dim"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"TransformerConfig.{name}={getattr(self, name)} must be >= 1.")
        if self.num_decoder_layers < 1:
            raise ValueError("TransformerConfig.num_decoder_layers must be >= 1.")
        if not self.decoder_only and self.num_encoder_layers < 1:
            raise ValueError(
                "an encoder-decoder config needs num_encoder_layers >= 1 "
                "(set decoder_only=True for a decoder-only model)."
            )
        unknown = [a for a in self.mlp_activations if a not in _ACTIVATIONS]
        if unknown or not self.mlp_activations:
            raise ValueError(
                f"mlp_activations={self.mlp_activations!r}: unknown {unknown}; use names from "
                f"{_ACTIVATIONS} (T5.1.1 uses ('gelu', 'linear'))."
            )
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ValueError(f"dropout_rate={self.dropout_rate} must be in [0, 1).")
        try:
            jnp.dtype(self.dtype)
        except TypeError as e:
            raise ValueError(
                f"dtype={self.dtype!r} is not a dtype name; use 'bfloat16' or 'float32'."
            ) from e
        if self.relative_attention_num_buckets < 2:
            raise ValueError("relative_attention_num_buckets must be >= 2.")
        if self.remat_policy not in REMAT_POLICIES:
            raise ValueError(f"remat_policy={self.remat_policy!r} is not valid; use one of {REMAT_POLICIES}.")
        if self.attention_impl not in ATTENTION_IMPLS:
            raise ValueError(f"attention_impl={self.attention_impl!r} is not valid; use one of {ATTENTION_IMPLS}.")

    @property
    def activation_dtype(self) -> jnp.dtype:
        """The dtype activations are computed in (parameters always stay float32)."""
        return jnp.dtype(self.dtype)


def _preset(emb: int, heads: int, layers: int, mlp: int, vocab: int = 32128) -> dict:
    return dict(
        vocab_size=vocab,
        emb_dim=emb,
        num_heads=heads,
        num_encoder_layers=layers,
        num_decoder_layers=layers,
        head_dim=64,
        mlp_dim=mlp,
    )


# T5.1.1 / Flan-T5 sizes (t5x_interface.md). `tiny` is ours, for tests and the quickstart.
PRESETS: dict[str, dict] = {
    "tiny": dict(
        vocab_size=32128,
        emb_dim=128,
        num_heads=4,
        num_encoder_layers=2,
        num_decoder_layers=2,
        head_dim=32,
        mlp_dim=256,
    ),
    "small": _preset(512, 6, 8, 1024),
    "base": _preset(768, 12, 12, 2048),
    "large": _preset(1024, 16, 24, 2816),
    "xl": _preset(2048, 32, 24, 5120),
    "xxl": _preset(4096, 64, 24, 10240),
}


def preset(name: str, **overrides) -> TransformerConfig:
    """The named size (``tiny``, ``small``, ``base``, ``large``, ``xl``, ``xxl``) with overrides."""
    if name not in PRESETS:
        raise ValueError(f"unknown model size {name!r}; choose one of {sorted(PRESETS)}.")
    return TransformerConfig(**{**PRESETS[name], **overrides})


# gin names: T5X's `network.T5Config`, and our own class name under the same module.
gin.external_configurable(TransformerConfig, name="T5Config", module="network")
gin.external_configurable(TransformerConfig, name="TransformerConfig", module="network")
