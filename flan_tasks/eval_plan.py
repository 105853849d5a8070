"""The evaluation plan of a held-out cluster: which task to score for each (dataset, template).

Each entry pairs the validation-slice task (used to pick the best template) with the reported
split's task. Turned-around templates are never part of the plan. `few_shot=n` gives the same
plan over the n-shot variants (flan_tasks.few_shot).
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


def eval_plan(suite: str, cluster: str, few_shot: int | None = None) -> list[EvalEntry]:
    """All eval entries of `cluster` in a registered suite, in dataset then template order.

    few_shot=n names the n-shot variants instead (flan_tasks.register_few_shot(suite, num_shots=n)
    must have been called; ValueError otherwise); datasets without a training split are left out.
    """
    clusters_lib.check_cluster(suite, cluster)
    options = registry.registered_options(suite)
    names = registry.eval_task_name
    if few_shot is not None:
        from flan_tasks import few_shot as few_shot_lib

        few_shot_lib.check_registered(suite, few_shot)

        def names(suite, dataset, k, split, kind):
            return few_shot_lib.few_shot_task_name(suite, dataset, k, split, kind, few_shot)

    entries = []
    for spec in registry.registered_specs(suite):
        if spec.cluster != cluster or (few_shot is not None and not spec.splits.train):
            continue
        for k in spec.scored_template_indices():
            for kind in registry.eval_kinds(spec, options):
                entries.append(
                    EvalEntry(
                        dataset=spec.name,
                        cluster=cluster,
                        template_index=k,
                        kind=kind,
                        validation_task=names(suite, spec.name, k, "val", kind),
                        reported_task=names(suite, spec.name, k, "test", kind),
                        metrics=tuple(spec.metrics),
                        options=tuple(spec.options) if spec.is_classification else (),
                        paper_score=spec.paper_score,
                    )
                )
    return entries
