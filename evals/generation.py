"""Generation evaluation: decode, detokenise, postprocess, score.

Decoding goes through `model.predict_batch` (greedy by default, beam search on request). Prompts
are grouped by bucketed length and every batch is padded to `batch_size` rows with copies that are
dropped afterwards, so predictions do not depend on the eval batch size: each row is decoded
independently of the others. Batches are sharded over the mesh's data axis (evals.eval_mesh);
as rows never interact, the mesh shape does not change any token either.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from jax.sharding import Mesh

from evals import batching, eval_mesh, metrics

EOS_ID = 1


@dataclasses.dataclass(frozen=True)
class GenExample:
    """One prompt to decode plus the references its prediction is scored against.

    `references` are strings before postprocessing; `target_length` is the token length of the
    task's own target (EOS included), used to size the decode. `row` is the raw task row, passed
    to the task's postprocessor as `example`.
    """

    example_index: int
    inputs: np.ndarray
    references: tuple[str, ...]
    target_length: int
    row: Mapping[str, Any] | None = None


@dataclasses.dataclass(frozen=True)
class GenResult:
    example_indices: list[int]
    token_ids: list[np.ndarray]  # decoded ids, cut before EOS
    texts: list[str]  # detokenised model output
    predictions: list[Any]  # after the task postprocessor
    targets: list[Any]  # postprocessed references, one list per example
    scores: dict[str, float]


def _as_str(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def cut_at_eos(ids: np.ndarray) -> np.ndarray:
    """Token ids before the first EOS, without padding."""
    ids = np.asarray(ids).reshape(-1)
    eos = np.nonzero(ids == EOS_ID)[0]
    if len(eos):
        ids = ids[: eos[0]]
    return ids[ids != 0]


def detokenize(vocabulary: Any, ids: np.ndarray) -> str:
    """Text of a decoded sequence (stops at EOS) in the task's vocabulary."""
    return _as_str(vocabulary.decode([int(t) for t in cut_at_eos(ids)]))


