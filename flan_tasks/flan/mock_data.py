"""Offline mock TFDS data for the flan catalog (tests and benchmarks; never used in training).

Records are generated from each builder's real feature spec (tfds.builder(name).info.features,
which needs no download), then adjusted so that they are usable: label ids in range, the
right number of choices, ReCoRD answers among the entities, Sentiment140 polarities 0/2/4, and
so on. `mock_flan_tfds()` patches TFDS so that seqio's TfdsDataSource reads these records for
any split slice of any catalog dataset.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from tensorflow_datasets.core import features as F

_WORDS = (
    "the river city council voted after a long storm while students read about ancient maps and "
    "engineers quietly repaired the old bridge before sunrise"
).split()
BASE_SPLITS = ("train", "validation", "test", "dev", "validation_matched", "validation_mismatched", "train_xl")
_SEQ_LEN = 4


def _text(rng: np.random.Generator, n_min: int = 4, n_max: int = 24) -> str:
    n = int(rng.integers(n_min, n_max))
    return " ".join(rng.choice(_WORDS, size=n)).capitalize() + "."


def _value(feature, rng: np.random.Generator):
    if isinstance(feature, F.FeaturesDict):
        return {k: _value(v, rng) for k, v in feature.items()}
    if isinstance(feature, F.Sequence):
        items = [_value(feature.feature, rng) for _ in range(_SEQ_LEN)]
        if isinstance(feature.feature, F.FeaturesDict):
            return {k: [it[k] for it in items] for k in items[0]}
        return items
    if isinstance(feature, F.ClassLabel):
        return int(rng.integers(feature.num_classes))
    dtype = tf.as_dtype(feature.dtype)
    if dtype == tf.string:
        return _text(rng)
    if dtype.is_bool:
        return bool(rng.integers(2))
    if dtype.is_floating:
        return float(rng.uniform(0, 5))
    return int(rng.integers(2))


def _fix(name: str, ex: dict, rng: np.random.Generator) -> dict:
    """Make a random record usable for the dataset `name` (the TFDS name without version)."""
    base = name.split("/")[0]
    if base == "ai2_arc":
        ex["answerKey"] = int(rng.integers(4))
    elif base in ("hellaswag",):
        ex["label"] = int(rng.integers(_SEQ_LEN))
    elif base == "story_cloze":
        ex["endings"] = ex["endings"][:2]
        ex["label"] = int(rng.integers(1, 3))
    elif base == "definite_pronoun_resolution":
        ex["candidates"] = ex["candidates"][:2]
    elif name == "super_glue/record":
        ex["answers"] = [ex["entities"][int(rng.integers(_SEQ_LEN))]]
    elif base == "sentiment140":
        ex["polarity"] = int(rng.choice([0, 2, 4]))
    elif base == "snli":
        ex["label"] = int(rng.integers(-1, 3))
    elif name == "super_glue/copa":
        ex["question"] = str(rng.choice(["cause", "effect"]))
    elif base == "winogrande":
        words = ex["sentence"].split()
        words[len(words) // 2] = "_"
        ex["sentence"] = " ".join(words)
    elif base == "wsc273":
        ex["pronoun_text"] = "they"
        ex["text"] = "The council refused the marchers a permit because they feared violence."
        ex["pronoun_start"] = ex["text"].index(" they ") + 1
        ex["pronoun_end"] = ex["pronoun_start"] + len("they")
        ex["label"] = int(rng.integers(2))
    elif base == "glue" and name.endswith("stsb"):
        ex["label"] = float(rng.uniform(0, 5))
    return ex


def mock_records(tfds_name: str, n: int, seed: int = 0) -> tuple[list[dict], dict]:
    """n usable records for `tfds_name` ("name/config:version"), and the builder's tensor spec."""
    builder = tfds.builder(tfds_name)
    features = builder.info.features
    name = tfds_name.split(":")[0]
    rng = np.random.default_rng(seed)
    records = [_fix(name, _value(features, rng), rng) for _ in range(n)]
    return records, features.get_tensor_spec()


def _as_dataset(records: list[dict], spec) -> tf.data.Dataset:
    return tf.data.Dataset.from_generator(lambda: iter(records), output_signature=spec)


@contextlib.contextmanager
def mock_flan_tfds(num_examples: int = 8, seed: int = 0) -> Iterator[None]:
    """Patch TFDS so every catalog dataset yields `num_examples` mock records for any split."""
    cache: dict[str, tuple[list[dict], dict]] = {}

    def as_dataset_fn(builder, *args, **kwargs):
        del args, kwargs
        key = f"{builder.info.full_name}"
        if key not in cache:
            name = builder.info.full_name.rsplit("/", 1)[0]
            cache[key] = mock_records(f"{name}:{builder.info.version}", num_examples, seed)
        return _as_dataset(*cache[key])

    def splits(self):
        return tfds.core.SplitDict(
            [
                tfds.core.SplitInfo(
                    name=s,
                    shard_lengths=[100_000],
                    num_bytes=0,
                    filename_template=tfds.core.ShardedFileTemplate(
                        data_dir="/nonexistent/mock_tfds", dataset_name="mock", split=s, filetype_suffix="tfrecord"
                    ),
                )
                for s in BASE_SPLITS
            ]
        )

    with (
        tfds.testing.mock_data(num_examples=num_examples, as_dataset_fn=as_dataset_fn),
        _patch_splits(splits),
    ):
        yield


@contextlib.contextmanager
def _patch_splits(splits_fn) -> Iterator[None]:
    original = tfds.core.DatasetInfo.splits
    tfds.core.DatasetInfo.splits = property(splits_fn)
    try:
        yield
    finally:
        tfds.core.DatasetInfo.splits = original
