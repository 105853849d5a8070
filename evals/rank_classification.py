"""Rank classification: score every answer option of an example by its log-likelihood.

FLAN's protocol: score = summed log p(option tokens | prompt) including EOS, no length
normalisation; prediction = argmax (ties -> lowest option index). We also keep the
length-normalised score (per target token) as an extra column, as lm-eval's acc_norm does.

Speed: an encoder-decoder model encodes each prompt ONCE and scores its K options in one decoder
batch (`model.score_options`), instead of copying a long prompt K times as T5/T0 do.

Batch-size invariance: every row is computed independently of its neighbours; shapes are fixed
per (prompt bucket, option bucket, option-count bucket) and batches are always padded to `batch_size` rows with
copies whose results are dropped. The same holds for the mesh: batches are sharded over its data
axis (evals.eval_mesh), and rows never interact, so 1 device, (8,1) or (4,2) give the same scores. Padded options carry zero loss weights and are scored -inf, so
neither the eval batch size, the padding nor the order of the options changes any result.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from jax.sharding import Mesh

from evals import batching, eval_mesh


@dataclasses.dataclass(frozen=True)
class RankExample:
    """One example to rank: a prompt and its options (token ids, EOS included).

    `gold` holds the indices of the correct options (usually one; empty when unknown);
    `option_texts` the options as strings, where known (for text metrics such as ReCoRD's EM).
    """

    example_index: int
    inputs: np.ndarray
    options: tuple[np.ndarray, ...]
    gold: tuple[int, ...] = ()
    option_texts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.options) == 0:
            raise ValueError(f"example {self.example_index} has no options")
        if any(len(o) == 0 for o in self.options) or len(self.inputs) == 0:
            raise ValueError(f"example {self.example_index} has an empty prompt or option")
        if any(not 0 <= g < len(self.options) for g in self.gold):
            raise ValueError(f"example {self.example_index}: gold {self.gold} out of range")


@dataclasses.dataclass(frozen=True)
class RankResult:
    """Per-example option scores and predictions, in the order the examples were given."""

    example_indices: list[int]
    scores: list[np.ndarray]  # [K_i] summed log-lik incl. EOS
    normalized_scores: list[np.ndarray]  # [K_i] per-token mean log-lik
    predictions: list[int]
    normalized_predictions: list[int]
    gold: list[tuple[int, ...]]

    def targets_for_metrics(self, normalized: bool = False) -> list[int]:
        """One gold label per example for label metrics: the prediction if it is among several
        correct options, else the first correct one (-1 when gold is unknown)."""
        preds = self.normalized_predictions if normalized else self.predictions
        return [p if p in g else (g[0] if g else -1) for p, g in zip(preds, self.gold, strict=True)]


def argmax_lowest(scores: np.ndarray) -> int:
    """Index of the maximum score; ties go to the lowest index (np.argmax does exactly that)."""
    return int(np.argmax(scores))


# ---------------------------------------------------------------------------------------------
# Batching


def _make_option_batch(
    examples: Sequence[RankExample], batch_size: int, input_len: int, target_len: int, num_options: int,
    filler: RankExample | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Arrays [B, Lin], [B, K, Lt], [B, K, Lt]; dummy rows and options copy real ones, weight 0.

    Dummy rows repeat `filler` (default the first example) so no row is all padding (keeps
    attention finite); a host whose rows are all padding passes the batch's first example.
    """
    filler = filler if filler is not None else examples[0]
    inputs = np.zeros((batch_size, input_len), np.int32)
    targets = np.zeros((batch_size, num_options, target_len), np.int32)
    weights = np.zeros((batch_size, num_options, target_len), np.float32)
    for b in range(batch_size):
        ex = examples[b] if b < len(examples) else filler
        inputs[b, : len(ex.inputs)] = ex.inputs
        for k in range(num_options):
            opt = ex.options[k] if k < len(ex.options) else ex.options[0]
            targets[b, k, : len(opt)] = opt
            if k < len(ex.options) and b < len(examples):
                weights[b, k, : len(opt)] = 1.0
    return inputs, targets, weights


def _check_batch_size(batch_size: int) -> None:
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")


def option_shape_key(examples: Sequence[RankExample], min_length: int = 16) -> Callable[[int], tuple[int, int, int]]:
    """Bucketed (prompt length, option length, option count) of example i.

    Option count: exact when every example has the same K (the usual case); otherwise a
    power-of-two bucket per example, which bounds recompiles for ReCoRD-like variable K.
    """
    fixed_k = len({len(ex.options) for ex in examples}) == 1

    def key(i: int) -> tuple[int, int, int]:
        ex = examples[i]
        return (
            batching.bucket_length(len(ex.inputs), min_length),
            batching.bucket_length(max(len(o) for o in ex.options), min_length),
            len(ex.options) if fixed_k else batching.bucket_length(len(ex.options), 2),
        )

    return key


def score_options_encode_once(
    model: Any,
    params: Any,
    examples: Sequence[RankExample],
    batch_size: int,
    *,
    min_length: int = 16,
    mesh: eval_mesh.EvalMesh | Mesh | None = None,
) -> list[np.ndarray]:
    """Summed log-lik of every option of every example via `model.score_options` (encode once).

    Runs on `mesh` (default: all devices on 'data'; see evals.eval_mesh): the batch (rounded up to
    a multiple of the data axis) is sharded over 'data', parameters keep their training shardings.
    Examples are grouped by bucketed (prompt length, option length, option count) so each batch
    has one compiled shape; results come back in input order, one [K_i] array per example.
    """
    _check_batch_size(batch_size)
    ev = eval_mesh.resolve(mesh)
    params = ev.place_params(model, params)
    global_batch = ev.global_batch_size(batch_size)
    lo, hi = ev.local_rows(global_batch)
    out: list[np.ndarray | None] = [None] * len(examples)

    def finish(idx: list[int], scores: Any) -> None:
        scores = ev.fetch(scores).astype(np.float64)
        for row, i in enumerate(idx):
            out[i] = scores[row, : len(examples[i].options)].copy()

    pipe = eval_mesh.Pipeline(finish)
    for key, idx in batching.group_by_shape(range(len(examples)), option_shape_key(examples, min_length), global_batch):
        input_len, target_len, num_options = key
        mine = [examples[i] for i in idx[lo:hi]]
        local = _make_option_batch(mine, hi - lo, input_len, target_len, num_options, filler=examples[idx[0]])
        pipe.push(idx, ev.run(model, "score_options", params, *ev.to_global(local)))
    pipe.drain()
    return out  # type: ignore[return-value]


def score_options_pairwise(
    model: Any,
    params: Any,
    examples: Sequence[RankExample],
    batch_size: int,
    *,
    min_length: int = 16,
    mesh: eval_mesh.EvalMesh | Mesh | None = None,
) -> list[np.ndarray]:
    """The T5/T0 way, for comparison: one (prompt, option) pair per row via `model.score_batch`."""
    _check_batch_size(batch_size)
    if getattr(model.config, "decoder_only", False):
        raise ValueError("pairwise scoring builds encoder-decoder batches; decoder-only models use score_options")
    ev = eval_mesh.resolve(mesh)
    params = ev.place_params(model, params)
    global_batch = ev.global_batch_size(batch_size)
    lo, hi = ev.local_rows(global_batch)
    pairs = [(e, k) for e, ex in enumerate(examples) for k in range(len(ex.options))]
    out = [np.zeros(len(ex.options), np.float64) for ex in examples]

    def shape_key(p: int) -> tuple[int, int]:
        e, k = pairs[p]
        return (
            batching.bucket_length(len(examples[e].inputs), min_length),
            batching.bucket_length(len(examples[e].options[k]), min_length),
        )

    def row(p: int) -> tuple[np.ndarray, np.ndarray]:
        return examples[pairs[p][0]].inputs, examples[pairs[p][0]].options[pairs[p][1]]

    def finish(idx: list[int], scores: Any) -> None:
        scores = ev.fetch(scores).astype(np.float64)
        for r, p in enumerate(idx):
            e, k = pairs[p]
            out[e][k] = scores[r]

    pipe = eval_mesh.Pipeline(finish)
    for (input_len, target_len), idx in batching.group_by_shape(range(len(pairs)), shape_key, global_batch):
        rows = [row(p) for p in idx[lo:hi]]
        batch = batching.encdec_batch(rows, hi - lo, input_len, target_len, filler=row(idx[0]))
        pipe.push(idx, ev.run(model, "score_batch", params, ev.to_global(batch)))
    pipe.drain()
    return out


def rank_examples(
    model: Any,
    params: Any,
    examples: Sequence[RankExample],
    batch_size: int,
    *,
    pairwise: bool = False,
    min_length: int = 16,
    mesh: eval_mesh.EvalMesh | Mesh | None = None,
) -> RankResult:
    """Scores and predictions for every example (encode-once unless `pairwise`), on `mesh`."""
    if not examples:
        raise ValueError("no examples to rank")
    scorer = score_options_pairwise if pairwise else score_options_encode_once
    scores = scorer(model, params, examples, batch_size, min_length=min_length, mesh=mesh)
    lengths = [np.array([len(o) for o in ex.options], np.float64) for ex in examples]
    normalized = [s / n for s, n in zip(scores, lengths, strict=True)]
    return RankResult(
        example_indices=[ex.example_index for ex in examples],
        scores=scores,
        normalized_scores=normalized,
        predictions=[argmax_lowest(s) for s in scores],
        normalized_predictions=[argmax_lowest(s) for s in normalized],
        gold=[ex.gold for ex in examples],
    )


# ---------------------------------------------------------------------------------------------
# Reading seqio rank tasks


def group_rank_rows(rows: Iterable[dict], max_examples: int | None = None) -> list[RankExample]:
    """Regroups rank-task rows (one per example x option) into RankExamples by `idx[0]`.

    Rows carry `inputs`, `targets` (token ids), `idx` = [example, option], `is_correct` and
    `num_options`. Options are ordered by idx[1]. With `max_examples`, reading stops at the first
    row of the (max_examples+1)-th example (seqio's rank preprocessor emits an example's rows
    together).
    """
    grouped: dict[int, dict[int, dict]] = {}
    for row in rows:
        e, k = (int(v) for v in np.asarray(row["idx"]).reshape(-1)[:2])
        if e not in grouped and max_examples is not None and len(grouped) >= max_examples:
            break
        options = grouped.setdefault(e, {})
        if k in options:
            raise ValueError(f"duplicate rank row idx={[e, k]}")
        options[k] = row
    examples = []
    for e, options in grouped.items():
        order = sorted(options)
        expected = int(options[order[0]].get("num_options", len(order)))
        if order != list(range(expected)):
            raise ValueError(f"example {e}: option rows {order} do not cover num_options={expected}")
        first = options[order[0]]
        examples.append(
            RankExample(
                example_index=e,
                inputs=np.asarray(first["inputs"], np.int32),
                options=tuple(np.asarray(options[k]["targets"], np.int32) for k in order),
                gold=tuple(k for k in order if bool(options[k].get("is_correct", False))),
                option_texts=tuple(_text(options[k].get("targets_pretokenized", "")) for k in order),
            )
        )
    return examples


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def load_rank_task(task_name: str, split: str = "validation", max_examples: int | None = None) -> list[RankExample]:
    """Reads a registered seqio rank task (unshuffled, untrimmed) and regroups it by example."""
    _, rows = batching.read_task(task_name, split)
    return group_rank_rows(rows, max_examples=max_examples)
