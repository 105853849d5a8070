"""The OPTIONS block that classification prompts end with, in python and as a tf op.

The block is the literal header `OPTIONS:` followed by one `- option` line per option, in the
dataset's fixed order (never shuffled), exactly `"OPTIONS:\\n- " + "\\n- ".join(options)`.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

OPTIONS_HEADER = "OPTIONS:\n- "
OPTIONS_SEPARATOR = "\n- "


def options_block(options: Sequence[str]) -> str:
    """Render the OPTIONS block for `options` (a non-empty sequence of strings)."""
    if isinstance(options, str) or not options:
        raise ValueError(
            f"options_block needs a non-empty sequence of option strings, got {options!r}; "
            "pass e.g. ['yes', 'no']"
        )
    return OPTIONS_HEADER + OPTIONS_SEPARATOR.join(options)


def options_block_tf(options: tf.Tensor) -> tf.Tensor:
    """The OPTIONS block of a 1-D string tensor, as a scalar string tensor (usable in tf.data)."""
    options = tf.convert_to_tensor(options, dtype=tf.string)
    tf.debugging.assert_rank(options, 1, message="options must be a 1-D string tensor")
    return tf.strings.join([OPTIONS_HEADER, tf.strings.reduce_join(options, separator=OPTIONS_SEPARATOR)])
