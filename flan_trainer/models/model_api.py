"""Model wrappers the trainer and the evaluators call: losses, scoring and decoding.

``EncoderDecoderModel`` (T5.1.1 / Flan-T5) and ``DecoderOnlyModel`` share one surface (see
docs/ARCHITECTURE.md). None of the methods jit themselves; callers wrap them (static:
``method``, ``max_decode_length`` and the other decoding keywords).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import gin
import jax
import jax.numpy as jnp

from flan_trainer import decoding
from flan_trainer.models import losses
from flan_trainer.models.config import TransformerConfig
from flan_trainer.models.decoder_only import DecoderOnly
from flan_trainer.models.t5 import Transformer, cache_batch_axes

Batch = Mapping[str, jax.Array]
NORMALIZING_MODES = ("NUM_REAL_TARGET_TOKENS", "AVERAGE_PER_SEQUENCE")
DECODE_METHODS = ("greedy", "beam", "temperature")


def shift_right(targets: jax.Array) -> jax.Array:
    """Teacher-forcing inputs: ``[t0, t1, ...] -> [0, t0, ...]`` (0 doubles as BOS)."""
    return jnp.pad(targets, ((0, 0), (1, 0)))[:, :-1]


def _require(batch: Batch, *names: str) -> None:
    missing = [n for n in names if n not in batch]
    if missing:
        raise KeyError(f"batch lacks feature(s) {missing}; it has {sorted(batch)}. Use the model's feature converter.")


def _check_normalizing_factor(value: Any) -> float | str | None:
    if value is None or isinstance(value, str) and value in NORMALIZING_MODES:
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    raise ValueError(
        f"loss_normalizing_factor={value!r} is not valid; use None, a positive float, or one of {NORMALIZING_MODES}."
    )


class _BaseModel:
    """Loss and scoring shared by both model kinds; subclasses provide ``_logits``."""

    def __init__(
        self,
        config: TransformerConfig | None = None,
        *,
        module: nn.Module | None = None,
        z_loss: float = 1e-4,
        loss_normalizing_factor: float | str | None = None,
    ) -> None:
        if module is None and config is None:
            raise ValueError("give a TransformerConfig (config=...) or a built module (module=...).")
        if module is not None and config is not None and module.config != config:
            raise ValueError("config and module.config differ; pass only one of them.")
        self.config: TransformerConfig = config if config is not None else module.config
        self.module: nn.Module = module if module is not None else self._build_module(self.config)
        self.z_loss = float(z_loss)
        self.loss_normalizing_factor = _check_normalizing_factor(loss_normalizing_factor)

    # -- hooks -------------------------------------------------------------------------------
    def _build_module(self, config: TransformerConfig) -> nn.Module:
        raise NotImplementedError

    def _logits(self, params: Any, batch: Batch, dropout_rng: jax.Array | None) -> jax.Array:
        raise NotImplementedError

    # -- loss --------------------------------------------------------------------------------
    @staticmethod
    def _weights(batch: Batch) -> jax.Array:
        if "decoder_loss_weights" in batch:
            return batch["decoder_loss_weights"].astype(jnp.float32)
        return (batch["decoder_target_tokens"] > 0).astype(jnp.float32)

    def _sequence_weights(self, batch: Batch) -> tuple[jax.Array, jax.Array]:
        return losses.per_sequence_weights(self._weights(batch), batch.get("decoder_segment_ids"))

    def loss_denominator(self, batch: Batch) -> jax.Array:
        """The scalar this batch's summed loss is divided by (see ``loss_normalizing_factor``)."""
        factor = self.loss_normalizing_factor
        if factor is None:
            return jnp.float32(1.0)
        if factor == "NUM_REAL_TARGET_TOKENS":
            return jnp.sum(self._weights(batch))
        if factor == "AVERAGE_PER_SEQUENCE":
            return self._sequence_weights(batch)[1]
        return jnp.float32(factor)

    def loss_fn(
        self,
        params: Any,
        batch: Batch,
        dropout_rng: jax.Array | None,
        normalizer: jax.Array | float | None = None,
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """``(loss, metrics)``; loss = (weighted CE + z-loss) summed / normalizer.

        ``normalizer=None`` uses ``loss_denominator(batch)``; pass the global batch's
        denominator to every microbatch for exact gradient accumulation. Metrics are sums, so
        they add across microbatches. ``dropout_rng=None`` disables dropout.
        """
        _require(batch, "decoder_target_tokens")
        targets = batch["decoder_target_tokens"]
        raw_weights = self._weights(batch)
        seq_weights, num_sequences = self._sequence_weights(batch)
        weights = seq_weights if self.loss_normalizing_factor == "AVERAGE_PER_SEQUENCE" else raw_weights
        logits = self._logits(params, batch, dropout_rng)
        sums = losses.weighted_cross_entropy_sums(logits, targets, weights, self.z_loss)
        denominator = self.loss_denominator(batch) if normalizer is None else jnp.asarray(normalizer, jnp.float32)
        correct = jnp.sum(raw_weights * (jnp.argmax(logits, axis=-1) == targets))
        metrics = {
            "loss": sums["loss"] / denominator,
            "cross_ent_loss": sums["cross_ent_loss"] / denominator,
            "z_loss": sums["z_loss"] / denominator,
            "correct": correct,
            "weight_sum": jnp.sum(raw_weights),
            "num_sequences": num_sequences,
        }
        return metrics["loss"], metrics

    def score_batch(self, params: Any, batch: Batch) -> jax.Array:
        """``[batch]`` summed log-likelihood of the weighted target tokens (EOS included)."""
        _require(batch, "decoder_target_tokens")
        logits = self._logits(params, batch, None)
        token_ll = losses.token_log_likelihood(logits, batch["decoder_target_tokens"])
        return jnp.sum(token_ll * self._weights(batch), axis=-1)

    @staticmethod
    def _check_options(inputs: jax.Array, targets: jax.Array, weights: jax.Array) -> None:
        if inputs.ndim != 2 or targets.ndim != 3 or weights.shape != targets.shape or targets.shape[0] != inputs.shape[0]:
            raise ValueError(
                "score_options expects inputs [B, Lin], option_target_tokens [B, K, Lt] and "
                f"option_loss_weights [B, K, Lt]; got {inputs.shape}, {targets.shape}, {weights.shape}."
            )

    # -- decoding ----------------------------------------------------------------------------
    def _run_decoder(
        self,
        method: str,
        step: decoding.TokensToLogits,
        initial_logits: jax.Array,
        cache: Any,
        expand: Any,
        *,
        max_decode_length: int,
        num_beams: int,
        alpha: float,
        temperature: float,
        top_k: int,
        rng: jax.Array | None,
        eos_id: int,
    ) -> jax.Array:
        """Dispatches to ``decoding``; ``expand`` is per-row step context to repeat for beams."""
        if method == "greedy":
            return decoding.greedy_decode(lambda t, c: step(t, c, expand), initial_logits, cache, max_decode_length, eos_id)
        if method == "temperature":
            if rng is None:
                raise ValueError("method='temperature' needs rng=jax.random.key(...).")
            return decoding.temperature_sample(
                lambda t, c: step(t, c, expand), initial_logits, cache, max_decode_length, rng, temperature, top_k, eos_id
            )
        if method == "beam":
            # A scanned model's cache leaves are [layers, batch, ...]: tell decoding where batch is.
            axes = cache_batch_axes(cache)
            cache = decoding.expand_to_beams(cache, num_beams, axes)
            wide = decoding.expand_to_beams(expand, num_beams)
            best, _ = decoding.beam_search(
                lambda t, c: step(t, c, wide),
                initial_logits,
                cache,
                max_decode_length,
                num_beams,
                alpha,
                eos_id,
                cache_batch_axes=axes,
            )
            return best
        raise ValueError(f"unknown decoding method {method!r}; use one of {DECODE_METHODS}.")

    def _empty_cache(self, init_call) -> Any:
        """Zero cache of the right shapes (``key_mask`` all True) without running the model."""
        shapes = jax.eval_shape(init_call)

        def fill(path, leaf):
            name = getattr(path[-1], "key", None)
            return (jnp.ones if name == "key_mask" else jnp.zeros)(leaf.shape, leaf.dtype)

        return jax.tree_util.tree_map_with_path(fill, shapes)


@gin.configurable(module="models")
class EncoderDecoderModel(_BaseModel):
    """T5.1.1 / Flan-T5 encoder-decoder (T5X's ``models.EncoderDecoderModel``)."""

    @property
    def feature_converter_cls(self) -> type:
        import seqio  # deferred: importing seqio pulls in TensorFlow

        return seqio.EncDecFeatureConverter

    def _build_module(self, config: TransformerConfig) -> nn.Module:
        return Transformer(config)

    def get_initial_variables(
        self, rng: jax.Array, input_shapes: Mapping[str, tuple[int, ...]], input_types: Mapping[str, Any] | None = None
    ) -> dict:
        """Flax variables (params boxed with logical axis names) for the given feature shapes."""
        _require(input_shapes, "encoder_input_tokens", "decoder_input_tokens")
        types = dict(input_types or {})
        enc = jnp.ones(input_shapes["encoder_input_tokens"], types.get("encoder_input_tokens", jnp.int32))
        dec = jnp.ones(input_shapes["decoder_input_tokens"], types.get("decoder_input_tokens", jnp.int32))
        return dict(self.module.init({"params": rng}, enc, dec, dec, enable_dropout=False))

    def _logits(self, params: Any, batch: Batch, dropout_rng: jax.Array | None) -> jax.Array:
        _require(batch, "encoder_input_tokens", "decoder_input_tokens", "decoder_target_tokens")
        return self.module.apply(
            {"params": params},
            batch["encoder_input_tokens"],
            batch["decoder_input_tokens"],
            batch["decoder_target_tokens"],
            batch.get("encoder_segment_ids"),
            batch.get("decoder_segment_ids"),
            enable_dropout=dropout_rng is not None,
            rngs=None if dropout_rng is None else {"dropout": dropout_rng},
        )

    def encode(self, params: Any, encoder_input_tokens: jax.Array, encoder_segment_ids: jax.Array | None = None) -> jax.Array:
        """Encoder output ``[batch, length, embed]`` (no dropout)."""
        return self.module.apply({"params": params}, encoder_input_tokens, encoder_segment_ids, method="encode")

    def score_options(
        self,
        params: Any,
        encoder_input_tokens: jax.Array,
        option_target_tokens: jax.Array,
        option_loss_weights: jax.Array,
    ) -> jax.Array:
        """``[B, K]`` option log-likelihoods; each prompt is encoded once for its K options."""
        self._check_options(encoder_input_tokens, option_target_tokens, option_loss_weights)
        b, k, lt = option_target_tokens.shape
        encoded = self.encode(params, encoder_input_tokens)
        targets = option_target_tokens.reshape(b * k, lt)
        logits = self.module.apply(
            {"params": params},
            jnp.repeat(encoded, k, axis=0),
            jnp.repeat(encoder_input_tokens, k, axis=0),
            shift_right(targets),
            targets,
            method="decode",
        )
        token_ll = losses.token_log_likelihood(logits, targets)
        return jnp.sum(token_ll * option_loss_weights.reshape(b * k, lt).astype(jnp.float32), axis=-1).reshape(b, k)

    def predict_batch(
        self,
        params: Any,
        batch: Batch,
        *,
        method: str = "greedy",
        max_decode_length: int,
        num_beams: int = 4,
        alpha: float = 0.6,
        temperature: float = 1.0,
        rng: jax.Array | None = None,
        top_k: int = 0,
        eos_id: int = 1,
    ) -> jax.Array:
        """``[B, max_decode_length]`` decoded ids (EOS kept, 0 after it)."""
        _require(batch, "encoder_input_tokens")
        enc_tokens = batch["encoder_input_tokens"]
        encoded = self.encode(params, enc_tokens)
        batch_size = enc_tokens.shape[0]
        # With cache_cross_attention the first step projects `encoded` into the cache and later
        # steps pass None (and beams need no copies of `encoded`); without it every step does.
        reuse = self.config.cache_cross_attention

        def step(tokens, cache, ctx):
            logits, new_vars = self.module.apply(
                {"params": params, "cache": cache},
                ctx[0],
                ctx[1],
                tokens,
                decode=True,
                mutable=["cache"],
                method="decode",
            )
            return logits[:, -1], new_vars["cache"]

        # One slot more than the output: the last chosen token is fed too (its logits unused).
        cache = self._empty_cache(
            lambda: self.module.apply(
                {"params": params},
                encoded,
                enc_tokens,
                jnp.zeros((batch_size, max_decode_length + 1), jnp.int32),
                decode=True,
                mutable=["cache"],
                method="decode",
            )[1]["cache"]
        )
        initial_logits, cache = step(jnp.zeros((batch_size, 1), jnp.int32), cache, (encoded, enc_tokens))
        ctx = (None, enc_tokens) if reuse else (encoded, enc_tokens)
        return self._run_decoder(
            method,
            step,
            initial_logits,
            cache,
            ctx,
            max_decode_length=max_decode_length,
            num_beams=num_beams,
            alpha=alpha,
            temperature=temperature,
            top_k=top_k,
            rng=rng,
            eos_id=eos_id,
        )


@gin.configurable(module="models")
class DecoderOnlyModel(_BaseModel):
    """Decoder-only LM; ``inputs_bidirectional_attention=True`` makes it a prefix-LM (T5X name)."""

    def __init__(
        self,
        config: TransformerConfig | None = None,
        *,
        module: nn.Module | None = None,
        z_loss: float = 1e-4,
        loss_normalizing_factor: float | str | None = None,
        inputs_bidirectional_attention: bool = False,
    ) -> None:
        super().__init__(config, module=module, z_loss=z_loss, loss_normalizing_factor=loss_normalizing_factor)
        self.inputs_bidirectional_attention = bool(inputs_bidirectional_attention)

    @property
    def feature_converter_cls(self) -> type:
        import seqio  # deferred: importing seqio pulls in TensorFlow

        if self.inputs_bidirectional_attention:
            return seqio.PrefixLMFeatureConverter
        return seqio.DecoderFeatureConverter

    def _build_module(self, config: TransformerConfig) -> nn.Module:
        return DecoderOnly(config)

    def get_initial_variables(
        self, rng: jax.Array, input_shapes: Mapping[str, tuple[int, ...]], input_types: Mapping[str, Any] | None = None
    ) -> dict:
        """Flax variables (params boxed with logical axis names) for the given feature shapes."""
        _require(input_shapes, "decoder_input_tokens")
        dtype = dict(input_types or {}).get("decoder_input_tokens", jnp.int32)
        dec = jnp.ones(input_shapes["decoder_input_tokens"], dtype)
        return dict(self.module.init({"params": rng}, dec, dec, enable_dropout=False))

    def _causal_attention(self, batch: Batch) -> jax.Array | None:
        return batch.get("decoder_causal_attention") if self.inputs_bidirectional_attention else None

    def _logits(self, params: Any, batch: Batch, dropout_rng: jax.Array | None) -> jax.Array:
        _require(batch, "decoder_input_tokens", "decoder_target_tokens")
        return self.module.apply(
            {"params": params},
            batch["decoder_input_tokens"],
            batch["decoder_target_tokens"],
            batch.get("decoder_segment_ids"),
            None,
            self._causal_attention(batch),
            enable_dropout=dropout_rng is not None,
            rngs=None if dropout_rng is None else {"dropout": dropout_rng},
        )

    def encode(self, params: Any, encoder_input_tokens: jax.Array, encoder_segment_ids: jax.Array | None = None) -> jax.Array:
        raise NotImplementedError("a decoder-only model has no encoder; score prompts with score_options.")

    def score_options(
        self,
        params: Any,
        encoder_input_tokens: jax.Array,
        option_target_tokens: jax.Array,
        option_loss_weights: jax.Array,
    ) -> jax.Array:
        """``[B, K]`` option log-likelihoods of ``prompt + option`` sequences (prompt unscored)."""
        self._check_options(encoder_input_tokens, option_target_tokens, option_loss_weights)
        b, k, lt = option_target_tokens.shape
        lin = encoder_input_tokens.shape[1]
        prompt_len = jnp.sum(encoder_input_tokens > 0, axis=1)  # prompts are right-padded with 0
        pos = jnp.arange(lin + lt)[None, :]
        in_prompt = pos < prompt_len[:, None]  # [B, Lin+Lt]
        prompt = jnp.pad(encoder_input_tokens, ((0, 0), (0, lt)))
        option_idx = jnp.clip(pos - prompt_len[:, None], 0, lt - 1)  # [B, Lin+Lt]
        in_option = jnp.logical_and(~in_prompt, pos - prompt_len[:, None] < lt)

        def place(option_values):  # [B, K, Lt] -> [B*K, Lin+Lt] laid out after each prompt
            idx = jnp.broadcast_to(option_idx[:, None, :], (b, k, lin + lt))
            gathered = jnp.take_along_axis(option_values, idx, axis=2)
            return jnp.where(in_option[:, None, :], gathered, 0).reshape(b * k, lin + lt)

        prompt_part = jnp.repeat(jnp.where(in_prompt, prompt, 0), k, axis=0)
        targets = prompt_part + place(option_target_tokens)
        weights = place(option_loss_weights.astype(jnp.float32))
        batch = {"decoder_input_tokens": shift_right(targets), "decoder_target_tokens": targets}
        # The prefix seen bidirectionally is the prompt plus the shifted-in position (seqio's rule).
        batch["decoder_causal_attention"] = jnp.repeat((pos <= prompt_len[:, None]).astype(jnp.int32), k, axis=0)
        logits = self._logits(params, batch, None)
        token_ll = losses.token_log_likelihood(logits, targets)
        return jnp.sum(token_ll * weights, axis=-1).reshape(b, k)

    def predict_batch(
        self,
        params: Any,
        batch: Batch,
        *,
        method: str = "greedy",
        max_decode_length: int,
        num_beams: int = 4,
        alpha: float = 0.6,
        temperature: float = 1.0,
        rng: jax.Array | None = None,
        top_k: int = 0,
        eos_id: int = 1,
    ) -> jax.Array:
        """Continues each prompt (``decoder_input_tokens`` where ``decoder_causal_attention``).

        Without ``decoder_causal_attention`` the prompt is the BOS alone. Prompts are
        right-aligned in the cache and their left padding masked, which relative position
        biases make exactly equivalent to the unpadded prompt.
        """
        _require(batch, "decoder_input_tokens")
        tokens = batch["decoder_input_tokens"]
        batch_size = tokens.shape[0]
        if "decoder_causal_attention" in batch:
            prompt_len = jnp.sum(batch["decoder_causal_attention"] > 0, axis=1).astype(jnp.int32)
            width = tokens.shape[1]
        else:
            prompt_len, width = jnp.ones((batch_size,), jnp.int32), 1
        shift = width - prompt_len  # left padding per row
        cols = jnp.arange(width)[None, :]
        src = jnp.clip(cols - shift[:, None], 0, width - 1)
        prompt = jnp.where(cols >= shift[:, None], jnp.take_along_axis(tokens[:, :width], src, axis=1), 0)
        total = width + max_decode_length
        key_mask = jnp.arange(total)[None, :] >= shift[:, None]

        def apply(tok, cache, **kw):
            logits, new_vars = self.module.apply(
                {"params": params, "cache": cache}, tok, enable_dropout=False, decode=True, mutable=["cache"], **kw
            )
            return logits[:, -1], new_vars["cache"]

        cache = self._empty_cache(
            lambda: self.module.apply(
                {"params": params},
                jnp.zeros((batch_size, total), jnp.int32),
                enable_dropout=False,
                decode=True,
                mutable=["cache"],
            )[1]["cache"]
        )
        bidirectional = self.inputs_bidirectional_attention and "decoder_causal_attention" in batch
        initial_logits, cache = apply(prompt, cache, decode_key_mask=key_mask, prefill_bidirectional=bidirectional)
        return self._run_decoder(
            method,
            lambda t, c, _: apply(t, c),
            initial_logits,
            cache,
            (),
            max_decode_length=max_decode_length,
            num_beams=num_beams,
            alpha=alpha,
            temperature=temperature,
            top_k=top_k,
            rng=rng,
            eos_id=eos_id,
        )
