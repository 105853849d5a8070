"""Task reading, shape bucketing and batch building shared by rank classification and generation.

Evaluation sees prompts of many lengths. Compiling one XLA program per exact length would be slow,
and padding everything to the longest prompt wastes compute, so lengths are rounded up to a power
of two (at least `minimum`) and rows are grouped by their rounded shape.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np


def read_task(task_name: str, split: str) -> tuple[Any, Iterator[dict[str, Any]]]:
    """A registered seqio task and its rows (unshuffled, untrimmed, as numpy), its pipeline built
    without AutoGraph (faster; flan_tasks/graph_build.py)."""
    import seqio

    from flan_tasks import graph_build

    task = seqio.get_mixture_or_task(task_name)
    ds = graph_build.build(lambda: task.get_dataset(
        sequence_length=None, split=split, shuffle=False, trim_output_features=False), f"eval task {task_name}")
    return task, ds.as_numpy_iterator()


def bucket_length(n: int, minimum: int = 16) -> int:
    """The smallest power of two >= max(n, minimum)."""
    if n < 0:
        raise ValueError(f"length must be >= 0, got {n}")
    size = max(int(minimum), 1)
    size = 1 << (size - 1).bit_length()
    while size < n:
        size *= 2
    return size


def group_by_shape(
    indices: Iterable[int], key: Callable[[int], Hashable], batch_size: int
) -> Iterator[tuple[Hashable, list[int]]]:
    """Yields (shape key, up to batch_size indices) chunks; keys sorted, input order kept inside."""
    groups: dict[Hashable, list[int]] = {}
    for i in indices:
        groups.setdefault(key(i), []).append(i)
    for k in sorted(groups, key=repr):
        members = groups[k]
        for start in range(0, len(members), batch_size):
            yield k, members[start : start + batch_size]


def shift_right(targets: np.ndarray) -> np.ndarray:
    """Decoder inputs for teacher forcing: targets shifted right by one, start token 0 (T5)."""
    out = np.zeros_like(targets)
    out[..., 1:] = targets[..., :-1]
    return out


def encdec_batch(
    rows: Sequence[tuple[np.ndarray, np.ndarray]], batch_size: int, input_len: int, target_len: int,
    filler: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """An unpacked encoder-decoder batch (EncDecFeatureConverter layout) of `batch_size` rows.

    Rows beyond len(rows) repeat `filler` (default the first row) with zero loss weights; their
    results are dropped. A host whose share of a sharded batch is all padding gives only `filler`.
    """
    if not rows and filler is None:
        raise ValueError("cannot build a batch from zero rows")
    filler = filler if filler is not None else rows[0]
    enc = np.zeros((batch_size, input_len), np.int32)
    tgt = np.zeros((batch_size, target_len), np.int32)
    weights = np.zeros((batch_size, target_len), np.float32)
    for b in range(batch_size):
        inputs, targets = rows[b] if b < len(rows) else filler
        if len(inputs) > input_len or len(targets) > target_len:
            raise ValueError(f"row of lengths {len(inputs)}/{len(targets)} exceeds {input_len}/{target_len}")
        enc[b, : len(inputs)] = inputs
        tgt[b, : len(targets)] = targets
        if b < len(rows):
            weights[b, : len(targets)] = 1.0
    return {
        "encoder_input_tokens": enc,
        "decoder_input_tokens": shift_right(tgt),
        "decoder_target_tokens": tgt,
        "decoder_loss_weights": weights,
    }


def prefix_lm_prompt_batch(
    prompts: Sequence[np.ndarray], batch_size: int, width: int, filler: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Decoder-only prompt batch in seqio's PrefixLM layout, for `predict_batch`.

    decoder_input_tokens = [0, prompt...] (the shifted sequence), and decoder_causal_attention
    marks the prompt plus the shifted-in position, so the model continues right after the prompt.
    Rows beyond len(prompts) repeat `filler` (default the first prompt).
    """
    if not prompts and filler is None:
        raise ValueError("cannot build a batch from zero prompts")
    filler = filler if filler is not None else prompts[0]
    tokens = np.zeros((batch_size, width), np.int32)
    causal = np.zeros((batch_size, width), np.int32)
    for b in range(batch_size):
        p = prompts[b] if b < len(prompts) else filler
        if len(p) + 1 > width:
            raise ValueError(f"prompt of length {len(p)} does not fit width {width}")
        tokens[b, 1 : len(p) + 1] = p
        causal[b, : len(p) + 1] = 1
    return {"decoder_input_tokens": tokens, "decoder_causal_attention": causal}
