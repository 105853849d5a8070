"""Checks that a dataset's templates are well-formed and fit its processor.

Static checks (cheap, run at registration): exactly 10 templates, no duplicates, turned-around
templates last and at most 3, every scored classification template shows the OPTIONS block.
The full check also runs the processor on a sample record and renders every template with it,
so a placeholder that names a field the processor does not produce is caught.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import tensorflow as tf

from flan_tasks.rendering import render_tf
from flan_tasks.spec import OPTIONS_FIELD, DatasetSpec

NUM_TEMPLATES = 10
MAX_TURNED_AROUND = 3


class TemplateError(ValueError):
    """A dataset's templates break one of the rules above."""


def _fail(spec: DatasetSpec, problem: str, fix: str) -> None:
    raise TemplateError(f"dataset {spec.name!r}: {problem}; {fix}")


def validate_static(spec: DatasetSpec) -> None:
    """Check the template rules that need no data."""
    templates = spec.templates
    if len(templates) != NUM_TEMPLATES:
        _fail(spec, f"has {len(templates)} templates", f"write exactly {NUM_TEMPLATES}")
    seen: dict[tuple[str, str], int] = {}
    for i, t in enumerate(templates):
        key = (t.inputs, t.targets)
        if key in seen:
            _fail(spec, f"templates {seen[key]} and {i} are identical", "make every template distinct")
        seen[key] = i
    flags = [t.turned_around for t in templates]
    n_turned = sum(flags)
    if n_turned > MAX_TURNED_AROUND:
        _fail(spec, f"has {n_turned} turned-around templates", f"keep at most {MAX_TURNED_AROUND}")
    if n_turned and not all(flags[-n_turned:]):
        _fail(spec, "turned-around templates are not all at the end", "move them after the regular ones")
    if not spec.is_classification:
        return
    for i in spec.scored_template_indices():
        if "{" + OPTIONS_FIELD + "}" not in templates[i].inputs:
            _fail(spec, f"classification template {i} has no {{{OPTIONS_FIELD}}} in its inputs", "add the OPTIONS block")


def _as_tensors(record: Mapping) -> dict[str, tf.Tensor]:
    return {k: tf.convert_to_tensor(v) for k, v in record.items()}


def _check_processed(spec: DatasetSpec, out: Mapping[str, tf.Tensor]) -> None:
    if "answer" not in out:
        _fail(spec, "the processor produced no 'answer' field", "return the gold target as 'answer'")
    if not spec.is_classification:
        return
    if "options" not in out or tf.convert_to_tensor(out["options"]).shape.rank != 1:
        _fail(spec, "the processor produced no 1-D 'options' field", "return the option strings as 'options'")
    options = [o.decode() for o in tf.convert_to_tensor(out["options"]).numpy()]
    answer = tf.convert_to_tensor(out["answer"]).numpy().decode()
    if answer not in options:
        _fail(spec, f"answer {answer!r} is not one of the options {options}", "make the answer an option string")
    if spec.options and tuple(options) != tuple(spec.options):
        _fail(spec, f"processor options {options} differ from spec.options {list(spec.options)}", "keep one order")
    if "label" in out and options[int(out["label"])] != answer:
        _fail(spec, f"options[label] != answer ({answer!r})", "keep label and answer consistent")


def sample_record(spec: DatasetSpec, seed: int = 0) -> dict:
    """A source record to check the processor on (generated datasets only)."""
    if spec.generator is None:
        raise ValueError(f"dataset {spec.name!r} is not generated; pass a sample record to validate_spec")
    records = spec.generator(spec.splits.validation, seed)
    if not records:
        _fail(spec, "the generator returned no validation records", "generate at least one")
    return records[0]


def validate_spec(spec: DatasetSpec, sample: Mapping | None = None) -> None:
    """Full check: static rules, then processor output and rendering of every template on a sample."""
    validate_static(spec)
    record = _as_tensors(sample if sample is not None else sample_record(spec))
    out = dict(spec.processor(record))
    _check_processed(spec, out)
    for i, t in enumerate(spec.templates):
        missing = sorted(p for p in t.placeholders() if p != OPTIONS_FIELD and p not in out)
        if missing:
            _fail(spec, f"template {i} names fields {missing} the processor does not produce", f"use {sorted(out)}")
        for text in (t.inputs, t.targets):
            render_tf(text, out)


def validate_specs(specs: Sequence[DatasetSpec]) -> None:
    """validate_spec for every generated spec and validate_static for the rest."""
    for spec in specs:
        if spec.generator is not None:
            validate_spec(spec)
        else:
            validate_static(spec)
