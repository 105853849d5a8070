"""Autoregressive decoding on a key/value cache: greedy, temperature sampling, beam search.

Every decoder works from the same starting point, so encoder-decoder and decoder-only models
share them: ``initial_logits [batch, vocab]`` predict the first output token, and
``tokens_to_logits(tokens [n, 1], cache) -> (logits [n, vocab], cache)`` feeds one chosen token
and returns the next distribution. Loops are ``lax.while_loop``s (jit-friendly, stop early
once every row is finished). Output ``[batch, max_decode_length]``: tokens up to and including
EOS, then 0.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

TokensToLogits = Callable[[jax.Array, Any], tuple[jax.Array, Any]]
NEG_INF = -1.0e7  # T5X's "minus infinity" for beam scores (finite, so arithmetic stays safe)
SHARED = -1  # a cache leaf's "batch axis" when the leaf is per input row and shared by its beams


def brevity_penalty(alpha: float, length: jax.Array | int) -> jax.Array:
    """T5X / GNMT length penalty ``((5 + length) / 6) ** alpha``."""
    return jnp.power((5.0 + jnp.asarray(length, jnp.float32)) / 6.0, alpha)


def _check(initial_logits: jax.Array, max_decode_length: int) -> None:
    if initial_logits.ndim != 2:
        raise ValueError(f"initial_logits must be [batch, vocab], got shape {initial_logits.shape}.")
    if max_decode_length < 1:
        raise ValueError(f"max_decode_length={max_decode_length} must be >= 1.")


def _sampling_loop(
    select: Callable[[jax.Array, jax.Array], jax.Array],
    tokens_to_logits: TokensToLogits,
    initial_logits: jax.Array,
    cache: Any,
    max_decode_length: int,
    rng: jax.Array,
    eos_id: int,
) -> jax.Array:
    """Shared loop for greedy and sampling: ``select(logits, rng) -> tokens [batch]``."""
    batch = initial_logits.shape[0]
    positions = jnp.arange(max_decode_length)

    def cond(state):
        step, _, done, _, _, _ = state
        return jnp.logical_and(step < max_decode_length, jnp.logical_not(jnp.all(done)))

    def body(state):
        step, tokens, done, logits, cache, rng = state
        rng, step_rng = jax.random.split(rng)
        token = jnp.where(done, 0, select(logits, step_rng).astype(jnp.int32))
        tokens = jnp.where(positions[None, :] == step, token[:, None], tokens)
        done = jnp.logical_or(done, token == eos_id)
        logits, cache = tokens_to_logits(token[:, None], cache)
        return step + 1, tokens, done, logits.astype(jnp.float32), cache, rng

    state = (
        jnp.zeros((), jnp.int32),
        jnp.zeros((batch, max_decode_length), jnp.int32),
        jnp.zeros((batch,), jnp.bool_),
        initial_logits.astype(jnp.float32),
        cache,
        rng,
    )
    return jax.lax.while_loop(cond, body, state)[1]


def greedy_decode(
    tokens_to_logits: TokensToLogits,
    initial_logits: jax.Array,
    cache: Any,
    max_decode_length: int,
    eos_id: int = 1,
) -> jax.Array:
    """Most likely token at every step."""
    _check(initial_logits, max_decode_length)
    return _sampling_loop(
        lambda logits, _: jnp.argmax(logits, axis=-1),
        tokens_to_logits,
        initial_logits,
        cache,
        max_decode_length,
        jax.random.key(0),
        eos_id,
    )


def temperature_sample(
    tokens_to_logits: TokensToLogits,
    initial_logits: jax.Array,
    cache: Any,
    max_decode_length: int,
    rng: jax.Array,
    temperature: float = 1.0,
    top_k: int = 0,
    eos_id: int = 1,
) -> jax.Array:
    """Samples from ``softmax(logits / temperature)``, optionally from the ``top_k`` only.

    ``temperature=0`` is greedy decoding (T5X's convention).
    """
    _check(initial_logits, max_decode_length)
    if temperature < 0:
        raise ValueError(f"temperature={temperature} must be >= 0 (0 means greedy).")
    vocab = initial_logits.shape[-1]
    if top_k < 0 or top_k > vocab:
        raise ValueError(f"top_k={top_k} must be in [0, vocab={vocab}] (0 disables it).")

    def select(logits: jax.Array, key: jax.Array) -> jax.Array:
        if temperature == 0.0:
            return jnp.argmax(logits, axis=-1)
        if top_k:
            kth = jax.lax.top_k(logits, top_k)[0][..., -1:]
            logits = jnp.where(logits < kth, -jnp.inf, logits)
        return jax.random.categorical(key, logits / temperature, axis=-1)

    return _sampling_loop(select, tokens_to_logits, initial_logits, cache, max_decode_length, rng, eos_id)


def _axes_like(tree: Any, batch_axes: Any) -> Any:
    """Per-leaf batch axes: ``None`` means 0 everywhere, else a tree of ints shaped like ``tree``."""
    return jax.tree.map(lambda _: 0, tree) if batch_axes is None else batch_axes


def _gather_beams(tree: Any, parents: jax.Array, batch: int, beams: int, batch_axes: Any = None) -> Any:
    """Reorders every leaf's ``batch*beams`` axis by ``parents [batch, beams]`` (scalars kept)."""

    def gather(x, axis):
        if x.ndim == 0 or axis == SHARED:
            return x
        grouped = x.reshape(*x.shape[:axis], batch, beams, *x.shape[axis + 1 :])
        idx = parents.reshape(*([1] * axis), batch, beams, *([1] * (x.ndim - axis - 1)))
        return jnp.take_along_axis(grouped, idx, axis=axis + 1).reshape(x.shape)

    return jax.tree.map(gather, tree, _axes_like(tree, batch_axes))


def expand_to_beams(tree: Any, beams: int, batch_axes: Any = None) -> Any:
    """Repeats every leaf with a batch axis ``beams`` times: ``[b, ...] -> [b*beams, ...]``.

    ``batch_axes`` (a tree of ints like ``tree``) names a leaf's batch axis when it is not 0,
    e.g. a scanned model's cache ``[layers, batch, ...]``; ``SHARED`` keeps a leaf as it is
    (one copy per row that the row's beams share).
    """
    return jax.tree.map(
        lambda x, axis: x if x.ndim == 0 or axis == SHARED else jnp.repeat(x, beams, axis=axis),
        tree,
        _axes_like(tree, batch_axes),
    )


def beam_search(
    tokens_to_logits: TokensToLogits,
    initial_logits: jax.Array,
    cache: Any,
    max_decode_length: int,
    num_beams: int = 4,
    alpha: float = 0.6,
    eos_id: int = 1,
    cache_batch_axes: Any = None,
) -> tuple[jax.Array, jax.Array]:
    """T5X-style beam search; returns the best sequence per row and its length-penalised score.

    ``cache`` must already hold ``batch * num_beams`` rows (see ``expand_to_beams``);
    ``tokens_to_logits`` is called on ``batch * num_beams`` rows (``cache_batch_axes``: see
    ``expand_to_beams``). Finished hypotheses score
    ``log p / brevity_penalty(alpha, length)``; the search stops early once no live beam can
    beat the worst kept finished one. Rows where nothing finished return the best live beam.
    """
    _check(initial_logits, max_decode_length)
    batch, vocab = initial_logits.shape
    k, length = num_beams, max_decode_length
    if k < 1 or 2 * k > k * vocab:
        raise ValueError(f"num_beams={num_beams} must be >= 1 and at most half of beams*vocab.")
    positions = jnp.arange(length)
    best_possible_penalty = brevity_penalty(alpha, length)

    def cond(state):
        step, _, live_lp, _, fin_scores, fin_flags, _, _ = state
        best_live = live_lp[:, 0] / best_possible_penalty
        worst_fin = jnp.min(jnp.where(fin_flags, fin_scores, NEG_INF), axis=1)
        finished = jnp.all(worst_fin > best_live)
        return jnp.logical_and(step < length, jnp.logical_not(finished))

    def body(state):
        step, live_seqs, live_lp, fin_seqs, fin_scores, fin_flags, logits, cache = state
        log_probs = jax.nn.log_softmax(logits.astype(jnp.float32)).reshape(batch, k, vocab)
        flat = (log_probs + live_lp[..., None]).reshape(batch, k * vocab)
        top_lp, top_idx = jax.lax.top_k(flat, 2 * k)
        parent, token = top_idx // vocab, (top_idx % vocab).astype(jnp.int32)
        seqs = jnp.take_along_axis(live_seqs, parent[..., None], axis=1)
        seqs = jnp.where(positions == step, token[..., None], seqs)
        is_eos = jnp.logical_and(token == eos_id, top_lp > NEG_INF / 2)

        # Live beams: the best K candidates that did not just end.
        live_lp, live_sel = jax.lax.top_k(jnp.where(is_eos, NEG_INF, top_lp), k)
        live_seqs = jnp.take_along_axis(seqs, live_sel[..., None], axis=1)
        live_parent = jnp.take_along_axis(parent, live_sel, axis=1)
        live_token = jnp.take_along_axis(token, live_sel, axis=1)

        # Finished pool: keep the best K of (old finished, just-ended candidates).
        new_scores = jnp.where(is_eos, top_lp / brevity_penalty(alpha, step + 1), NEG_INF)
        pool_scores = jnp.concatenate([jnp.where(fin_flags, fin_scores, NEG_INF), new_scores], axis=1)
        fin_scores, fin_sel = jax.lax.top_k(pool_scores, k)
        fin_seqs = jnp.take_along_axis(jnp.concatenate([fin_seqs, seqs], axis=1), fin_sel[..., None], axis=1)
        fin_flags = jnp.take_along_axis(jnp.concatenate([fin_flags, is_eos], axis=1), fin_sel, axis=1)

        cache = _gather_beams(cache, live_parent, batch, k, cache_batch_axes)
        logits, cache = tokens_to_logits(live_token.reshape(batch * k, 1), cache)
        return step + 1, live_seqs, live_lp, fin_seqs, fin_scores, fin_flags, logits.astype(jnp.float32), cache

    live_lp0 = jnp.tile(jnp.asarray([0.0] + [NEG_INF] * (k - 1), jnp.float32)[None], (batch, 1))
    state = (
        jnp.zeros((), jnp.int32),
        jnp.zeros((batch, k, length), jnp.int32),
        live_lp0,
        jnp.zeros((batch, k, length), jnp.int32),
        jnp.full((batch, k), NEG_INF, jnp.float32),
        jnp.zeros((batch, k), jnp.bool_),
        jnp.repeat(initial_logits.astype(jnp.float32), k, axis=0),
        cache,
    )
    _, live_seqs, live_lp, fin_seqs, fin_scores, fin_flags, _, _ = jax.lax.while_loop(cond, body, state)
    any_finished = jnp.any(fin_flags, axis=1)
    best = jnp.where(any_finished[:, None], fin_seqs[:, 0], live_seqs[:, 0])
    score = jnp.where(any_finished, fin_scores[:, 0], live_lp[:, 0] / best_possible_penalty)
    return best, score
