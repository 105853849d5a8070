"""The embedded suite: procedurally generated instruction datasets in 8 clusters (no downloads).

Every dataset is a pure function of a seed, so the suite is reproducible and needs no files. It
mirrors FLAN's structure (10 templates per dataset, OPTIONS blocks, turned-around templates,
held-out clusters) at a scale a tiny model can learn on a CPU in minutes.
"""

from __future__ import annotations

from typing import Any

from flan_tasks.spec import DatasetSpec

SUITE = "embedded"


def embedded_specs() -> tuple[DatasetSpec, ...]:
    """All embedded dataset specs, grouped by cluster."""
    from flan_tasks.embedded import (
        arithmetic,
        closed_book,
        coreference,
        nli,
        paraphrase,
        reading,
        sentiment,
        translation,
    )

    modules = (nli, sentiment, paraphrase, translation, arithmetic, reading, closed_book, coreference)
    return tuple(spec for m in modules for spec in m.SPECS)


def register_embedded_suite(vocabulary: Any = None, seed: int = 0, options: Any = None) -> list[str]:
    """Register every embedded task and mixture (idempotent); returns the registered names.

    vocabulary: a seqio.Vocabulary (default seqio.ByteVocabulary()); seed: generator seed;
    options: flan_tasks.RegistrationOptions (default: the paper's settings).
    """
    from flan_tasks.registry import register_suite

    return register_suite(SUITE, embedded_specs(), vocabulary=vocabulary, options=options, seed=seed)
