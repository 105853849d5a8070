"""One-to-one naming and layout between Hugging Face T5 and our T5X parameter tree.

Everything here is pure bookkeeping (no jax, no torch): which HF state-dict key holds which T5X
leaf, whether the matrix must be transposed (torch ``Linear`` stores ``[out, in]``, T5X kernels are
``[in, out]``), the expected shapes, and the T5X logical axes used to shard each leaf on import.

Two T5 conventions meet here and must agree numerically:
- Neither HF T5 nor T5X divides attention logits by sqrt(head_dim) (T5X folds it into the query
  initialisation), so query kernels map with a plain transpose.
- With tied embeddings both rescale the decoder output by d_model**-0.5 before the vocabulary
  projection (HF: ``scale_decoder_outputs``; T5X: ``logits_via_embedding`` divides by sqrt(embed)).
  Flan-T5 / T5.1.1 are untied and unscaled. An untied-but-scaled HF model is folded into
  ``logits_dense/kernel`` by multiplying it by the scale.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

Path = tuple[str, ...]

# HF feed_forward_proj <-> T5X mlp_activations. HF's 'gated-gelu' is the tanh approximation
# ('gelu_new'), which is what flax's nn.gelu computes by default, i.e. T5X's 'gelu'.
_FF_TO_ACTIVATIONS: dict[str, tuple[str, ...]] = {
    "gated-gelu": ("gelu", "linear"),
    "gated-relu": ("relu", "linear"),
    "gated-silu": ("silu", "linear"),
    "relu": ("relu",),
    "silu": ("silu",),
}
_ACTIVATIONS_TO_FF = {v: k for k, v in _FF_TO_ACTIVATIONS.items()}

# Keys an HF checkpoint may carry that hold no information of their own.
IGNORABLE_HF_KEYS = frozenset(
    {
        "encoder.embed_tokens.weight",  # tied copy of shared.weight
        "decoder.embed_tokens.weight",  # tied copy of shared.weight
        "decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight",  # unused by T5
    }
)


class ConversionError(ValueError):
    """A checkpoint does not fit the expected T5 layout; the message names the parameter."""


@dataclasses.dataclass(frozen=True)
class TensorRule:
    """How one HF tensor becomes one T5X leaf."""

    hf_key: str
    path: Path  # T5X path inside the params tree, e.g. ('encoder', 'layers_0', 'attention', 'query', 'kernel')
    shape: tuple[int, ...]  # T5X shape
    logical_axes: tuple[str, ...]
    transpose: bool
    scale: float = 1.0  # multiply the T5X value by this (only the folded lm_head uses it)

    @property
    def hf_shape(self) -> tuple[int, ...]:
        return tuple(reversed(self.shape)) if self.transpose else self.shape

    @property
    def dotted(self) -> str:
        return "/".join(self.path)


@dataclasses.dataclass(frozen=True)
class T5Shape:
    """The structural facts both sides need (a subset of TransformerConfig, by T5X names)."""

    vocab_size: int
    emb_dim: int
    num_heads: int
    head_dim: int
    mlp_dim: int
    num_encoder_layers: int
    num_decoder_layers: int
    mlp_activations: tuple[str, ...]
    relative_attention_num_buckets: int
    logits_via_embedding: bool

    @classmethod
    def from_config(cls, config: Any) -> T5Shape:
        """Read the fields from a TransformerConfig (or anything with the same attributes / keys)."""
        get = config.get if isinstance(config, Mapping) else lambda k: getattr(config, k)
        return cls(
            vocab_size=int(get("vocab_size")),
            emb_dim=int(get("emb_dim")),
            num_heads=int(get("num_heads")),
            head_dim=int(get("head_dim")),
            mlp_dim=int(get("mlp_dim")),
            num_encoder_layers=int(get("num_encoder_layers")),
            num_decoder_layers=int(get("num_decoder_layers")),
            mlp_activations=tuple(get("mlp_activations")),
            relative_attention_num_buckets=int(get("relative_attention_num_buckets")),
            logits_via_embedding=bool(get("logits_via_embedding")),
        )

    @property
    def mlp_names(self) -> tuple[str, ...]:
        # T5X's MlpBlock names a single input projection 'wi' and several 'wi_0', 'wi_1', ...
        if len(self.mlp_activations) == 1:
            return ("wi",)
        return tuple(f"wi_{i}" for i in range(len(self.mlp_activations)))


# ----------------------------------------------------------------------------- config mapping


def hf_config_to_t5x(hf: Mapping[str, Any], *, lm_head_tied: bool) -> dict[str, Any]:
    """TransformerConfig keyword arguments for an HF ``T5Config`` dict (config.json).

    ``lm_head_tied`` says whether the checkpoint's output projection is the input embedding
    (no separate ``lm_head.weight``, or one equal to ``shared.weight``).
    """
    if hf.get("model_type", "t5") not in ("t5", "mt5"):
        raise ConversionError(f"config.json model_type={hf.get('model_type')!r}; only T5 (t5, mt5) converts")
    ff = hf.get("feed_forward_proj", "relu")
    if ff not in _FF_TO_ACTIVATIONS:
        raise ConversionError(
            f"config.json feed_forward_proj={ff!r} has no T5X equivalent; supported: {sorted(_FF_TO_ACTIVATIONS)}"
        )
    num_layers = int(hf["num_layers"])
    return {
        "vocab_size": int(hf["vocab_size"]),
        "emb_dim": int(hf["d_model"]),
        "num_heads": int(hf["num_heads"]),
        "num_encoder_layers": num_layers,
        "num_decoder_layers": int(hf.get("num_decoder_layers") or num_layers),
        "head_dim": int(hf["d_kv"]),
        "mlp_dim": int(hf["d_ff"]),
        "mlp_activations": _FF_TO_ACTIVATIONS[ff],
        "dropout_rate": float(hf.get("dropout_rate", 0.1)),
        "logits_via_embedding": bool(lm_head_tied and hf_scales_decoder_output(hf)),
        "relative_attention_num_buckets": int(hf.get("relative_attention_num_buckets", 32)),
        "relative_attention_max_distance": int(hf.get("relative_attention_max_distance", 128)),
        "layer_norm_epsilon": float(hf.get("layer_norm_epsilon", 1e-6)),
    }


def hf_scales_decoder_output(hf: Mapping[str, Any]) -> bool:
    """Whether HF multiplies the decoder output by d_model**-0.5 before ``lm_head``.

    Newer transformers write ``scale_decoder_outputs``; older ones scale exactly when
    ``tie_word_embeddings`` (default True) is set.
    """
    if "scale_decoder_outputs" in hf:
        return bool(hf["scale_decoder_outputs"])
    return bool(hf.get("tie_word_embeddings", True))


def t5x_config_to_hf(config: Any) -> dict[str, Any]:
    """An HF ``T5Config`` dict (for config.json) describing a TransformerConfig."""
    get = config.get if isinstance(config, Mapping) else lambda k: getattr(config, k)
    if get("decoder_only"):
        raise ConversionError("decoder-only models have no Hugging Face T5 equivalent; export needs an encoder-decoder")
    acts = tuple(get("mlp_activations"))
    if acts not in _ACTIVATIONS_TO_FF:
        raise ConversionError(
            f"mlp_activations={acts} has no HF feed_forward_proj; supported: {sorted(_ACTIVATIONS_TO_FF)}"
        )
    tied = bool(get("logits_via_embedding"))
    ff = _ACTIVATIONS_TO_FF[acts]
    return {
        "architectures": ["T5ForConditionalGeneration"],
        "model_type": "t5",
        "vocab_size": int(get("vocab_size")),
        "d_model": int(get("emb_dim")),
        "d_kv": int(get("head_dim")),
        "d_ff": int(get("mlp_dim")),
        "num_layers": int(get("num_encoder_layers")),
        "num_decoder_layers": int(get("num_decoder_layers")),
        "num_heads": int(get("num_heads")),
        "relative_attention_num_buckets": int(get("relative_attention_num_buckets")),
        "relative_attention_max_distance": int(get("relative_attention_max_distance")),
        "dropout_rate": float(get("dropout_rate")),
        "layer_norm_epsilon": float(get("layer_norm_epsilon")),
        "feed_forward_proj": ff,
        "dense_act_fn": "gelu_new" if ff == "gated-gelu" else acts[0],
        "is_gated_act": len(acts) > 1,
        "is_encoder_decoder": True,
        "tie_word_embeddings": tied,
        "scale_decoder_outputs": tied,
        "pad_token_id": 0,
        "eos_token_id": 1,
        "decoder_start_token_id": 0,
        "initializer_factor": 1.0,
        "use_cache": True,
        "dtype": "float32",
    }


# ----------------------------------------------------------------------------- tensor mapping


def _attention_rules(hf_prefix: str, path: Path, s: T5Shape) -> list[TensorRule]:
    joined = s.num_heads * s.head_dim
    rules = []
    for hf_name, t5x_name in (("q", "query"), ("k", "key"), ("v", "value")):
        rules.append(
            TensorRule(f"{hf_prefix}.{hf_name}.weight", (*path, t5x_name, "kernel"), (s.emb_dim, joined),
                       ("embed", "joined_kv"), transpose=True)
        )
    rules.append(
        TensorRule(f"{hf_prefix}.o.weight", (*path, "out", "kernel"), (joined, s.emb_dim),
                   ("joined_kv", "embed"), transpose=True)
    )
    return rules


def _norm_rule(hf_key: str, path: Path, s: T5Shape) -> TensorRule:
    return TensorRule(hf_key, (*path, "scale"), (s.emb_dim,), ("embed",), transpose=False)


def _mlp_rules(hf_prefix: str, path: Path, s: T5Shape) -> list[TensorRule]:
    rules = [
        TensorRule(f"{hf_prefix}.{name}.weight", (*path, name, "kernel"), (s.emb_dim, s.mlp_dim),
                   ("embed", "mlp"), transpose=True)
        for name in s.mlp_names
    ]
    rules.append(
        TensorRule(f"{hf_prefix}.wo.weight", (*path, "wo", "kernel"), (s.mlp_dim, s.emb_dim),
                   ("mlp", "embed"), transpose=True)
    )
    return rules


def _relpos_rule(stack: str, s: T5Shape) -> TensorRule:
    return TensorRule(
        f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
        (stack, "relpos_bias", "rel_embedding"),
        (s.num_heads, s.relative_attention_num_buckets),
        ("heads", "relpos_buckets"),
        transpose=True,
    )


def _encoder_rules(s: T5Shape) -> list[TensorRule]:
    rules = [_relpos_rule("encoder", s)]
    for i in range(s.num_encoder_layers):
        hf, path = f"encoder.block.{i}", ("encoder", f"layers_{i}")
        rules.append(_norm_rule(f"{hf}.layer.0.layer_norm.weight", (*path, "pre_attention_layer_norm"), s))
        rules += _attention_rules(f"{hf}.layer.0.SelfAttention", (*path, "attention"), s)
        rules.append(_norm_rule(f"{hf}.layer.1.layer_norm.weight", (*path, "pre_mlp_layer_norm"), s))
        rules += _mlp_rules(f"{hf}.layer.1.DenseReluDense", (*path, "mlp"), s)
    rules.append(_norm_rule("encoder.final_layer_norm.weight", ("encoder", "encoder_norm"), s))
    return rules


def _decoder_rules(s: T5Shape) -> list[TensorRule]:
    rules = [_relpos_rule("decoder", s)]
    for i in range(s.num_decoder_layers):
        hf, path = f"decoder.block.{i}", ("decoder", f"layers_{i}")
        rules.append(_norm_rule(f"{hf}.layer.0.layer_norm.weight", (*path, "pre_self_attention_layer_norm"), s))
        rules += _attention_rules(f"{hf}.layer.0.SelfAttention", (*path, "self_attention"), s)
        rules.append(_norm_rule(f"{hf}.layer.1.layer_norm.weight", (*path, "pre_cross_attention_layer_norm"), s))
        rules += _attention_rules(f"{hf}.layer.1.EncDecAttention", (*path, "encoder_decoder_attention"), s)
        rules.append(_norm_rule(f"{hf}.layer.2.layer_norm.weight", (*path, "pre_mlp_layer_norm"), s))
        rules += _mlp_rules(f"{hf}.layer.2.DenseReluDense", (*path, "mlp"), s)
    rules.append(_norm_rule("decoder.final_layer_norm.weight", ("decoder", "decoder_norm"), s))
    return rules


def tensor_rules(shape: T5Shape, *, lm_head_key: str | None = "lm_head.weight", lm_head_scale: float = 1.0
                 ) -> list[TensorRule]:
    """Every HF tensor <-> T5X leaf pair of an encoder-decoder T5, in a stable order.

    ``lm_head_key`` is the HF tensor that becomes ``decoder/logits_dense/kernel`` when the model is
    untied: ``'lm_head.weight'`` normally, ``'shared.weight'`` for an HF model whose head is tied
    but not rescaled (T5X can only express that as a separate kernel). Ignored when
    ``shape.logits_via_embedding``.
    """
    rules = [
        TensorRule("shared.weight", ("token_embedder", "embedding"), (shape.vocab_size, shape.emb_dim),
                   ("vocab", "embed"), transpose=False)
    ]
    rules += _encoder_rules(shape)
    rules += _decoder_rules(shape)
    if not shape.logits_via_embedding:
        if lm_head_key is None:
            raise ConversionError("an untied model needs an lm_head source key")
        rules.append(
            TensorRule(lm_head_key, ("decoder", "logits_dense", "kernel"), (shape.emb_dim, shape.vocab_size),
                       ("embed", "vocab"), transpose=True, scale=lm_head_scale)
        )
    return rules


def check_shape(rule: TensorRule, found_shape: tuple[int, ...], found_dtype: str, *, side: str = "HF") -> None:
    """Raise ConversionError naming the parameter when a tensor has the wrong shape."""
    expected = rule.hf_shape if side == "HF" else rule.shape
    if tuple(found_shape) != tuple(expected):
        raise ConversionError(
            f"shape mismatch for {rule.hf_key} (T5X {rule.dotted}): expected {side} shape {tuple(expected)}, "
            f"found {tuple(found_shape)} with dtype {found_dtype}"
        )


def set_path(tree: dict, path: Path, value: Any) -> None:
    """Insert ``value`` at ``path`` in a nested dict, creating levels as needed."""
    node = tree
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value


def get_path(tree: Mapping, path: Path) -> Any:
    """The leaf at ``path``; ConversionError naming the path when it is missing."""
    node: Any = tree
    for depth, key in enumerate(path):
        if not isinstance(node, Mapping) or key not in node:
            raise ConversionError(f"parameter {'/'.join(path)} is missing (no {'/'.join(path[:depth + 1])})")
        node = node[key]
    return node


def flatten_paths(tree: Mapping, prefix: Path = ()) -> dict[Path, Any]:
    """Nested dict -> {path tuple: leaf}."""
    out: dict[Path, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(flatten_paths(value, (*prefix, key)))
        else:
            out[(*prefix, key)] = value
    return out
