"""Training rows rendered and tokenised a batch of examples at a time (the on-the-fly fast path).

Per example, the training pipeline is a few dozen tiny tf ops (a content hash, one template's
`tf.strings.join`, a SentencePiece call per feature) whose fixed per-op cost in a tf.data map
dwarfs the string work. Here `ds.ragged_batch(n).map(...).unbatch()` runs the same ops once per
`n` examples on 1-D tensors: every template is rendered for the whole batch and each example keeps
its own (elementwise `tf.strings.join`, then a gather), and one SentencePiece call tokenises the
batch. The elements, their order and their specs are exactly those of the per-example path
(`preprocessors.render_train` + `seqio.preprocessors.tokenize`), which tests/test_tasks_rendering.py
checks; no python runs in the pipeline, so tf.data can still checkpoint the iterator.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import seqio
import tensorflow as tf

from flan_tasks import preprocessors as prep
from flan_tasks.options import OPTIONS_HEADER, OPTIONS_SEPARATOR
from flan_tasks.rendering import _FIELD_SEP, _ITEM_SEP, FLAN_WRAPPER, template_pieces
from flan_tasks.spec import OPTIONS_FIELD, DatasetSpec, Template

BATCH_SIZE = 64  # examples per batched op call; measured: 32..128 are within noise of each other
Batch = Mapping[str, tf.Tensor | tf.RaggedTensor]


def _per_row(value: tf.Tensor | tf.RaggedTensor) -> tf.Tensor | tf.RaggedTensor:
    """[batch, ...] -> [batch, items]: each example's values flattened in row-major order."""
    if isinstance(value, tf.RaggedTensor):
        return value.merge_dims(1, -1) if value.shape.rank > 2 else value
    return tf.reshape(value, [tf.shape(value)[0], -1])


def _as_strings(name: str, value: tf.Tensor | tf.RaggedTensor) -> tf.Tensor:
    """A batch of scalar fields as a 1-D string tensor (rendering.render_tf's conversions)."""
    if isinstance(value, tf.RaggedTensor) or value.shape.rank not in (1, None):
        raise ValueError(
            f"template field {name!r} has shape {value.shape[1:]}; templates can only reference "
            "scalar fields (join list-valued fields into one string in the processor)"
        )
    if value.dtype == tf.string:
        return value
    if value.dtype.is_bool:
        return tf.where(value, "true", "false")
    return tf.strings.as_string(value)


def options_block_batch(options: tf.Tensor | tf.RaggedTensor) -> tf.Tensor:
    """options.options_block_tf of each example of a [batch, options] (dense or ragged) tensor."""
    if options.dtype != tf.string or options.shape.rank != 2:
        raise ValueError(f"options must be a 1-D string tensor per example, got {options.shape[1:]} {options.dtype}")
    return tf.strings.join([OPTIONS_HEADER, tf.strings.reduce_join(options, axis=1, separator=OPTIONS_SEPARATOR)])


def render_batch(text: str, record: Batch, include_options: bool = True) -> tf.Tensor:
    """rendering.render_tf over a batch of records; returns a 1-D string tensor."""
    pieces = template_pieces(text, record, include_options, options_block_batch, _as_strings)
    if not any(isinstance(p, tf.Tensor) for p in pieces):
        # Only literals (or nothing): the same string for every example of the batch.
        out = tf.fill([_batch_size(record)], "".join(pieces))
    else:
        out = tf.strings.join(pieces)
    if not include_options and "{" + OPTIONS_FIELD + "}" in text:
        out = tf.strings.regex_replace(out, r"\s+$", "")
    return out


def _batch_size(record: Batch) -> tf.Tensor:
    value = next(iter(record.values()))
    return value.nrows(out_type=tf.int32) if isinstance(value, tf.RaggedTensor) else tf.shape(value)[0]


def content_key_batch(record: Batch) -> tf.Tensor:
    """rendering.content_key_tf of each record of a batch."""
    parts: list[tf.Tensor | str] = []
    for name in sorted(record):
        value = record[name]
        if value.dtype != tf.string:
            value = tf.strings.as_string(value) if not value.dtype.is_bool else tf.where(value, "1", "0")
        if isinstance(value, tf.RaggedTensor) or value.shape.rank != 1:
            value = tf.strings.reduce_join(_per_row(value), axis=1, separator=_ITEM_SEP)
        parts.extend([name, _FIELD_SEP, value, _FIELD_SEP])
    return tf.strings.join(parts)


def template_index_batch(record: Batch, num_templates: int, seed: int) -> tf.Tensor:
    """rendering.template_index_tf of each record of a batch (int64 [batch])."""
    return tf.strings.to_hash_bucket_strong(content_key_batch(record), num_buckets=num_templates, key=[int(seed), 0])


