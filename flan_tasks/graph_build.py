"""Build tf.data pipelines without AutoGraph: same graph ops, a fraction of the start-up time.

Every `Dataset.map` runs its python function through AutoGraph, which parses, transforms and
reloads the source of each function it reaches (seqio's tokenize, trim and feature-converter maps,
our rendering and packing) and wraps every call in the traced code. The input pipelines here have
no data-dependent python control flow (every `if`/`for` is on python values), so AutoGraph
produces the same ops and only costs time: building the embedded suite's held-out training
mixture took ~9.4 s of CPU with it and ~3.1 s without, with the same batches bit for bit (and the
same tf.data iterator state, so checkpoints restore across the two). `tf.function`s traced inside
keep their own AutoGraph setting.

A user's preprocessor that does need AutoGraph (an `if` or loop on a tensor) fails to trace
without it with a TypeError; `build` then builds the pipeline again with AutoGraph on, as
tf.data would by default, and logs that it did.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")
logger = logging.getLogger(__name__)


@contextlib.contextmanager
def autograph_off() -> Iterator[None]:
    """Within this block (this thread), functions traced for tf.data are not converted by AutoGraph."""
    try:  # TF's own switch (what `tf.autograph.experimental.do_not_convert` sets per function)
        from tensorflow.python.autograph.core import ag_ctx
    except ImportError:  # another TF layout: build as tf.data does by default
        yield
        return
    with ag_ctx.ControlStatusCtx(status=ag_ctx.Status.DISABLED):
        yield


def build(fn: Callable[[], T], what: str = "input pipeline") -> T:
    """``fn()`` (which builds tf.data pipelines) without AutoGraph; with it if a function needs it."""
    try:
        with autograph_off():
            return fn()
    except TypeError as exc:  # e.g. OperatorNotAllowedInGraphError: `if tensor:` in a preprocessor
        logger.info("%s needs AutoGraph (%s); building it with AutoGraph", what, str(exc).splitlines()[0])
        return fn()
