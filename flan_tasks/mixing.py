"""Examples-proportional mixing rates, as FLAN sets them.

A dataset's rate is its number of training examples after the per-dataset example cap (30,000),
clipped at the rate cap (3,000): rate = min(min(n, example_cap), rate_cap). This is exactly what
`seqio.mixing_rate_num_examples(task, maximum=rate_cap)` computes for a task whose source
reports the capped count, with no temperature.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

DEFAULT_EXAMPLE_CAP = 30_000
DEFAULT_RATE_CAP = 3_000


def capped_examples(num_examples: int, example_cap: int | None = DEFAULT_EXAMPLE_CAP) -> int:
    """Training examples a dataset contributes after the per-dataset cap (None: no cap)."""
    if num_examples < 0:
        raise ValueError(f"num_examples must be >= 0, got {num_examples}")
    return num_examples if example_cap is None else min(num_examples, example_cap)


def examples_proportional_rate(
    num_examples: int,
    rate_cap: int | None = DEFAULT_RATE_CAP,
    example_cap: int | None = DEFAULT_EXAMPLE_CAP,
) -> float:
    """FLAN's mixing rate for a dataset with `num_examples` training examples."""
    n = capped_examples(num_examples, example_cap)
    return float(n if rate_cap is None else min(n, rate_cap))


def seqio_rate_fn(rate_cap: int | None = DEFAULT_RATE_CAP) -> Callable:
    """seqio's own examples-proportional rate function (used when the count is not known up front)."""
    import seqio

    return functools.partial(seqio.mixing_rate_num_examples, maximum=rate_cap)
