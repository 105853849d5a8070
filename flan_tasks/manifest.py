"""Mixture manifests: per task, its examples, cap, mixing rate, share of the mix and templates."""

from __future__ import annotations

import dataclasses
import json

import seqio

from flan_tasks import registry


@dataclasses.dataclass(frozen=True)
class ManifestRow:
    """One task of a mixture as the manifest reports it."""

    task: str
    dataset: str
    cluster: str
    num_examples: int | None  # source examples after the per-dataset cap, where known
    example_cap: int | None
    rate: float | None
    share: float | None  # rate / sum of the mixture's rates
    templates: int


def _safe(fn):
    try:
        return fn()
    except Exception:  # noqa: BLE001 - unknown counts (e.g. TFDS not prepared) are reported as None
        return None


def _num_examples(task: seqio.Task, info: registry.TaskInfo, cap: int | None) -> int | None:
    n = _safe(lambda: task.num_input_examples("train" if info.kind == "train" else "test"))
    if n is None and info.kind == "train" and info.spec.num_train_examples is not None:
        n = info.spec.num_train_examples  # TFDS data not prepared here: use the catalog's count
    if n is not None and cap is not None:
        n = min(n, cap)
    return n


def mixture_manifest(mixture_name: str) -> list[ManifestRow]:
    """Manifest rows for every task of a registered flan_tasks mixture, in mixture order."""
    mixture = seqio.get_mixture_or_task(mixture_name)
    if not isinstance(mixture, seqio.Mixture):
        raise ValueError(f"{mixture_name!r} is a task, not a mixture; pass a mixture name")
    rows = []
    rates = {t.name: _safe(lambda t=t: float(mixture.get_rate(t))) for t in mixture.tasks}
    total = sum(r for r in rates.values() if r is not None)
    for task in mixture.tasks:
        info = registry.task_info(task.name)
        opts = registry.registered_options(info.suite)
        rate = rates[task.name]
        cap = opts.example_cap if info.kind == "train" else None
        rows.append(
            ManifestRow(
                task=task.name,
                dataset=info.dataset,
                cluster=info.cluster,
                num_examples=_num_examples(task, info, cap),
                example_cap=cap,
                rate=rate,
                share=(rate / total) if rate is not None and total else None,
                templates=len(info.spec.templates) if info.kind == "train" else 1,
            )
        )
    return rows


def manifest_json(mixture_name: str) -> str:
    """The manifest as a JSON document (mixture name, total rate, rows)."""
    rows = mixture_manifest(mixture_name)
    total = sum(r.rate for r in rows if r.rate is not None)
    return json.dumps(
        {"mixture": mixture_name, "total_rate": total, "tasks": [dataclasses.asdict(r) for r in rows]}, indent=2
    )


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if value < 1 else f"{value:g}"
    return str(value)


def manifest_table(mixture_name: str) -> str:
    """The manifest as an aligned plain-text table with a total line."""
    rows = mixture_manifest(mixture_name)
    header = ("task", "cluster", "examples", "cap", "rate", "share", "templates")
    body = [
        (r.task, r.cluster, _fmt(r.num_examples), _fmt(r.example_cap), _fmt(r.rate), _fmt(r.share), str(r.templates))
        for r in rows
    ]
    total = sum(r.rate for r in rows if r.rate is not None)
    body.append(("TOTAL", "", "", "", _fmt(float(total)), "1.0000" if rows else "-", ""))
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in [header, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
