"""results.json and a markdown summary of one evaluation run.

`build_results` turns per-template records (JSON-ready dicts) into the full results document:

    {
      "schema_version": 1,
      "run": {...},                      # free-form run info (suite, cluster, checkpoint, step, ...)
      "templates": [                     # one per (dataset, template), as given, plus nothing
        {"dataset", "cluster", "template_index", "kind", "metrics", "num_options",
         "validation", "reported",           # primary scores (0-100) or null
         "scores_validation", "scores_reported", "validation_task", "reported_task",
         "num_examples_validation", "num_examples_reported", "paper_score", ...}
      ],
      "datasets": [{"dataset", "cluster", "status", "kind", "primary_metric", "chance",
                    "num_templates", "mean", "validation_mean", "best_template", "best",
                    "best_validation", "min_template", "max_template", "paper_score"}],
      "clusters": [{"cluster", "status", "datasets", "mean", "best", "paper"}],
      "paper": {cluster: {...}}          # evals.paper_scores for the clusters present
    }

`status` is "held-out", "held-in" or "unknown" (see `cluster_status`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

from evals import aggregation, metrics, paper_scores

SCHEMA_VERSION = 1
_REQUIRED = ("dataset", "cluster", "template_index", "validation", "reported")


def chance_level(kind: str, num_options: int | None) -> float | None:
    """Accuracy of a uniform random guess for rank classification (100/K); None otherwise."""
    if kind != "rank" or not num_options:
        return None
    return 100.0 / num_options


def _to_template_score(record: Mapping[str, Any]) -> aggregation.TemplateScore:
    missing = [k for k in _REQUIRED if k not in record]
    if missing:
        raise ValueError(f"template record lacks {missing}: {dict(record)}")
    return aggregation.TemplateScore(
        dataset=record["dataset"],
        cluster=record["cluster"],
        template_index=int(record["template_index"]),
        validation=record["validation"],
        reported=record["reported"],
        turned_around=bool(record.get("turned_around", False)),
    )


def _dataset_entry(d: aggregation.DatasetScore, first: Mapping[str, Any], status: str) -> dict:
    names = list(first.get("metrics") or [])
    kind = first.get("kind", "rank")
    return {
        **dataclasses.asdict(d),
        "status": status,
        "kind": kind,
        "primary_metric": metrics.PRIMARY_KEY.get(names[0]) if names else None,
        "chance": chance_level(kind, first.get("num_options")),
        "paper_score": first.get("paper_score"),
    }


def build_results(
    run: Mapping[str, Any],
    templates: Sequence[Mapping[str, Any]],
    status: Mapping[str, str] | None = None,
) -> dict:
    """The full results document from per-template records; `status` maps cluster -> held-in/out."""
    status = dict(status or {})
    rows = [_to_template_score(t) for t in templates]
    first: dict[str, Mapping[str, Any]] = {}
    for t in templates:
        first.setdefault(t["dataset"], t)
    datasets = aggregation.aggregate_datasets(rows)
    clusters = aggregation.aggregate_clusters(datasets)
    # The paper's numbers describe the FLAN catalog; the embedded suite's clusters only share names.
    with_paper = run.get("suite", "flan") == "flan"
    paper = {c.cluster: paper_scores.as_dict(c.cluster) if with_paper else None for c in clusters}
    return {
        "schema_version": SCHEMA_VERSION,
        "run": dict(run),
        "templates": [dict(t) for t in templates],
        "datasets": [
            _dataset_entry(d, first[d.dataset], status.get(d.cluster, "unknown")) for d in datasets
        ],
        "clusters": [
            {
                "cluster": c.cluster,
                "status": status.get(c.cluster, "unknown"),
                "datasets": list(c.datasets),
                "mean": c.mean,
                "best": c.best,
                "paper": paper[c.cluster],
            }
            for c in clusters
        ],
        "paper": {k: v for k, v in paper.items() if v is not None},
    }


def _json_safe(value: Any) -> Any:
    # NaN/inf are not JSON; write them as null so every reader can parse the file.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _json_safe(value.item())
    return value


def write_json(results: Mapping[str, Any], path: str | pathlib.Path) -> pathlib.Path:
    """Writes results.json (strict JSON: NaN -> null)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_json_safe(results), indent=2, sort_keys=False, allow_nan=False) + "\n")
    return path


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _run_lines(run: Mapping[str, Any]) -> list[str]:
    return [f"- {k}: `{v}`" for k, v in run.items() if not isinstance(v, Mapping | list)]