def render_choice_batch(
    templates: Sequence[Template], record: Batch, index: tf.Tensor, include_options: bool = True
) -> tuple[tf.Tensor, tf.Tensor]:
    """(inputs, targets) of template index[i] for each example i: every template rendered, one kept.

    On a batch that is a handful of ops per template; the extra string copies cost far less than
    a per-example tf.switch_case (the string work is ~1 KB per example and template).
    """
    out = []
    for field in ("inputs", "targets"):
        rendered = [render_batch(getattr(t, field), record, include_options) for t in templates]
        if len(rendered) == 1:
            out.append(rendered[0])
        else:
            out.append(tf.gather(tf.stack(rendered, axis=1), index, batch_dims=1))
    return out[0], out[1]


def _batch_tokenizable(vocabulary: seqio.Vocabulary) -> bool:
    # SentencePieceVocabulary.encode_tf is tf_text's tokenizer, which maps a 1-D batch of strings
    # to the ragged batch of each string's ids; other vocabularies (e.g. ByteVocabulary's
    # decode_raw) only take one string at a time.
    return isinstance(vocabulary, seqio.SentencePieceVocabulary)


def _render_rows(templates, seed, include_options, flan_wrapper, features):
    def fn(record):
        index = template_index_batch(record, len(templates), seed)
        inputs, targets = render_choice_batch(templates, record, index, include_options)
        if flan_wrapper:
            inputs = tf.strings.join([FLAN_WRAPPER[0], inputs, FLAN_WRAPPER[1]])
        rows = {"inputs": inputs, "targets": targets}
        for name, feature in (features or {}).items():
            # seqio.preprocessors.tokenize's layout: the text under *_pretokenized, ids under name.
            rows[f"{name}_pretokenized"] = rows[name]
            rows[name] = feature.vocabulary.encode_tf(rows[name])
        return rows

    return fn


def _dense_rows(row):
    # unbatch() gives each example's ids as a ragged_rank-0 RaggedTensorSpec; seqio's tokenize
    # gives a plain [None] int32 tensor. Same values; this makes the element spec the same too.
    return {k: v.to_tensor() if isinstance(v, tf.RaggedTensor) else v for k, v in row.items()}


def render_tokenize_train(
    templates: Sequence[Template],
    seed: int,
    include_options: bool = True,
    flan_wrapper: bool = False,
    batch_size: int = BATCH_SIZE,
):
    """render_train followed by seqio.preprocessors.tokenize, in batches (same elements, same order).

    A seqio preprocessor (it takes `output_features`). Vocabularies that cannot tokenise a batch
    get the batched rendering and seqio's per-example tokenize.
    """
    templates = tuple(templates)

    def fn(ds: tf.data.Dataset, output_features: Mapping[str, seqio.Feature]) -> tf.data.Dataset:
        features = {k: output_features[k] for k in ("inputs", "targets") if k in output_features}
        batched = all(_batch_tokenizable(f.vocabulary) for f in features.values())
        render = _render_rows(templates, seed, include_options, flan_wrapper, features if batched else None)
        ds = ds.ragged_batch(batch_size).map(render, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
        if batched:
            return ds.map(_dense_rows)  # in the caller's thread: see preprocessors.process_records
        return seqio.preprocessors.tokenize(ds, output_features)

    return fn


def train_preprocessors(
    spec: DatasetSpec, example_cap: int | None, seed: int, include_options: bool = True, flan_wrapper: bool = False
) -> list:
    """A training task's seqio preprocessors: cap, process, render + tokenise in batches, cache
    placeholder, EOS/trim (every per-example map a plain one: see preprocessors.process_records)."""
    return [
        prep.cap_examples(example_cap),
        prep.process_records(spec),
        render_tokenize_train(spec.templates, seed, include_options, flan_wrapper),
        seqio.CacheDatasetPlaceholder(),
        prep.append_eos_after_trim,
    ]


def per_example_train_preprocessors(
    spec: DatasetSpec, example_cap: int | None, seed: int, include_options: bool = True, flan_wrapper: bool = False
) -> list:
    """The previous training preprocessors (one example per op call, parallel maps): the rows
    train_preprocessors must reproduce, and the baseline of benchmarks/bench_flan_pipeline.py."""

    def render_tokenize(ds: tf.data.Dataset, output_features) -> tf.data.Dataset:
        ds = prep.render_train(spec.templates, seed, include_options, flan_wrapper)(ds)
        return seqio.preprocessors.tokenize(ds, output_features)

    return [
        prep.cap_examples(example_cap),
        prep.process_records(spec, parallel=True),
        render_tokenize,
        seqio.CacheDatasetPlaceholder(),
        seqio.preprocessors.append_eos_after_trim,
    ]