def decode_examples(
    model: Any,
    params: Any,
    examples: Sequence[GenExample],
    batch_size: int,
    *,
    max_decode_length: int,
    method: str = "greedy",
    num_beams: int = 4,
    alpha: float = 0.6,
    min_length: int = 16,
    mesh: eval_mesh.EvalMesh | Mesh | None = None,
) -> list[np.ndarray]:
    """Decoded token ids (cut before EOS) for every example, in input order.

    Runs on `mesh` (default: all devices on 'data'): each batch (rounded up to a multiple of the
    data axis) is sharded over 'data', parameters keep their training shardings.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if method not in ("greedy", "beam"):
        raise ValueError(f"method must be 'greedy' or 'beam' for evaluation, got {method!r}")
    ev = eval_mesh.resolve(mesh)
    params = ev.place_params(model, params)
    global_batch = ev.global_batch_size(batch_size)
    lo, hi = ev.local_rows(global_batch)
    out: list[np.ndarray | None] = [None] * len(examples)
    static = {"method": method, "max_decode_length": max_decode_length}
    if method == "beam":
        static.update(num_beams=num_beams, alpha=alpha)
    decoder_only = bool(getattr(model.config, "decoder_only", False))

    def shape_key(i: int) -> int:
        # Decoder-only prompts gain the shifted-in BOS position.
        return batching.bucket_length(len(examples[i].inputs) + decoder_only, min_length)

    def finish(idx: list[int], decoded: Any) -> None:
        decoded = ev.fetch(decoded)
        for row, i in enumerate(idx):
            out[i] = cut_at_eos(decoded[row])

    pipe = eval_mesh.Pipeline(finish)
    for input_len, idx in batching.group_by_shape(range(len(examples)), shape_key, global_batch):
        prompts, filler = [examples[i].inputs for i in idx[lo:hi]], examples[idx[0]].inputs
        if decoder_only:
            batch = batching.prefix_lm_prompt_batch(prompts, hi - lo, input_len, filler=filler)
        else:
            rows = [(p, np.zeros(1, np.int32)) for p in prompts]
            batch = batching.encdec_batch(rows, hi - lo, input_len, max_decode_length,
                                          filler=(filler, np.zeros(1, np.int32)))
        pipe.push(idx, ev.run(model, "predict_batch", params, ev.to_global(batch), **static))
    pipe.drain()
    return out  # type: ignore[return-value]


def _postprocess(postprocess_fn: Callable | None, value: str, row: Mapping | None, is_target: bool) -> Any:
    if postprocess_fn is None:
        return value
    return postprocess_fn(value, example=row, is_target=is_target)


def evaluate_generation(
    model: Any,
    params: Any,
    examples: Sequence[GenExample],
    vocabulary: Any,
    metric_names: Sequence[str],
    batch_size: int,
    *,
    postprocess_fn: Callable | None = None,
    options: Sequence[str] | None = None,
    max_decode_length: int | None = None,
    method: str = "greedy",
    num_beams: int = 4,
    alpha: float = 0.6,
    mesh: eval_mesh.EvalMesh | Mesh | None = None,
) -> GenResult:
    """Decodes every example and scores the postprocessed outputs against their references.

    `max_decode_length` defaults to the bucketed longest task target, so decoding can always
    produce a full gold answer.
    """
    if not examples:
        raise ValueError("no examples to decode")
    if max_decode_length is None:
        max_decode_length = batching.bucket_length(max(e.target_length for e in examples))
    ids = decode_examples(
        model, params, examples, batch_size, max_decode_length=max_decode_length,
        method=method, num_beams=num_beams, alpha=alpha, mesh=mesh,
    )
    return score_generation(ids, examples, vocabulary, metric_names, postprocess_fn=postprocess_fn, options=options)


def score_generation(
    ids: Sequence[np.ndarray],
    examples: Sequence[GenExample],
    vocabulary: Any,
    metric_names: Sequence[str],
    *,
    postprocess_fn: Callable | None = None,
    options: Sequence[str] | None = None,
) -> GenResult:
    """Host side of generation evaluation: detokenise, postprocess and score decoded ids."""
    texts = [_as_str(vocabulary.decode([int(t) for t in x])) for x in ids]
    predictions = [_postprocess(postprocess_fn, t, e.row, False) for t, e in zip(texts, examples, strict=True)]
    targets = [[_postprocess(postprocess_fn, r, e.row, True) for r in e.references] for e in examples]
    # Label/number metrics want one target per example; text metrics take the list of references.
    single = [m for m in metric_names if m in metrics.SINGLE_TARGET_METRICS]
    scores: dict[str, float] = {}
    if single:
        flat_targets = [t[0] for t in targets]
        scores.update(metrics.compute_metrics(single, flat_targets, predictions, options=options or None))
    text_names = [m for m in metric_names if m not in metrics.SINGLE_TARGET_METRICS]
    if text_names:
        scores.update(metrics.compute_metrics(text_names, targets, predictions, options=options or None))
    return GenResult(
        example_indices=[e.example_index for e in examples],
        token_ids=list(ids),
        texts=texts,
        predictions=predictions,
        targets=targets,
        scores=scores,
    )


def rows_to_examples(rows: Iterable[Mapping[str, Any]], max_examples: int | None = None) -> list[GenExample]:
    """GenExamples from generation-task rows (`inputs`, `targets`, `answers` or `targets_pretokenized`)."""
    examples = []
    for i, row in enumerate(rows):
        if max_examples is not None and i >= max_examples:
            break
        if "answers" in row and len(np.asarray(row["answers"]).reshape(-1)):
            refs = tuple(_as_str(a) for a in np.asarray(row["answers"]).reshape(-1))
        elif "targets_pretokenized" in row:
            refs = (_as_str(row["targets_pretokenized"]),)
        else:
            raise ValueError("generation rows need `answers` or `targets_pretokenized` for references")
        examples.append(
            GenExample(
                example_index=i,
                inputs=np.asarray(row["inputs"], np.int32),
                references=refs,
                target_length=len(np.asarray(row["targets"]).reshape(-1)),
                row=row,
            )
        )
    return examples


def load_generation_task(
    task_name: str, split: str = "validation", max_examples: int | None = None
) -> tuple[list[GenExample], Callable | None, Any]:
    """(examples, postprocess_fn, vocabulary of `targets`) of a registered seqio generation task."""
    task, rows = batching.read_task(task_name, split)
    examples = rows_to_examples(rows, max_examples=max_examples)
    return examples, task.postprocess_fn, task.output_features["targets"].vocabulary