def cluster_table(results: Mapping[str, Any]) -> list[str]:
    """Markdown rows: each cluster's template mean and best template next to the paper's numbers."""
    lines = [
        "| cluster | status | datasets | template mean | best template | paper FLAN 137B "
        "| GPT-3 zero-shot | GPT-3 few-shot |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in results["clusters"]:
        p = c.get("paper") or {}
        lines.append(
            f"| {c['cluster']} | {c['status']} | {len(c['datasets'])} | {_fmt(c['mean'])} | {_fmt(c['best'])} "
            f"| {_fmt(p.get('flan_137b'))} | {_fmt(p.get('gpt3_175b_zero_shot'))} "
            f"| {_fmt(p.get('gpt3_175b_few_shot'))} |"
        )
    return lines


def _dataset_table(results: Mapping[str, Any]) -> list[str]:
    lines = [
        "| dataset | cluster | status | kind | metric | chance | template mean | best template (idx) "
        "| template range | paper |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for d in results["datasets"]:
        best = f"{_fmt(d['best'])} (t{d['best_template']})" if d["best_template"] is not None else "-"
        spread = f"{_fmt(d['min_template'])}-{_fmt(d['max_template'])}"
        lines.append(
            f"| {d['dataset']} | {d['cluster']} | {d['status']} | {d['kind']} | {d['primary_metric']} "
            f"| {_fmt(d['chance'])} | {_fmt(d['mean'])} | {best} | {spread} | {_fmt(d['paper_score'])} |"
        )
    return lines


def _template_table(results: Mapping[str, Any]) -> list[str]:
    lines = ["| dataset | template | kind | validation | reported |", "|---|---|---|---|---|"]
    for t in results["templates"]:
        lines.append(
            f"| {t['dataset']} | {t['template_index']} | {t.get('kind', '-')} "
            f"| {_fmt(t['validation'])} | {_fmt(t['reported'])} |"
        )
    return lines


def render_markdown(results: Mapping[str, Any]) -> str:
    """A human-readable summary: run info, clusters, datasets, then every template."""
    run = results.get("run", {})
    title = f"# FLAN evaluation: {run.get('suite', '?')} / {run.get('cluster', '?')}"
    notes = [
        "Scores are 0-100. *template mean*: reported split averaged over all scored templates; "
        "*best template*: reported score of the template with the highest validation score "
        "(ties -> lowest index). Chance = 100 / number of options (rank classification only).",
        f"Paper numbers: {paper_scores.SOURCE} (FLAN 137B zero-shot, cluster averages over the "
        "paper's subset of datasets; a small model is not expected to reach them).",
    ]
    parts = [title, "", *_run_lines(run), "", *notes, "", "## Clusters", "", *cluster_table(results)]
    parts += ["", "## Datasets", "", *_dataset_table(results), "", "## Templates", ""]
    parts += _template_table(results)
    return "\n".join(parts) + "\n"


def write_report(
    results: Mapping[str, Any], output_dir: str | pathlib.Path, plots: bool = True
) -> dict[str, pathlib.Path]:
    """Writes results.json, summary.md and (optionally) the PNG plots; returns their paths."""
    out = pathlib.Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": write_json(results, out / "results.json")}
    md = out / "summary.md"
    md.write_text(render_markdown(results))
    paths["markdown"] = md
    if plots:
        from evals import plots as plots_lib

        paths.update(plots_lib.write_plots(results, out))
    return paths
