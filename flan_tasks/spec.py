"""The data types every dataset definition is written in: templates, splits and dataset specs.

A dataset is described once, as data, and everything else (seqio tasks, mixtures, manifests,
evaluation plans, docs, tests) is derived from that description.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping

# Placeholder that a template uses for the OPTIONS block ("OPTIONS:\n- a\n- b").
OPTIONS_FIELD = "options_"
_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


@dataclasses.dataclass(frozen=True)
class Template:
    """One natural-language instruction pattern.

    `inputs` and `targets` contain `{field}` placeholders naming fields that the dataset's
    processor produces; `{options_}` stands for the rendered OPTIONS block. A turned-around
    template inverts the task (e.g. write a review given its sentiment); it is used in training
    only and never rank-scored.
    """

    inputs: str
    targets: str
    turned_around: bool = False

    def placeholders(self) -> set[str]:
        """All field names referenced by this template (inputs and targets)."""
        return set(_PLACEHOLDER.findall(self.inputs)) | set(_PLACEHOLDER.findall(self.targets))


@dataclasses.dataclass(frozen=True)
class Splits:
    """Split slices, in TFDS slicing syntax for TFDS datasets or plain names for generated ones.

    `validation` is the small slice used only to pick the best template; `reported` is the split
    the scores are reported on.
    """

    train: str
    validation: str
    reported: str


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """Everything the project knows about one dataset.

    processor: maps one source record (a dict of tf tensors) to a dict of tf tensors that holds
      every field the templates name, plus `answer` (scalar string: the gold target) and, for
      classification datasets, `options` (1-D string tensor, the dataset's fixed option order)
      and `label` (int32 index of the gold option). Processors are written with tf ops so they
      run inside tf.data. A record the processor cannot use is dropped by `keep_fn` if given.
    tfds_name: "name/config:version" for catalog datasets; None for generated datasets, whose
      records come from `generator(split, seed) -> list[dict]` instead.
    metrics: names understood by evals.metrics (e.g. "accuracy", "f1_macro", "squad", "bleu").
    paper_score: FLAN 137B zero-shot score from the paper, where published.
    options: the fixed option strings, in order, for classification datasets whose options are
      the same for every example (e.g. ("yes", "no")); () when they vary per example.
    """

    name: str
    cluster: str
    templates: tuple[Template, ...]
    processor: Callable[[Mapping], dict]
    splits: Splits
    metrics: tuple[str, ...]
    is_classification: bool
    tfds_name: str | None = None
    generator: Callable[[str, int], list[dict]] | None = None
    keep_fn: Callable[[Mapping], object] | None = None
    num_train_examples: int | None = None
    paper_score: float | None = None
    description: str = ""
    options: tuple[str, ...] = ()

    def scored_template_indices(self) -> tuple[int, ...]:
        """Indices of the templates that evaluation scores (all but the turned-around ones)."""
        return tuple(i for i, t in enumerate(self.templates) if not t.turned_around)
