"""The FLAN 2021 collection over TFDS: 62 datasets in 12 clusters, as DatasetSpecs.

Public API::

    flan_specs() -> tuple[DatasetSpec, ...]      # every dataset configuration (see catalog.py)
    FLAN_CLUSTERS                                # the 12 cluster names, canonical order
    FLAN_OVERLAP_PAIRS                           # symmetric cluster overlaps of the held-out rule
    flan_cluster_rules() -> ClusterRules
    paper_dataset_groups() -> dict[str, tuple[str, ...]]   # paper dataset -> our spec names
    register_flan_collection(vocabulary=None, options=None) -> list[str]

How the 62 paper datasets map to specs: a paper dataset can have several configurations (ANLI
r1/r2/r3, MNLI matched/mismatched, ARC easy/challenge, each translation pair in both directions,
SQuAD v1.1/v2.0, WSC for training and WSC273 for evaluation); `paper_dataset_groups()` lists them, and its
length is 62.

Importing this package is cheap: the catalog (and TensorFlow) load on first use.
"""

from __future__ import annotations

from typing import Any

from flan_tasks.clustering import FLAN_CLUSTERS, OVERLAP_PAIRS

# One source of truth for the paper's clusters and overlap rules: flan_tasks.clustering (which
# needs no TensorFlow, so the held-out rules work without the catalog loaded).
FLAN_OVERLAP_PAIRS: tuple[tuple[str, str], ...] = OVERLAP_PAIRS

# Paper dataset -> spec names (the paper counts each group once).
_GROUPS: dict[str, tuple[str, ...]] = {
    "anli": ("anli_r1", "anli_r2", "anli_r3"),
    "mnli": ("mnli_matched", "mnli_mismatched"),
    "squad": ("squad_v1", "squad_v2"),
    "arc": ("arc_easy", "arc_challenge"),
    "wsc": ("wsc", "wsc273"),
    "para_crawl_en_es": ("para_crawl_en_es", "para_crawl_es_en"),
    "wmt14_en_fr": ("wmt14_en_fr", "wmt14_fr_en"),
    **{f"wmt16_en_{x}": (f"wmt16_en_{x}", f"wmt16_{x}_en") for x in ("de", "tr", "cs", "fi", "ro", "ru")},
}


def flan_specs() -> tuple[DatasetSpec, ...]:  # noqa: F821 (imported lazily)
    """All dataset specs of the collection, grouped by cluster in FLAN_CLUSTERS order."""
    from flan_tasks.flan.catalog import catalog

    return catalog()


def paper_dataset_groups() -> dict[str, tuple[str, ...]]:
    """The paper's datasets (62), each with the spec names that implement it."""
    grouped = {name for names in _GROUPS.values() for name in names}
    out = dict(_GROUPS)
    for spec in flan_specs():
        if spec.name not in grouped:
            out[spec.name] = (spec.name,)
    return out


def flan_cluster_rules():
    """ClusterRules of the flan suite, built from FLAN_CLUSTERS and FLAN_OVERLAP_PAIRS."""
    from flan_tasks.clustering import ClusterRules

    return ClusterRules.from_pairs(FLAN_CLUSTERS, FLAN_OVERLAP_PAIRS)


def default_vocabulary():
    """The T5 SentencePiece vocabulary named by flan_tasks.DEFAULT_SPM_PATH, with T5's 100 extra ids.

    Flan-T5's 32128-entry embedding is these 32100 ids padded to a multiple of 128.
    """
    import seqio

    import flan_tasks

    return seqio.SentencePieceVocabulary(flan_tasks.DEFAULT_SPM_PATH, extra_ids=100)


def is_eval_only(spec) -> bool:
    """Datasets with no training slice (WSC273): evaluated, never trained on."""
    return not spec.splits.train


def register_flan_collection(vocabulary: Any = None, options: Any = None) -> list[str]:
    """Register every flan task and mixture (idempotent); returns the registered names.

    Eval-only specs (WSC273, `splits.train == ""`) get evaluation tasks only and never enter a
    training mixture.
    """
    from flan_tasks.registry import register_suite

    return register_suite(
        "flan",
        flan_specs(),
        vocabulary=vocabulary if vocabulary is not None else default_vocabulary(),
        cluster_rules=flan_cluster_rules(),
        options=options,
    )
