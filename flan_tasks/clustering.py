"""Task clusters per suite, the held-out overlap rules, and the training-leak check.

To evaluate a held-out cluster C, training uses every cluster except C and the clusters that
overlap C (FLAN section 2.2): reading comprehension and commonsense each overlap "reading
comprehension with commonsense" (and it overlaps both); paraphrase and NLI overlap each other.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

FLAN_CLUSTERS: tuple[str, ...] = (
    "nli",
    "reading_comprehension",
    "closed_book_qa",
    "commonsense",
    "sentiment",
    "paraphrase",
    "coreference",
    "reading_comprehension_with_commonsense",
    "translation",
    "summarization",
    "struct_to_text",
    "misc",
)

EMBEDDED_CLUSTERS: tuple[str, ...] = (
    "nli",
    "sentiment",
    "paraphrase",
    "translation",
    "arithmetic",
    "reading_comprehension",
    "closed_book_qa",
    "coreference",
)

# Symmetric overlap pairs; a suite only keeps the pairs whose clusters it has.
OVERLAP_PAIRS: tuple[tuple[str, str], ...] = (
    ("reading_comprehension", "reading_comprehension_with_commonsense"),
    ("commonsense", "reading_comprehension_with_commonsense"),
    ("paraphrase", "nli"),
)


class UnknownClusterError(ValueError):
    """A cluster name that the suite does not have."""


class LeakError(RuntimeError):
    """A held-out training mixture contains data from the held-out (or an overlapping) cluster."""


@dataclasses.dataclass(frozen=True)
class ClusterRules:
    """A suite's cluster names and, per cluster, the other clusters it overlaps."""

    clusters: tuple[str, ...]
    overlaps: Mapping[str, tuple[str, ...]]

    @classmethod
    def from_pairs(cls, clusters: tuple[str, ...], pairs=OVERLAP_PAIRS) -> ClusterRules:
        """Build rules from symmetric overlap pairs, keeping pairs whose clusters both exist."""
        overlaps: dict[str, list[str]] = {c: [] for c in clusters}
        for a, b in pairs:
            if a in overlaps and b in overlaps:
                overlaps[a].append(b)
                overlaps[b].append(a)
        return cls(tuple(clusters), {c: tuple(v) for c, v in overlaps.items()})


_RULES: dict[str, ClusterRules] = {
    "flan": ClusterRules.from_pairs(FLAN_CLUSTERS),
    "embedded": ClusterRules.from_pairs(EMBEDDED_CLUSTERS),
}


def set_cluster_rules(suite: str, rules: ClusterRules) -> None:
    """Install (or replace) the cluster rules of a suite."""
    _RULES[suite] = rules


def cluster_rules(suite: str) -> ClusterRules:
    """The rules of `suite`; raises ValueError naming the known suites."""
    if suite not in _RULES:
        raise ValueError(f"unknown suite {suite!r}; known suites: {', '.join(sorted(_RULES))}")
    return _RULES[suite]


def clusters(suite: str) -> tuple[str, ...]:
    """All cluster names of a suite, in their canonical order."""
    return cluster_rules(suite).clusters


def check_cluster(suite: str, cluster: str) -> None:
    """Raise UnknownClusterError (listing the valid names) if `cluster` is not in the suite."""
    valid = clusters(suite)
    if cluster not in valid:
        raise UnknownClusterError(
            f"unknown cluster {cluster!r} for suite {suite!r}; valid clusters: {', '.join(valid)}"
        )


def excluded_clusters(suite: str, cluster: str) -> tuple[str, ...]:
    """The held-out cluster plus every cluster that overlaps it."""
    check_cluster(suite, cluster)
    return (cluster, *cluster_rules(suite).overlaps.get(cluster, ()))


def held_out_training_clusters(suite: str, cluster: str) -> tuple[str, ...]:
    """The clusters a model evaluated on held-out `cluster` may be trained on."""
    excluded = set(excluded_clusters(suite, cluster))
    return tuple(c for c in clusters(suite) if c not in excluded)


_HELD_OUT_NAME = re.compile(r"^(?P<suite>[a-z0-9]+)_held_out_(?P<cluster>[a-z0-9_]+?)_train$")


def check_no_leak(mixture_name: str, held_out_cluster: str | None = None) -> None:
    """Raise LeakError if a training mixture holds any task of the held-out or an overlapping cluster.

    The held-out cluster is read from a `{suite}_held_out_{cluster}_train` name unless given.
    Every task of the mixture must be one this package registered (its cluster is known).
    """
    import seqio  # local: keeps `import flan_tasks.clusters` free of seqio

    from flan_tasks.registry import task_info

    match = _HELD_OUT_NAME.match(mixture_name)
    if held_out_cluster is None:
        if match is None:
            raise ValueError(
                f"cannot tell the held-out cluster from {mixture_name!r}; name it "
                "'{suite}_held_out_{cluster}_train' or pass held_out_cluster="
            )
        held_out_cluster = match.group("cluster")
    provider = seqio.get_mixture_or_task(mixture_name)
    tasks = provider.tasks if isinstance(provider, seqio.Mixture) else [provider]
    leaks = []
    for task in tasks:
        info = task_info(task.name)
        if info.cluster in excluded_clusters(info.suite, held_out_cluster):
            leaks.append(f"{task.name} (cluster {info.cluster})")
    if leaks:
        raise LeakError(
            f"mixture {mixture_name!r} leaks held-out cluster {held_out_cluster!r} into training: "
            + ", ".join(leaks)
            + "; remove these tasks or use flan_tasks.held_out_training_clusters() to build it"
        )
