"""tf.data preprocessors that turn a DatasetSpec's source records into prompt/target rows.

Each factory returns a function `ds -> ds` (a seqio preprocessor). Training rows are one rendered
template per example; evaluation rows are either rank-classification rows, one per
(example, option) as seqio/T5 rank classification lays them out, or generation rows that keep
every reference answer.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence

import seqio
import tensorflow as tf

from flan_tasks.rendering import render_choice_tf, render_tf, template_index_tf, wrap_flan
from flan_tasks.spec import DatasetSpec, Template

Preprocessor = Callable[[tf.data.Dataset], tf.data.Dataset]


def cap_examples(cap: int | None) -> Preprocessor:
    """Keep only the first `cap` source records (the FLAN per-dataset cap); None keeps all."""

    def fn(ds: tf.data.Dataset) -> tf.data.Dataset:
        return ds if cap is None else ds.take(cap)

    return fn


def process_records(spec: DatasetSpec, parallel: bool = False) -> Preprocessor:
    """Drop records `spec.keep_fn` rejects, then map `spec.processor` over the rest."""

    def fn(ds: tf.data.Dataset) -> tf.data.Dataset:
        if spec.keep_fn is not None:
            ds = ds.filter(lambda ex: tf.cast(spec.keep_fn(ex), tf.bool))
        # A plain (sequential) map: seqio ends every task's pipeline with a prefetch, so each task
        # already runs in its own thread and a mixture's tasks run in parallel; a parallel map per
        # example only adds a thread hand-off per example (measured: ~20% of the per-example cost
        # of the on-the-fly pipeline on one core, benchmarks/bench_flan_pipeline.py).
        return ds.map(lambda ex: dict(spec.processor(ex)), num_parallel_calls=tf.data.AUTOTUNE if parallel else None)

    return fn


def _finish_inputs(inputs: tf.Tensor, flan_wrapper: bool) -> tf.Tensor:
    return wrap_flan(inputs) if flan_wrapper else inputs


def render_train(
    templates: Sequence[Template], seed: int, include_options: bool = True, flan_wrapper: bool = False
) -> Preprocessor:
    """One template per example, drawn by a keyed hash of (seed, example content)."""
    templates = tuple(templates)

    def fn(ds: tf.data.Dataset) -> tf.data.Dataset:
        def render(ex):
            index = template_index_tf(ex, len(templates), seed)
            inputs, targets = render_choice_tf(templates, ex, index, include_options)
            return {"inputs": _finish_inputs(inputs, flan_wrapper), "targets": targets}

        return ds.map(render, num_parallel_calls=tf.data.AUTOTUNE)

    return fn


def append_eos_after_trim(
    ds: tf.data.Dataset, output_features: Mapping[str, seqio.Feature], sequence_length: Mapping[str, int] | None = None
) -> tf.data.Dataset:
    """seqio.preprocessors.append_eos_after_trim (its own per-example function) in a plain map,
    for the reason given in process_records."""
    return ds.map(functools.partial(
        seqio.preprocessors.append_eos_after_trim_impl, output_features=output_features, sequence_length=sequence_length))


def _answers(ex) -> tf.Tensor:
    if "answers" in ex:
        return tf.reshape(tf.convert_to_tensor(ex["answers"], tf.string), [-1])
    return tf.reshape(tf.convert_to_tensor(ex["answer"], tf.string), [1])


def render_generation(
    template: Template, include_options: bool = True, flan_wrapper: bool = False
) -> Preprocessor:
    """One row per example rendered with `template`; `answers` keeps all references."""

    def fn(ds: tf.data.Dataset) -> tf.data.Dataset:
        def render(ex):
            inputs = render_tf(template.inputs, ex, include_options)
            return {
                "inputs": _finish_inputs(inputs, flan_wrapper),
                "targets": render_tf(template.targets, ex, include_options),
                "answers": _answers(ex),
            }

        return ds.map(render, num_parallel_calls=tf.data.AUTOTUNE)

    return fn


def _gold_mask(ex, num_options: tf.Tensor) -> tf.Tensor:
    if "label" in ex:
        return tf.equal(tf.range(num_options), tf.cast(ex["label"], tf.int32))
    return tf.equal(ex["options"], ex["answer"])


def render_rank(template: Template, include_options: bool = True, flan_wrapper: bool = False) -> Preprocessor:
    """Rank-classification rows: one per (example, option), in the dataset's option order.

    Row features: inputs (the prompt, same for all options), targets (the option), idx int32
    [example_index, option_index], is_correct bool, num_options int32.
    """

    def fn(ds: tf.data.Dataset) -> tf.data.Dataset:
        def rows(index, ex):
            options = tf.reshape(tf.convert_to_tensor(ex["options"], tf.string), [-1])
            n = tf.size(options, out_type=tf.int32)
            inputs = _finish_inputs(render_tf(template.inputs, ex, include_options), flan_wrapper)
            example_index = tf.fill([n], tf.cast(index, tf.int32))
            return tf.data.Dataset.from_tensor_slices(
                {
                    "inputs": tf.fill([n], inputs),
                    "targets": options,
                    "idx": tf.stack([example_index, tf.range(n)], axis=1),
                    "is_correct": _gold_mask(ex, n),
                    "num_options": tf.fill([n], n),
                }
            )

        return ds.enumerate().flat_map(rows)

    return fn
