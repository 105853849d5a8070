"""The offline cache of training tasks: what it holds, how to build it, and how to check it.

The cache is seqio's own format (one folder per task under the cache dir, `{split}.tfrecord-
SSSSS-of-NNNNN` shards of tf.Examples, `info.{split}.json`, `stats.{split}.json`, `COMPLETED`), so
`seqio.add_global_cache_dirs([DIR])` plus `use_cached=True` (the trainer's
`--seqio_cache_dirs=DIR --gin.USE_CACHED_TASKS=True`) reads it with nothing else.

A training task's preprocessors up to `seqio.CacheDatasetPlaceholder()` (cap, processor, the
seeded template draw and rendering, tokenisation) are stored; the EOS/trim step, mixing and
packing run at read time. Two choices make a cached run identical to an uncached one with the
same seed: the template of an example is a hash of its content (rendering.template_index_tf),
and the builder (cache_beam.py) writes cache shard i from source shard i in source order, so
seqio reads the same rows in the same order and shuffles them with the same seed. (seqio's own
`cache_tasks_main` also works with these tasks, but it reshuffles rows across shards, so its
cache has the same rows in another order.)

COMPLETED holds a JSON fingerprint of what the rows depend on (suite, vocabulary, registration
options, generator seed); `check_fingerprint` compares it with the registered suite so that a
cache built with another vocabulary or template seed is refused instead of read.

This module does not import Apache Beam (it runs in the trainer's environment); the pipeline is
in flan_tasks.cache_beam, which needs the Beam extra (`bash scripts/setup_env.sh --beam`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Sequence
from typing import Any

import seqio
import tensorflow as tf

from flan_tasks import registry

FORMAT_VERSION = 1
SUITES = ("embedded", "flan")


@dataclasses.dataclass(frozen=True)
class SuiteConfig:
    """How to register the suite whose tasks are cached (picklable: Beam workers re-register).

    vocabulary: 'byte' or the path of a SentencePiece model (None: the suite's default, byte for
    'embedded' and flan_tasks.DEFAULT_SPM_PATH for 'flan'); extra_ids: SentencePiece extra ids.
    """

    suite: str
    vocabulary: str | None = None
    extra_ids: int = 100
    tfds_data_dir: str | None = None

    def build_vocabulary(self) -> seqio.Vocabulary | None:
        if self.vocabulary is None:
            return None
        if self.vocabulary == "byte":
            return seqio.ByteVocabulary()
        return seqio.SentencePieceVocabulary(self.vocabulary, extra_ids=self.extra_ids)

    def register(self) -> None:
        """Register the suite (idempotent) and point TFDS at tfds_data_dir."""
        import flan_tasks

        if self.tfds_data_dir:
            seqio.set_tfds_data_dir_override(self.tfds_data_dir)
        vocabulary = self.build_vocabulary()
        if self.suite == "embedded":
            flan_tasks.register_embedded_suite(vocabulary=vocabulary)
        elif self.suite == "flan":
            flan_tasks.register_flan_collection(vocabulary=vocabulary)
        else:
            raise ValueError(f"unknown suite {self.suite!r}; valid: {', '.join(SUITES)}")


def vocabulary_fingerprint(vocabulary: seqio.Vocabulary) -> str:
    """A string that changes whenever the vocabulary maps text to other ids."""
    if isinstance(vocabulary, seqio.SentencePieceVocabulary):
        digest = hashlib.sha256(vocabulary.sp_model).hexdigest()[:16]
        return f"sentencepiece:{digest}:extra_ids={vocabulary.extra_ids}"
    return type(vocabulary).__name__


def fingerprint(task_name: str) -> dict[str, Any]:
    """What the cached rows of a registered flan_tasks training task depend on (JSON-able)."""
    info = registry.task_info(task_name)
    options = dataclasses.asdict(registry.registered_options(info.suite))
    options.pop("rate_cap")  # the rate cap changes mixing rates, not the rows
    options.pop("classification_generation")  # eval tasks only
    options.pop("shuffle_buffer_size")  # the order training reads the rows in, not the rows
    return {
        "flan_tasks_cache_format": FORMAT_VERSION,
        "suite": info.suite,
        "task": task_name,
        "vocabulary": vocabulary_fingerprint(registry.registered_vocabulary(info.suite)),
        "options": options,
        "generator_seed": registry.registered_seed(info.suite),
    }


def training_tasks(mixtures: Sequence[str] = (), tasks: Sequence[str] = ()) -> list[str]:
    """The cacheable training tasks of the named mixtures and tasks, deduplicated, in order."""
    names: list[str] = []
    for name in [*mixtures, *tasks]:
        provider = seqio.get_mixture_or_task(name)  # KeyError names the unknown one
        leaves = provider.tasks if isinstance(provider, seqio.Mixture) else [provider]
        for task in leaves:
            if not task.supports_caching:
                raise ValueError(
                    f"task {task.name!r} (from {name!r}) cannot be cached: it has no "
                    "seqio.CacheDatasetPlaceholder (only training tasks are cached)"
                )
            if task.name not in names:
                names.append(task.name)
    if not names:
        raise ValueError("nothing to cache: name at least one --mixture or --task")
    return names


def task_cache_dir(cache_dir: str, task_name: str) -> str:
    return os.path.join(cache_dir, seqio.get_task_dir_from_name(task_name))


def is_completed(cache_dir: str, task_name: str) -> bool:
    return tf.io.gfile.exists(os.path.join(task_cache_dir(cache_dir, task_name), "COMPLETED"))


def read_fingerprint(task_dir: str) -> dict[str, Any] | None:
    """The fingerprint stored in a task cache's COMPLETED file (None: not written by flan_tasks)."""
    with tf.io.gfile.GFile(os.path.join(task_dir, "COMPLETED")) as f:
        text = f.read().strip()
    try:
        value = json.loads(text) if text else None
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) and "flan_tasks_cache_format" in value else None


def check_fingerprint(task: seqio.Task) -> str | None:
    """None if the task's cache matches its registration, else a one-line reason."""
    try:
        registry.task_info(task.name)
    except KeyError:
        return None  # not a flan_tasks task: nothing to compare with
    stored = read_fingerprint(task.cache_dir)
    if stored is None:
        return None  # built by seqio's cache_tasks_main: no fingerprint to compare
    current = fingerprint(task.name)
    diff = [k for k in current if k != "task" and stored.get(k) != current[k]]
    if not diff:
        return None
    details = "; ".join(f"{k}: cache {stored.get(k)!r}, run {current[k]!r}" for k in diff)
    return f"{task.name} in {task.cache_dir} ({details})"
