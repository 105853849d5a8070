"""Rendering templates against processed records with tf ops, and the seeded template draw.

A template is split once, in python, into literal text and `{field}` references; rendering is
then a single `tf.strings.join`, so it runs inside tf.data graphs. The OPTIONS placeholder
(`{options_}`) is rendered from the record's `options` tensor.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import tensorflow as tf

from flan_tasks.options import options_block_tf
from flan_tasks.spec import OPTIONS_FIELD, Template

_PLACEHOLDER_SPLIT = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
# Field separators for the content key of the template draw; control characters do not occur
# in natural text, so distinct records cannot collide by concatenation.
_FIELD_SEP = "\x1f"
_ITEM_SEP = "\x1e"
FLAN_WRAPPER = ("0 ", " X 1 FLAN")


def split_template(text: str) -> list[tuple[str, bool]]:
    """Split template text into (piece, is_field) parts, in order."""
    parts = _PLACEHOLDER_SPLIT.split(text)
    # re.split with one group alternates literal, field, literal, ...
    return [(p, i % 2 == 1) for i, p in enumerate(parts) if p or i % 2 == 1]


def _as_scalar_string(name: str, value: tf.Tensor) -> tf.Tensor:
    value = tf.convert_to_tensor(value)
    if value.shape.rank not in (0, None):
        raise ValueError(
            f"template field {name!r} has shape {value.shape}; templates can only reference "
            "scalar fields (join list-valued fields into one string in the processor)"
        )
    if value.dtype == tf.string:
        return value
    if value.dtype.is_bool:
        return tf.where(value, "true", "false")
    return tf.strings.as_string(value)


def template_pieces(
    text: str,
    record: Mapping[str, Any],
    include_options: bool,
    options_block: Callable[[Any], tf.Tensor],
    as_string: Callable[[str, Any], tf.Tensor],
) -> list[tf.Tensor | str]:
    """The literal strings and rendered fields of a template, in order, for ``tf.strings.join``.

    ``options_block`` and ``as_string`` render the OPTIONS block and a field; they are the only
    difference between rendering one record and a batch of them (flan_tasks/batched.py).
    """
    pieces: list[tf.Tensor | str] = []
    for piece, is_field in split_template(text):
        if not is_field:
            pieces.append(piece)
        elif piece == OPTIONS_FIELD:
            if "options" not in record:
                raise KeyError(
                    "template uses {options_} but the processor produced no 'options' field; "
                    "classification processors must return options (1-D string tensor)"
                )
            if include_options:
                pieces.append(options_block(record["options"]))
        elif piece not in record:
            raise KeyError(
                f"template placeholder {{{piece}}} names no field of the processed record; "
                f"available fields: {sorted(record)}"
            )
        else:
            pieces.append(as_string(piece, record[piece]))
    return pieces


def render_tf(text: str, record: Mapping[str, tf.Tensor], include_options: bool = True) -> tf.Tensor:
    """Render template text against a processed record; returns a scalar string tensor.

    include_options=False is the no-OPTIONS ablation: the block is dropped and trailing
    whitespace left behind by it is stripped.
    """
    pieces = template_pieces(text, record, include_options, options_block_tf, _as_scalar_string)
    if not pieces:
        return tf.constant("")
    out = tf.strings.join(pieces)
    if not include_options and "{" + OPTIONS_FIELD + "}" in text:
        out = tf.strings.regex_replace(out, r"\s+$", "")
    return out


def wrap_flan(inputs: tf.Tensor) -> tf.Tensor:
    """The 2021 code's `0 {inputs} X 1 FLAN` input wrapper (optional, off by default)."""
    return tf.strings.join([FLAN_WRAPPER[0], inputs, FLAN_WRAPPER[1]])


def content_key_tf(record: Mapping[str, tf.Tensor]) -> tf.Tensor:
    """A scalar string that depends only on the record's content (not on its position)."""
    parts: list[tf.Tensor | str] = []
    for name in sorted(record):
        value = tf.convert_to_tensor(record[name])
        if value.dtype != tf.string:
            value = tf.strings.as_string(value) if not value.dtype.is_bool else tf.where(value, "1", "0")
        if value.shape.rank != 0:
            value = tf.strings.reduce_join(tf.reshape(value, [-1]), separator=_ITEM_SEP)
        parts.extend([name, _FIELD_SEP, value, _FIELD_SEP])
    return tf.strings.join(parts)


def template_index_tf(record: Mapping[str, tf.Tensor], num_templates: int, seed: int) -> tf.Tensor:
    """THE template choice of a training example: a keyed hash of its content, in [0, num_templates).

    This is the one definition every path uses (on-the-fly rendering, the offline cache built by
    `python -m flan_tasks cache`, and any renderer that renders only the chosen template): a pure
    function of the processed record (the processor's output, before rendering) and
    `RegistrationOptions.template_seed`. It does not depend on the example's position in the
    stream, the host, the shard or the read order, so a resumed run, a cached run and an uncached
    run all give each example the same prompt. Returns an int64 scalar tensor.
    """
    return tf.strings.to_hash_bucket_strong(
        content_key_tf(record), num_buckets=num_templates, key=[int(seed), 0]
    )


def render_choice_tf(
    templates: Sequence[Template],
    record: Mapping[str, tf.Tensor],
    index: tf.Tensor,
    include_options: bool = True,
) -> tuple[tf.Tensor, tf.Tensor]:
    """(inputs, targets) of template `index`, rendering only that template.

    tf.switch_case runs one branch per call, where rendering every template and gathering one did
    ~10x the string work for the same result (whether that shows end to end, next to tokenisation
    and packing, is for benchmarks/bench_flan_pipeline.py to tell; its first run was inconclusive).
    """
    def branch(template: Template):
        return lambda: (render_tf(template.inputs, record, include_options),
                        render_tf(template.targets, record, include_options))

    if len(templates) == 1:
        return branch(templates[0])()
    inputs, targets = tf.switch_case(tf.cast(index, tf.int32), [branch(t) for t in templates])
    return inputs, targets
