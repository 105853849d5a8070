"""Learning-rate schedules (T5X conventions), selectable by name from gin.

All schedules map a step (int or traced int array, counting from 0) to a float32 learning rate.

- ``constant``: ``base`` (FLAN finetuning: 1e-3).
- ``rsqrt``: T5X pretraining, ``base / sqrt(max(step, warmup_steps))``: constant during warmup,
  then inverse-square-root decay.
- ``linear``: linear warmup from 0 to ``base`` over ``warmup_steps``, then linear decay to
  ``end_learning_rate`` at ``decay_steps`` (held there afterwards).
- ``cosine``: the same warmup, then cosine decay to ``end_learning_rate`` at ``decay_steps``.

``decay_steps`` is the absolute step at which decay ends (it includes the warmup).
"""

from __future__ import annotations

from collections.abc import Callable

import gin
import jax.numpy as jnp
import optax

SCHEDULE_NAMES = ("constant", "rsqrt", "linear", "cosine")


class ScheduleError(ValueError):
    """An unknown schedule name or inconsistent schedule settings."""


def constant(base_learning_rate: float) -> optax.Schedule:
    """Always ``base_learning_rate``."""
    return lambda step: jnp.full((), base_learning_rate, jnp.float32)


def rsqrt(base_learning_rate: float, warmup_steps: int) -> optax.Schedule:
    """T5X's ``rsqrt_decay``: ``base / sqrt(max(step, warmup_steps, 1))``."""
    floor = float(max(warmup_steps, 1))

    def schedule(step):
        step = jnp.asarray(step, jnp.float32)
        return base_learning_rate / jnp.sqrt(jnp.maximum(step, floor))

    return schedule


def _warmup(base: float, warmup_steps: int) -> Callable:
    # Linear ramp reaching base at step == warmup_steps.
    def ramp(step):
        return base * jnp.minimum(1.0, step / max(warmup_steps, 1))

    return ramp


def linear(
    base_learning_rate: float, warmup_steps: int, decay_steps: int, end_learning_rate: float = 0.0
) -> optax.Schedule:
    """Linear warmup to base, then linear decay to ``end_learning_rate`` at ``decay_steps``."""
    _check_decay(warmup_steps, decay_steps)
    ramp = _warmup(base_learning_rate, warmup_steps)
    span = max(decay_steps - warmup_steps, 1)

    def schedule(step):
        step = jnp.asarray(step, jnp.float32)
        frac = jnp.clip((step - warmup_steps) / span, 0.0, 1.0)
        decayed = base_learning_rate + (end_learning_rate - base_learning_rate) * frac
        return jnp.where(step < warmup_steps, ramp(step), decayed).astype(jnp.float32)

    return schedule


def cosine(
    base_learning_rate: float, warmup_steps: int, decay_steps: int, end_learning_rate: float = 0.0
) -> optax.Schedule:
    """Linear warmup to base, then half-cosine decay to ``end_learning_rate`` at ``decay_steps``."""
    _check_decay(warmup_steps, decay_steps)
    ramp = _warmup(base_learning_rate, warmup_steps)
    span = max(decay_steps - warmup_steps, 1)

    def schedule(step):
        step = jnp.asarray(step, jnp.float32)
        frac = jnp.clip((step - warmup_steps) / span, 0.0, 1.0)
        cos = 0.5 * (1.0 + jnp.cos(jnp.pi * frac))
        decayed = end_learning_rate + (base_learning_rate - end_learning_rate) * cos
        return jnp.where(step < warmup_steps, ramp(step), decayed).astype(jnp.float32)

    return schedule


def _check_decay(warmup_steps: int, decay_steps: int | None) -> None:
    if decay_steps is None:
        raise ScheduleError("decay schedules need decay_steps (the step at which decay ends).")
    if warmup_steps < 0 or decay_steps < warmup_steps:
        raise ScheduleError(
            f"need 0 <= warmup_steps <= decay_steps, got warmup_steps={warmup_steps}, "
            f"decay_steps={decay_steps}; decay_steps is absolute and includes the warmup."
        )


@gin.configurable
def create_learning_rate_schedule(
    name: str = "constant",
    base_learning_rate: float = 1e-3,
    warmup_steps: int = 0,
    decay_steps: int | None = None,
    end_learning_rate: float = 0.0,
) -> optax.Schedule:
    """Builds a schedule by name (one of ``SCHEDULE_NAMES``); bind from gin, e.g.
    ``create_learning_rate_schedule.name = 'rsqrt'``."""
    if warmup_steps < 0:
        raise ScheduleError(f"warmup_steps must be >= 0, got {warmup_steps}.")
    if name == "constant":
        return constant(base_learning_rate)
    if name == "rsqrt":
        return rsqrt(base_learning_rate, warmup_steps)
    if name == "linear":
        return linear(base_learning_rate, warmup_steps, decay_steps, end_learning_rate)
    if name == "cosine":
        return cosine(base_learning_rate, warmup_steps, decay_steps, end_learning_rate)
    raise ScheduleError(
        f"unknown learning-rate schedule {name!r}; valid names are {', '.join(SCHEDULE_NAMES)}."
    )
