"""The evaluation plan of a held-out cluster: which task to score for each (dataset, template).

Each entry pairs the validation-slice task (used to pick the best template) with the reported
split's task. Turned-around templates are never part of the plan.
"""

from __future__ import annotations

import dataclasses

from flan_tasks import clustering as clusters_lib
from flan_tasks import registry


@dataclasses.dataclass(frozen=True)
class EvalEntry:
    """One (dataset, template, kind) to evaluate, with its two seqio task names."""

    dataset: str
    cluster: str
    template_index: int
    kind: str  # 'rank' | 'generation'
    validation_task: str
    reported_task: str
    metrics: tuple[str, ...]
    options: tuple[str, ...] = ()
    paper_score: float | None = None


def eval_plan(suite: str, cluster: str) -> list[EvalEntry]:
    """All eval entries of `cluster` in a registered suite, in dataset then template order."""
    clusters_lib.check_cluster(suite, cluster)
    options = registry.registered_options(suite)
    entries = []
    for spec in registry.registered_specs(suite):
        if spec.cluster != cluster:
            continue
        for k in spec.scored_template_indices():
            for kind in registry.eval_kinds(spec, options):
                entries.append(
                    EvalEntry(
                        dataset=spec.name,
                        cluster=cluster,
                        template_index=k,
                        kind=kind,
                        validation_task=registry.eval_task_name(suite, spec.name, k, "val", kind),
                        reported_task=registry.eval_task_name(suite, spec.name, k, "test", kind),
                        metrics=tuple(spec.metrics),
                        options=tuple(spec.options) if spec.is_classification else (),
                        paper_score=spec.paper_score,
                    )
                )
    return entries
