"""Evaluate a model on one cluster's eval plan: rank classification or generation per template,
on the validation slice (to pick templates) and the reported split, then aggregate and report.

Works with parameters in memory (call from the training loop) and from a checkpoint
(`python -m evals`, see evals.__main__).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from jax.sharding import Mesh

from evals import batching, eval_mesh, generation, metrics, rank_classification, report
from flan_trainer.tasks_setup import register_suite

log = logging.getLogger(__name__)

SPLITS = ("validation", "reported")


def cluster_status(suite: str, cluster: str, training_mixture: str | None) -> str:
    """'held-out' if the training mixture excluded `cluster`, 'held-in' if it trained on it."""
    import flan_tasks

    if not training_mixture:
        return "unknown"
    if training_mixture == f"{suite}_all_train":
        return "held-in"
    prefix, suffix = f"{suite}_held_out_", "_train"
    if training_mixture.startswith(prefix) and training_mixture.endswith(suffix):
        held_out = training_mixture[len(prefix) : -len(suffix)]
        trained = flan_tasks.held_out_training_clusters(suite, held_out)
        return "held-in" if cluster in trained else "held-out"
    return "unknown"


def _rank_scores(entry: Any, result: rank_classification.RankResult, texts: list[tuple[str, ...]]) -> dict:
    label_names = [m for m in entry.metrics if m in metrics.LABEL_METRICS]
    number_names = [m for m in entry.metrics if m in metrics.SINGLE_TARGET_METRICS - metrics.LABEL_METRICS]
    text_names = [m for m in entry.metrics if m not in metrics.SINGLE_TARGET_METRICS]
    scores: dict[str, float] = {}
    if label_names:
        scores.update(metrics.compute_metrics(label_names, result.targets_for_metrics(), result.predictions))
    # Other metrics compare the chosen option's text: STS-B's correlations on "0".."5",
    # ReCoRD's EM/F1 against every correct entity.
    preds = [t[p] for t, p in zip(texts, result.predictions, strict=True)]
    golds = [[t[g] for g in gold] or [""] for t, gold in zip(texts, result.gold, strict=True)]
    if number_names:
        scores.update(metrics.compute_metrics(number_names, [g[0] for g in golds], preds))
    if text_names:
        scores.update(metrics.compute_metrics(text_names, golds, preds))
    norm = metrics.accuracy(result.targets_for_metrics(normalized=True), result.normalized_predictions)
    scores["accuracy_length_normalized"] = norm["accuracy"]
    return scores


def _option_texts(entry: Any, examples: list[rank_classification.RankExample]) -> list[tuple[str, ...]]:
    if entry.options:
        return [tuple(entry.options)] * len(examples)
    # Per-example options (ARC, HellaSwag, ...): the rows' pretokenized targets.
    return [ex.option_texts or tuple(str(k) for k in range(len(ex.options))) for ex in examples]


def _seqio_split(split: str) -> str:
    # Each eval task reads its own slice under both seqio split names; ask by meaning.
    return "validation" if split == "validation" else "test"


def load_task(entry: Any, task_name: str, split: str, max_examples: int | None) -> Any:
    """Host stage: read and tokenise one eval task (runs ahead in a background thread)."""
    if entry.kind == "rank":
        return rank_classification.load_rank_task(task_name, _seqio_split(split), max_examples)
    if entry.kind == "generation":
        return generation.load_generation_task(task_name, _seqio_split(split), max_examples)
    raise ValueError(f"unknown eval kind {entry.kind!r} for {task_name}")


def run_task_on_devices(model: Any, params: Any, entry: Any, loaded: Any, batch_size: int, method: str,
                        mesh: eval_mesh.EvalMesh | None) -> Any:
    """Device stage: rank results or decoded ids (dispatched in the same order on every host)."""
    if entry.kind == "rank":
        return rank_classification.rank_examples(model, params, loaded, batch_size, mesh=mesh)
    examples = loaded[0]
    max_decode_length = batching.bucket_length(max(e.target_length for e in examples))
    return generation.decode_examples(model, params, examples, batch_size, max_decode_length=max_decode_length,
                                      method=method, mesh=mesh)


def score_task(entry: Any, loaded: Any, raw: Any) -> dict[str, Any]:
    """Host stage: metrics of one task from its device results (overlaps the next task's device work)."""
    start = time.perf_counter()
    work = {}  # what the devices did, for throughput (benchmarks/bench_eval_cluster.py)
    if entry.kind == "rank":
        scores = _rank_scores(entry, raw, _option_texts(entry, loaded))
        num_examples, num_options = len(loaded), int(np.max([len(e.options) for e in loaded]))
        work["options_scored"] = int(sum(len(e.options) for e in loaded))
    else:
        examples, postprocess_fn, vocab = loaded
        result = generation.score_generation(raw, examples, vocab, entry.metrics, postprocess_fn=postprocess_fn,
                                             options=entry.options or None)
        scores, num_examples, num_options = result.scores, len(examples), (len(entry.options) or None)
        work["generated_tokens"] = int(sum(len(ids) for ids in raw))
    return {
        **work,
        "scores": scores,
        "primary": metrics.primary_score(entry.metrics, scores),
        "num_examples": num_examples,
        "num_options": num_options,
        "seconds": time.perf_counter() - start,
    }


def evaluate_task(
    model: Any,
    params: Any,
    entry: Any,
    task_name: str,
    split: str,
    batch_size: int,
    max_examples: int | None = None,
    method: str = "greedy",
    mesh: eval_mesh.EvalMesh | None = None,
) -> dict[str, Any]:
    """Scores one seqio eval task; returns its metric dict plus counts and timing."""
    start = time.perf_counter()
    loaded = load_task(entry, task_name, split, max_examples)
    raw = run_task_on_devices(model, params, entry, loaded, batch_size, method, mesh)
    return {**score_task(entry, loaded, raw), "seconds": time.perf_counter() - start}


def evaluate_jobs(model: Any, params: Any, jobs: Sequence[tuple[Any, str, str]], batch_size: int,
                  max_examples: int | None, method: str, mesh: eval_mesh.EvalMesh, lookahead: int = 2) -> list[dict]:
    """Evaluates (entry, task, split) jobs as a three-stage pipeline, results in job order.

    A loader thread reads and tokenises up to `lookahead` tasks ahead, the main thread keeps the
    devices busy (each task's batches are dispatched asynchronously, see eval_mesh.Pipeline), and a
    scorer thread computes a task's metrics while the devices already run the next one.
    """
    results: list[Any] = [None] * len(jobs)
    with ThreadPoolExecutor(1, "eval-load") as loader, ThreadPoolExecutor(1, "eval-score") as scorer:
        loads = {i: loader.submit(load_task, *jobs[i][:3], max_examples) for i in range(min(lookahead, len(jobs)))}
        for i, (entry, task, _split) in enumerate(jobs):
            loaded = loads.pop(i).result()
            if i + lookahead < len(jobs):
                loads[i + lookahead] = loader.submit(load_task, *jobs[i + lookahead][:3], max_examples)
            start = time.perf_counter()
            raw = run_task_on_devices(model, params, entry, loaded, batch_size, method, mesh)
            device_seconds = time.perf_counter() - start
            results[i] = (scorer.submit(score_task, entry, loaded, raw), device_seconds, task)
        out = []
        for future, device_seconds, task in results:
            got = future.result()
            got["seconds"] += device_seconds
            log.info("%s: %.2f", task, got["primary"])
            out.append(got)
    return out


def _template_record(entry: Any, by_split: Mapping[str, dict]) -> dict[str, Any]:
    record: dict[str, Any] = {
        "dataset": entry.dataset,
        "cluster": entry.cluster,
        "template_index": entry.template_index,
        "kind": entry.kind,
        "metrics": list(entry.metrics),
        "options": list(entry.options),
        "paper_score": entry.paper_score,
        "validation_task": entry.validation_task,
        "reported_task": entry.reported_task,
        "num_options": None,
    }
    for split in SPLITS:
        got = by_split.get(split)
        record[split] = None if got is None else got["primary"]
        record[f"scores_{split}"] = None if got is None else got["scores"]
        record[f"num_examples_{split}"] = None if got is None else got["num_examples"]
        record[f"seconds_{split}"] = None if got is None else round(got["seconds"], 3)
        if got is not None:
            record["num_options"] = got["num_options"]
    return record


def _primary_kind(entry: Any) -> str:
    # A classification dataset may also have generation tasks (an ablation); its headline number
    # stays the rank-classification one and the generation scores are reported on the side.
    return "rank" if entry.options or entry.kind == "rank" else "generation"


def evaluate(
    model: Any,
    params: Any,
    suite: str,
    cluster: str,
    vocabulary: Any = None,
    batch_size: int = 32,
    output_dir: str | None = None,
    max_examples: int | None = None,
    split: str = "both",
    *,
    training_mixture: str | None = None,
    method: str = "greedy",
    run_info: Mapping[str, Any] | None = None,
    plots: bool = True,
    max_templates: int | None = None,
    few_shot: int | None = None,
    mesh: eval_mesh.EvalMesh | Mesh | None = None,
) -> dict:
    """Evaluates every entry of `flan_tasks.eval_plan(suite, cluster)` and returns results.json's dict.

    max_templates: score only each dataset's first N scored templates (a quicker pass; the
    template mean then covers those N only, and the run info records it).
    few_shot: score the N-shot variant (exemplars from the training split before each prompt,
    see flan_tasks.few_shot) instead of zero-shot.

    split: 'both' (pick templates on validation, report on the reported split), 'validation' or
    'reported'. With `output_dir`, writes results.json, summary.md and the plots there (process 0
    only). mesh: where to run (evals.eval_mesh; default all devices on 'data'); with several
    processes every process calls `evaluate` with the same arguments and gets the same results.
    Unknown clusters raise flan_tasks.UnknownClusterError listing the valid names.
    """
    import flan_tasks

    if split not in ("both", *SPLITS):
        raise ValueError(f"split must be 'both', 'validation' or 'reported', got {split!r}")
    flan_tasks.held_out_training_clusters(suite, cluster)  # UnknownClusterError before any heavy work
    register_suite(suite, vocabulary)
    if few_shot:
        flan_tasks.register_few_shot(suite, num_shots=few_shot)
    entries = flan_tasks.eval_plan(suite, cluster, few_shot=few_shot or None)
    if max_templates is not None:
        entries = _first_templates(entries, max_templates)
    if not entries:
        raise ValueError(f"the eval plan of {suite}/{cluster} is empty")
    splits = SPLITS if split == "both" else (split,)
    start = time.perf_counter()
    ev = eval_mesh.resolve(mesh)
    params = ev.place_params(model, params)
    compiles_before = ev.compiles
    jobs = [(entry, entry.validation_task if s == "validation" else entry.reported_task, s)
            for entry in entries for s in splits]
    done = iter(evaluate_jobs(model, params, jobs, batch_size, max_examples, method, ev))
    main_records, side_records = [], []
    for entry in entries:
        by_split = {s: next(done) for s in splits}
        record = _template_record(entry, by_split)
        (main_records if entry.kind == _primary_kind(entry) else side_records).append(record)
    run = {
        "suite": suite, "cluster": cluster, "split": split, "batch_size": batch_size,
        "max_examples": max_examples, "max_templates": max_templates, "few_shot": few_shot or 0, "method": method, "training_mixture": training_mixture,
        "num_entries": len(entries), "seconds": round(time.perf_counter() - start, 2),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **mesh_info(ev, batch_size), "compiled_programs": ev.compiles - compiles_before, **dict(run_info or {}),
    }
    status = {cluster: cluster_status(suite, cluster, training_mixture)}
    results = report.build_results(run, main_records, status)
    results["side_templates"] = side_records
    if output_dir is not None and eval_mesh.is_main_process():
        report.write_report(results, output_dir, plots=plots)
    return results


def mesh_info(ev: eval_mesh.EvalMesh, batch_size: int) -> dict[str, Any]:
    """How the evaluation was laid out (recorded in results.json's run)."""
    import jax

    return {"mesh_shape": [int(n) for n in ev.mesh.devices.shape], "num_processes": jax.process_count(),
            "global_batch_size": ev.global_batch_size(batch_size)}


def _first_templates(entries: Sequence[Any], n: int) -> list[Any]:
    """Keeps each dataset's first `n` entries (per kind), in plan order."""
    if n < 1:
        raise ValueError(f"max_templates must be >= 1, got {n}")
    seen: dict[tuple[str, str], int] = {}
    kept = []
    for entry in entries:
        key = (entry.dataset, entry.kind)
        seen[key] = seen.get(key, 0) + 1
        if seen[key] <= n:
            kept.append(entry)
    return kept


def summary_line(results: Mapping[str, Any]) -> str:
    """One log line per cluster: template mean and best-template scores."""
    parts = [
        f"{c['cluster']} ({c['status']}): mean {c['mean']:.2f}" + (f", best {c['best']:.2f}" if c["best"] is not None else "")
        for c in results["clusters"]
        if c["mean"] is not None
    ]
    return "; ".join(parts) or "no reported scores"


def valid_clusters(suite: str) -> Sequence[str]:
    """The suite's cluster names (for CLI help and errors)."""
    import flan_tasks

    return flan_tasks.clusters(suite)
