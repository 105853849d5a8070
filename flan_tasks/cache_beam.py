"""The Apache Beam pipeline that builds the offline cache (see flan_tasks.cache for the format).

Per task and split: one work item per source shard; the worker registers the suite, reads the
shard in order, runs the task's pre-cache preprocessors and writes cache shard i from source
shard i (written under a temporary name and renamed when complete, so a retried or failed bundle
never leaves a half shard under the final name). The rows also flow on to seqio's own `GetInfo`
and `GetStats` transforms, which write info.{split}.json and stats.{split}.json; COMPLETED (with
the fingerprint) is written last, once everything else of the task is. Any Beam runner works:
the DirectRunner here, Dataflow with `--runner=DataflowRunner --project=... --region=...
--temp_location=gs://...` (the cache dir must then be on GCS).

Needs the Beam extra (`bash scripts/setup_env.sh --beam`, which creates .venv-beam).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from typing import Any

import apache_beam as beam
import seqio
import tensorflow as tf
from seqio import beam_utils

from flan_tasks import cache as cache_lib


class _WriteSourceShard(beam.DoFn):
    """(shard index, shard name) -> the shard's cached rows, written in order; yields each row."""

    def __init__(self, config: cache_lib.SuiteConfig, task_name: str, split: str, num_shards: int,
                 prefix: str) -> None:
        self._config, self._task_name, self._split = config, task_name, split
        self._num_shards, self._prefix = num_shards, prefix

    def setup(self) -> None:
        self._config.register()

    def process(self, shard: tuple[int, str]) -> Iterator[dict[str, Any]]:
        index, _ = shard
        task = seqio.get_mixture_or_task(self._task_name)
        ds = task.source.get_dataset(
            split=self._split, shuffle=False, shard_info=seqio.ShardInfo(index, self._num_shards))
        ds = task.preprocess_precache(ds, seed=None)
        path = f"{self._prefix}-{index:05d}-of-{self._num_shards:05d}"
        partial = f"{path}.incomplete"
        with tf.io.TFRecordWriter(partial) as writer:
            for row in ds.as_numpy_iterator():
                writer.write(seqio.dict_to_tfexample(row).SerializeToString())
                yield row
        tf.io.gfile.rename(partial, path, overwrite=True)


def _add_task(pipeline: beam.Pipeline, config: cache_lib.SuiteConfig, task_name: str,
              splits: Sequence[str], cache_dir: str) -> None:
    task = seqio.get_mixture_or_task(task_name)
    out = cache_lib.task_cache_dir(cache_dir, task_name)
    tf.io.gfile.makedirs(out)
    done = []
    for split in splits:
        shards = list(enumerate(task.source.list_shards(split)))
        if not shards:
            raise FileNotFoundError(f"task {task_name!r} has no source shards for split {split!r}")
        label = f"{task_name}_{split}"
        rows = (
            pipeline
            | f"{label}_shards" >> beam.Create(shards, reshuffle=False)
            | f"{label}_rows" >> beam.ParDo(_WriteSourceShard(
                config, task_name, split, len(shards), seqio.get_cached_tfrecord_prefix(out, split)))
        )
        done.append(
            rows
            | f"{label}_info" >> beam_utils.GetInfo(len(shards))
            | f"{label}_write_info" >> beam_utils.WriteJson(seqio.get_cached_info_path(out, split)))
        done.append(
            rows
            | f"{label}_stats" >> beam_utils.GetStats(task.output_features)
            | f"{label}_write_stats" >> beam_utils.WriteJson(seqio.get_cached_stats_path(out, split)))
    _ = (
        done
        | f"{task_name}_all_written" >> beam.Flatten()
        | f"{task_name}_nothing" >> beam.Filter(lambda _: False)
        | f"{task_name}_completed" >> beam.io.WriteToText(
            os.path.join(out, "COMPLETED"), num_shards=1, shard_name_template="",
            header=json.dumps(cache_lib.fingerprint(task_name), sort_keys=True))
    )


def _check_tfds_prepared(task_names: Sequence[str], label: str) -> None:
    """Every TFDS dataset the tasks read must be prepared: name all missing ones at once."""
    from flan_tasks import prepare

    seen: dict[str, prepare.SourceStatus] = {}
    for task_name in task_names:
        for name, (tasks, data_dir) in prepare.tfds_sources(task_name).items():
            if name not in seen:
                seen[name] = prepare.source_status(name, tasks, data_dir)
    missing = [s for s in seen.values() if not s.prepared]
    if missing:
        raise FileNotFoundError(prepare.missing_sources_message(missing, label))


def build_cache(config: cache_lib.SuiteConfig, task_names: Sequence[str], cache_dir: str,
                splits: Sequence[str] = ("train",), pipeline_args: Sequence[str] = (),
                overwrite: bool = False, label: str | None = None) -> tuple[list[str], list[str]]:
    """Cache the named (registered) tasks under cache_dir; returns (built, skipped as complete).

    label names the tasks in errors (the mixture they came from; default: the first task).
    """
    from apache_beam.options.pipeline_options import PipelineOptions

    config.register()
    _check_tfds_prepared(task_names, label or task_names[0])
    todo, skipped = [], []
    for name in task_names:
        if cache_lib.is_completed(cache_dir, name) and not overwrite:
            skipped.append(name)
            continue
        if cache_lib.is_completed(cache_dir, name):
            tf.io.gfile.rmtree(cache_lib.task_cache_dir(cache_dir, name))
        todo.append(name)
    if todo:
        options = PipelineOptions(list(pipeline_args) or ["--runner=DirectRunner"])
        with beam.Pipeline(options=options) as pipeline:
            for name in todo:
                _add_task(pipeline, config, name, splits, cache_dir)
    return todo, skipped
