"""Shared helpers of the embedded suite: split sizes, seeded generators, processors, spec builders."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import tensorflow as tf

from flan_tasks.spec import DatasetSpec, Splits, Template

SPLITS = Splits(train="train", validation="validation", reported="test")
EVAL_SIZES = {"validation": 100, "test": 200}
_MAX_REDRAWS = 20

ExampleFn = Callable[[random.Random], dict]


def T(inputs: str, targets: str) -> Template:
    """A regular template."""
    return Template(inputs, targets)


def TA(inputs: str, targets: str) -> Template:
    """A turned-around template (training only)."""
    return Template(inputs, targets, turned_around=True)


def _key(record: dict) -> tuple:
    return tuple(sorted((k, str(v)) for k, v in record.items()))


def make_generator(name: str, train_size: int, example_fn: ExampleFn, dedupe: bool = True):
    """A `generator(split, seed) -> list[dict]` that is a pure function of (name, split, seed).

    With dedupe, validation/test records avoid the training records where the example space
    allows it (a bounded number of redraws keeps small spaces from looping).
    """
    # The training records' keys, per seed: validation and test both dedupe against them, and
    # drawing the training split again for each was most of registering the suite.
    train_keys: dict[int, frozenset] = {}

    def generate(split: str, seed: int) -> list[dict]:
        if split == "train":
            size = train_size
        elif split in EVAL_SIZES:
            size = EVAL_SIZES[split]
        else:
            raise ValueError(f"embedded dataset {name!r} has splits train/validation/test, not {split!r}")
        rng = random.Random(f"{name}/{split}/{seed}")
        if split == "train" or not dedupe:
            return [example_fn(rng) for _ in range(size)]
        if seed not in train_keys:
            train_keys[seed] = frozenset(_key(r) for r in generate("train", seed))
        seen = set(train_keys[seed])
        out = []
        for _ in range(size):
            record = example_fn(rng)
            for _ in range(_MAX_REDRAWS):
                if _key(record) not in seen:
                    break
                record = example_fn(rng)
            seen.add(_key(record))
            out.append(record)
        return out

    return generate


def classification_processor(options: Sequence[str] | None):
    """Adds `options` (fixed ones, or the record's own), int32 `label` and `answer`."""
    fixed = tuple(options) if options else None

    def process(ex):
        out = dict(ex)
        opts = tf.constant(fixed) if fixed else tf.convert_to_tensor(ex["options"])
        label = tf.cast(ex["label"], tf.int32)
        out.update(options=opts, label=label, answer=tf.gather(opts, label))
        return out

    return process


def generation_processor(ex):
    """Keeps the record and adds `answers` (all references) from `answer`."""
    out = dict(ex)
    out["answers"] = tf.reshape(tf.convert_to_tensor(ex["answer"]), [1])
    return out


def classification(
    name: str,
    cluster: str,
    templates: Sequence[Template],
    example_fn: ExampleFn,
    train_size: int,
    options: Sequence[str] = (),
    description: str = "",
    dedupe: bool = True,
) -> DatasetSpec:
    """A classification spec; `options` empty means each record carries its own options."""
    return DatasetSpec(
        name=name,
        cluster=cluster,
        templates=tuple(templates),
        processor=classification_processor(options),
        splits=SPLITS,
        metrics=("accuracy",),
        is_classification=True,
        generator=make_generator(name, train_size, example_fn, dedupe),
        num_train_examples=train_size,
        description=description,
        options=tuple(options),
    )


def generation(
    name: str,
    cluster: str,
    templates: Sequence[Template],
    example_fn: ExampleFn,
    train_size: int,
    metrics: Sequence[str],
    description: str = "",
    dedupe: bool = True,
) -> DatasetSpec:
    """A generation spec; records carry `answer`."""
    return DatasetSpec(
        name=name,
        cluster=cluster,
        templates=tuple(templates),
        processor=generation_processor,
        splits=SPLITS,
        metrics=tuple(metrics),
        is_classification=False,
        generator=make_generator(name, train_size, example_fn, dedupe),
        num_train_examples=train_size,
        description=description,
    )
