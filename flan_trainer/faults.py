"""Fault handling for the training loop: preemption (SIGTERM) and non-finite losses."""

from __future__ import annotations

import logging
import math
import signal
import threading

import jax
import numpy as np

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """Raised when a step produced a NaN or infinite loss; the last good checkpoint is kept."""


class PreemptionWatcher:
    """Turns SIGTERM into a flag the training loop polls after every step.

    The loop then saves a checkpoint and exits cleanly. With several processes the flag is
    agreed on collectively (any process preempted -> all stop at the same step), because a
    checkpoint save is a collective operation.
    """

    def __init__(self, sync_every: int = 10) -> None:
        self._event = threading.Event()
        self.sync_every = sync_every
        self._previous = None

    def install(self) -> PreemptionWatcher:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def uninstall(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None

    def _handle(self, signum, frame) -> None:  # noqa: ARG002 (signal handler signature)
        log.warning("SIGTERM received: will save a checkpoint after this step and exit.")
        self._event.set()

    def should_stop(self, step: int) -> bool:
        local = self._event.is_set()
        if jax.process_count() == 1:
            return local
        if step % self.sync_every != 0:
            return False
        from jax.experimental import multihost_utils

        flags = multihost_utils.process_allgather(np.array([local], dtype=np.int32))
        return bool(np.any(flags))


def check_finite_loss(step: int, loss: float, last_good_step: int | None) -> None:
    """Raises NonFiniteLossError with a message that says what was kept and what to try."""
    if math.isfinite(loss):
        return
    kept = f"the last good checkpoint (step {last_good_step})" if last_good_step is not None else "no checkpoint"
    raise NonFiniteLossError(
        f"loss became {loss} at step {step}; training stopped and {kept} was left untouched. "
        "Try a lower learning rate, fp32 activations (--gin.ACTIVATION_DTYPE=\"'float32'\"), "
        "or a larger z-loss; restart resumes from the last good checkpoint."
    )
