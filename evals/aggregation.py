"""From per-template scores to per-dataset and per-cluster numbers, the way the FLAN paper reports.

Per dataset, two numbers:
- `mean`: the reported-split score averaged over all scored templates (the expected performance of
  a typical instruction). Turned-around templates never count.
- `best`: the reported-split score of the template whose *validation* score is highest. Choosing
  on validation keeps the reported split untouched by the choice. Ties go to the lowest template
  index so the choice is deterministic.
Per cluster: the plain average over its datasets of each of the two.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class TemplateScore:
    """The primary score of one (dataset, template) on the validation and reported splits.

    Either split may be None when it was not evaluated. `scores_*` hold every metric value.
    """

    dataset: str
    cluster: str
    template_index: int
    validation: float | None
    reported: float | None
    turned_around: bool = False
    scores_validation: dict[str, float] | None = None
    scores_reported: dict[str, float] | None = None


@dataclasses.dataclass(frozen=True)
class DatasetScore:
    dataset: str
    cluster: str
    num_templates: int
    mean: float | None  # reported split, mean over templates
    validation_mean: float | None
    best_template: int | None  # chosen on validation
    best: float | None  # reported score of best_template
    best_validation: float | None
    min_template: float | None  # spread across templates on the reported split
    max_template: float | None


@dataclasses.dataclass(frozen=True)
class ClusterScore:
    cluster: str
    datasets: tuple[str, ...]
    mean: float | None  # average over datasets of DatasetScore.mean
    best: float | None  # average over datasets of DatasetScore.best


def _mean_or_none(values: Sequence[float | None]) -> float | None:
    if not values or any(v is None for v in values):
        return None
    return float(np.mean(values))


def choose_best_template(rows: Sequence[TemplateScore]) -> TemplateScore | None:
    """The row with the highest validation score; ties -> lowest template index. None if unknown."""
    if not rows or any(r.validation is None for r in rows):
        return None
    return min(rows, key=lambda r: (-r.validation, r.template_index))


def aggregate_dataset(rows: Sequence[TemplateScore]) -> DatasetScore:
    """Mean over scored templates and best-on-validation template for one dataset."""
    scored = sorted((r for r in rows if not r.turned_around), key=lambda r: r.template_index)
    if not scored:
        raise ValueError("no scored (non-turned-around) templates to aggregate")
    names = {(r.dataset, r.cluster) for r in scored}
    if len(names) != 1:
        raise ValueError(f"rows mix datasets/clusters: {sorted(names)}")
    indices = [r.template_index for r in scored]
    if len(set(indices)) != len(indices):
        raise ValueError(f"duplicate template indices for {scored[0].dataset}: {indices}")
    reported = [r.reported for r in scored]
    best = choose_best_template(scored)
    have_reported = all(v is not None for v in reported)
    return DatasetScore(
        dataset=scored[0].dataset,
        cluster=scored[0].cluster,
        num_templates=len(scored),
        mean=_mean_or_none(reported),
        validation_mean=_mean_or_none([r.validation for r in scored]),
        best_template=None if best is None else best.template_index,
        best=None if best is None else best.reported,
        best_validation=None if best is None else best.validation,
        min_template=float(min(reported)) if have_reported else None,
        max_template=float(max(reported)) if have_reported else None,
    )


def aggregate_datasets(rows: Iterable[TemplateScore]) -> list[DatasetScore]:
    """Groups rows by dataset (first-seen order) and aggregates each group."""
    groups: dict[str, list[TemplateScore]] = {}
    for row in rows:
        groups.setdefault(row.dataset, []).append(row)
    return [aggregate_dataset(group) for group in groups.values()]


def aggregate_clusters(datasets: Iterable[DatasetScore]) -> list[ClusterScore]:
    """Average over datasets of each cluster (first-seen order)."""
    groups: dict[str, list[DatasetScore]] = {}
    for d in datasets:
        groups.setdefault(d.cluster, []).append(d)
    return [
        ClusterScore(
            cluster=cluster,
            datasets=tuple(d.dataset for d in group),
            mean=_mean_or_none([d.mean for d in group]),
            best=_mean_or_none([d.best for d in group]),
        )
        for cluster, group in groups.items()
    ]
