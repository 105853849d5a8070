"""Token losses in float32 with T5X semantics: cross-entropy plus z-loss, returned as sums.

z-loss (from Mesh TensorFlow / PaLM) adds ``z_loss * log(Z)**2`` per token, where ``Z`` is the
softmax normaliser; it keeps logits from drifting and costs nothing at inference.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


def _forward(logits: jax.Array, targets: jax.Array, z_loss: float) -> tuple[tuple[jax.Array, jax.Array], jax.Array]:
    # float32 only inside the reductions: XLA fuses the casts into the max/exp-sum passes.
    logits32 = logits.astype(jnp.float32)
    log_z = jax.nn.logsumexp(jax.lax.stop_gradient(logits32), axis=-1)
    target_logit = jnp.take_along_axis(logits32, targets[..., None].astype(jnp.int32), axis=-1)[..., 0]
    z_term = z_loss * jnp.square(log_z)
    return (log_z - target_logit + z_term, z_term), log_z


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _cross_entropy(logits: jax.Array, targets: jax.Array, z_loss: float) -> tuple[jax.Array, jax.Array]:
    return _forward(logits, targets, z_loss)[0]


def _cross_entropy_fwd(logits, targets, z_loss):
    out, log_z = _forward(logits, targets, z_loss)
    # Residuals: the logits as they came (activation dtype) and log Z [tokens]; autodiff would
    # also keep float32 [tokens, vocab] intermediates alive until the backward pass.
    return out, (logits, targets, log_z)


def _cross_entropy_bwd(z_loss, residuals, cotangents):
    logits, targets, log_z = residuals
    g_loss, g_z = cotangents
    probs = jnp.exp(logits.astype(jnp.float32) - log_z[..., None])
    # d(log Z)/d logits = softmax; loss = log Z - logit[t] + z * log Z^2; z_term = z * log Z^2.
    dlog_z = g_loss * (1.0 + 2.0 * z_loss * log_z) + g_z * 2.0 * z_loss * log_z
    onehot = jax.nn.one_hot(targets, logits.shape[-1], dtype=jnp.float32)
    grad = probs * dlog_z[..., None] - onehot * g_loss[..., None]
    return grad.astype(logits.dtype), None


_cross_entropy.defvjp(_cross_entropy_fwd, _cross_entropy_bwd)


def cross_entropy_with_logits(
    logits: jax.Array, targets: jax.Array, z_loss: float = 0.0
) -> tuple[jax.Array, jax.Array]:
    """Per-token ``(cross_entropy + z_loss term, z_loss term)`` for integer ``targets``.

    Gathers the target logit instead of multiplying by a one-hot, computes in float32 inside
    the reductions only, and has a hand-written backward pass that keeps just the logits and
    ``log Z`` (the softmax is recomputed), so the loss holds no extra ``[tokens, vocab]`` float32
    copies between the forward and backward passes.
    """
    return _cross_entropy(logits, targets, float(z_loss))


def token_log_likelihood(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """``log p(target)`` per position (float32), without any z-loss."""
    loss, _ = cross_entropy_with_logits(logits, targets, 0.0)
    return -loss


def weighted_cross_entropy_sums(
    logits: jax.Array, targets: jax.Array, weights: jax.Array, z_loss: float = 0.0
) -> dict[str, jax.Array]:
    """Weighted sums over all tokens: ``loss`` (CE + z), ``z_loss``, ``cross_ent_loss``."""
    weights = weights.astype(jnp.float32)
    per_token, z_term = cross_entropy_with_logits(logits, targets, z_loss)
    total = jnp.sum(per_token * weights)
    total_z = jnp.sum(z_term * weights)
    return {"loss": total, "z_loss": total_z, "cross_ent_loss": total - total_z}


def per_sequence_weights(
    weights: jax.Array, segment_ids: jax.Array | None = None
) -> tuple[jax.Array, jax.Array]:
    """Divides each token weight by its sequence's weight sum (T5X's AVERAGE_PER_SEQUENCE).

    A sequence is one row, or one packed segment when ``segment_ids`` are given. Returns
    ``(adjusted_weights, num_sequences)`` where only sequences with a positive weight sum count.
    """
    weights = weights.astype(jnp.float32)
    if segment_ids is None:
        totals = jnp.sum(weights, axis=-1, keepdims=True)
        num_sequences = jnp.sum(totals > 0).astype(jnp.float32)
        per_token_total = jnp.broadcast_to(totals, weights.shape)
    else:
        rows, length = weights.shape
        # One bucket per (row, segment id); segment ids are < length + 1 by construction.
        ids = (jnp.arange(rows)[:, None] * (length + 1) + segment_ids.astype(jnp.int32)).reshape(-1)
        totals = jax.ops.segment_sum(weights.reshape(-1), ids, num_segments=rows * (length + 1))
        num_sequences = jnp.sum(totals > 0).astype(jnp.float32)
        per_token_total = totals[ids].reshape(weights.shape)
    adjusted = jnp.where(per_token_total > 0, weights / jnp.where(per_token_total > 0, per_token_total, 1.0), 0.0)
    return adjusted, num_sequences
