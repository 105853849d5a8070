"""Index-based mixing: a host's training stream computed group by group, in parallel.

seqio mixes a stream: one tf.data pipeline per task (read, preprocess, shuffle buffer, repeat)
behind ``sample_from_datasets``. Every example passes one at a time through a chain of ~10
iterators and thread hand-offs per task, and that chain runs in one consumer thread, so more cores
barely help (benchmarks/bench_flan_pipeline.py measured 1.27x from a second core from the cache).
This loader makes every example a function of its index, as Grain does, so that groups of
examples are independent work:

1. **Rows.** Each task's rows are read once, in order (seqio's own task pipeline, unshuffled, one
   epoch, trimmed and filtered as seqio's Mixture does), into one ragged table per feature; the
   tasks are read by ``workers`` threads at once.
2. **Choice.** Example ``i`` of the stream belongs to group ``g = i // G`` (``G`` = the packing
   group, ``max(task_feature_lengths)``, as seqio packs); the tasks of a group are a stateless
   categorical draw with the mixture's rates, keyed by (seed, g). Rates are seqio's
   ``Mixture.get_rate`` values, normalised, so the expected proportions are the mixture's.
3. **Position.** A sequential ``scan`` over groups keeps how many examples of each task came
   before the group (75 counts: the only sequential work, a bincount per group). Example ``i``
   is then the ``p``-th of its task, epoch ``p // n`` position ``p % n``, which a stateless index
   shuffle keyed by (seed, task, epoch) maps to a row: every epoch is a full permutation, not a
   buffer-window shuffle.
4. **Pack.** Groups are gathered from the table, converted and packed (flan_trainer/packing.py,
   through the run's seqio feature converter) by ``cores`` parallel workers; a deterministic
   interleave keeps the group order.

The pipeline is pure TF ops, so the host's position is still saved and restored as a tf.data
iterator state (data_checkpoint.py), and it is small: the scan's counts, the range position and
the few groups in flight, independent of the step.

The price: the rows live in memory (about 4 bytes per token, a host holds its shard), and reading
them costs one pass over the task data when the pipeline is built, so this loader suits cached
tasks (``use_cached_tasks=True``), where that pass is a read. The stream differs from seqio's
mixing (another sampler and shuffle); cached and uncached runs with this loader give the same
stream, since both read the same rows in the same order.

Choose it with gin: ``input_loader.kind = 'index'`` (default ``'seqio'``).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import logging
import os
import time
from collections.abc import Mapping
from typing import Any

import gin
import numpy as np
import seqio
import tensorflow as tf
from tqdm.auto import tqdm

from flan_tasks import graph_build
from flan_trainer import packing

logger = logging.getLogger(__name__)

KINDS = ("seqio", "index")


@gin.configurable("input_loader", allowlist=["kind", "workers"])
def loader_settings(kind: str = "seqio", workers: int | None = None) -> tuple[str, int]:
    """The training loader (``'seqio'`` streaming mixing, or ``'index'``) and its parallelism.

    ``workers``: groups packed at once by the index loader (None: the CPUs this process may use, at
    most 8). One worker packs several million tokens a second; each adds about three groups in flight
    to memory and to the iterator state saved with every checkpoint, so a many-core host does not
    want one per core.
    """
    if kind not in KINDS:
        raise ValueError(f"input_loader.kind={kind!r} is not a loader; valid: {', '.join(KINDS)}")
    if workers is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        workers = min(cpus, 8)
    if workers < 1:
        raise ValueError(f"input_loader.workers={workers} must be at least 1")
    return kind, int(workers)


@dataclasses.dataclass
class TaskRows:
    """Every row of every task of a mixture, in task order; ``starts[t]`` is task t's first row."""

    names: list[str]
    rates: np.ndarray  # [T] float64, normalised
    counts: np.ndarray  # [T] int64
    starts: np.ndarray  # [T] int64
    values: dict[str, np.ndarray]  # feature -> [total tokens]
    row_splits: dict[str, np.ndarray]  # feature -> [total rows + 1] int64
    # How the read went (seconds: build_s, read_s, read_cpu_s); not part of the rows or the digest.
    timings: dict[str, float] = dataclasses.field(default_factory=dict, compare=False)

    def digest(self) -> str:
        """Changes whenever the rows, their order or the rates change (part of the state fingerprint)."""
        h = hashlib.sha256()
        for name in self.names:
            h.update(name.encode())
        for arr in (self.rates, self.counts, *self.values.values(), *self.row_splits.values()):
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()[:16]


def _tasks_and_rates(mixture_or_task_name: str, split: str) -> tuple[Any, list[seqio.Task], np.ndarray]:
    provider = seqio.get_mixture_or_task(mixture_or_task_name)
    if not isinstance(provider, seqio.Mixture):
        return None, [provider], np.ones([1])
    tasks = [t for t in provider.tasks if split in t.splits]  # seqio skips tasks without the split
    rates = np.array([float(provider.get_rate(t)) for t in tasks], np.float64)
    keep = rates > 0
    return provider, [t for t, k in zip(tasks, keep, strict=True) if k], rates[keep]


def read_rows(
    mixture_or_task_name: str,
    task_feature_lengths: Mapping[str, int],
    split: str = "train",
    use_cached: bool = False,
    shard_info: seqio.ShardInfo | None = None,
    workers: int = 1,
) -> TaskRows:
    """Read each task's rows once, as seqio's Mixture would feed them to the sampler (unshuffled).

    ``workers`` threads read the tasks at once (task ``i`` by thread ``i % workers``): the reading
    is tf.data ops, which run outside the GIL, so an uncached read (render + tokenise every row)
    uses several cores (measured: an uncached flan_all_train read 1.28x faster on 2 cores than on 1,
    wall, benchmarks/results/flan_pipeline_onthefly_steady.json). The rows are the same, in the
    same order, for any number of workers.
    """
    start = time.perf_counter()
    mixture, tasks, rates = _tasks_and_rates(mixture_or_task_name, split)
    if not tasks:
        raise ValueError(f"{mixture_or_task_name} has no task with a {split!r} split and a rate > 0")
    keys = set((mixture or tasks[0]).output_features)
    lengths = {k: v for k, v in task_feature_lengths.items() if k in keys}
    # Pipelines are built here, in one thread (building is python) and without AutoGraph, as the
    # trainer builds its pipelines (flan_tasks/graph_build.py); only the reading is threaded.
    datasets = graph_build.build(lambda: [
        task.get_dataset(sequence_length=lengths, split=split, use_cached=use_cached, shuffle=False, seed=None,
                         shard_info=shard_info, num_epochs=1, trim_output_features=True)
        for task in tasks], "the index loader's task pipelines")
    built, built_cpu = time.perf_counter(), time.process_time()
    chunks = [[(i, datasets[i]) for i in range(w, len(tasks), workers)] for w in range(min(workers, len(tasks)))]
    # A progress bar on a terminal (an uncached read of a large mixture takes minutes); none in logs.
    with tqdm(desc="index loader: reading rows", unit=" rows", mininterval=5, disable=None) as bar:
        if len(chunks) == 1:
            parts = [_read_chunk(chunks[0], lengths, bar)]
        else:
            with concurrent.futures.ThreadPoolExecutor(len(chunks), thread_name_prefix="index_read") as pool:
                parts = list(pool.map(lambda chunk: _read_chunk(chunk, lengths, bar), chunks))
    task_of_row, values, row_lengths = _in_task_order(parts, lengths)
    counts = np.bincount(task_of_row, minlength=len(tasks))
    if not counts.all():
        empty = [t.name for t, n in zip(tasks, counts, strict=True) if n == 0]
        raise ValueError(f"task(s) {', '.join(empty)} have no {split!r} rows{' in the cache' if use_cached else ''}; "
                         "the index loader cannot sample from an empty task (drop it from the mixture or "
                         "give it data)")
    counts_arr = counts.astype(np.int64)
    rows = TaskRows(
        names=[t.name for t in tasks], rates=rates / rates.sum(), counts=counts_arr,
        starts=np.concatenate([[0], np.cumsum(counts_arr)[:-1]]).astype(np.int64),
        values=values,
        row_splits={k: np.concatenate([[0], np.cumsum(v)]).astype(np.int64) for k, v in row_lengths.items()},
        timings={"build_s": built - start, "read_s": time.perf_counter() - built,
                 "read_cpu_s": time.process_time() - built_cpu},
    )
    logger.info("index loader: read %d rows of %d task(s) (%.1f MB) in %.1fs (pipelines built in %.1fs, "
                "%d reader(s))", int(counts_arr.sum()), len(tasks), sum(v.nbytes for v in rows.values.values()) / 1e6,
                time.perf_counter() - start, built - start, len(chunks))
    return rows


_Chunk = tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]


def _read_chunk(datasets: list[tuple[int, tf.data.Dataset]], lengths: Mapping[str, int], bar: tqdm) -> _Chunk:
    """(task of each row, {feature: flat ids}, {feature: row lengths}) of these tasks, read in order."""
    # One concatenated pipeline, read in ragged batches: tf.data sets up and optimises it once
    # (measured: half the time of reading the tasks' pipelines one after another).
    combined = None
    for i, ds in datasets:
        ds = ds.map(lambda ex, i=i: {"task": tf.constant(i, tf.int64), **{k: ex[k] for k in lengths}})
        combined = ds if combined is None else combined.concatenate(ds)
    task_of_row: list[np.ndarray] = []
    values: dict[str, list[np.ndarray]] = {k: [] for k in lengths}
    row_lengths: dict[str, list[np.ndarray]] = {k: [] for k in lengths}
    for batch in combined.ragged_batch(4096).with_options(_read_options()):
        task_of_row.append(batch["task"].numpy())
        for k in lengths:
            values[k].append(batch[k].flat_values.numpy().astype(np.int32))
            row_lengths[k].append(batch[k].row_lengths().numpy())
        bar.update(len(task_of_row[-1]))

    def cat(parts: list[np.ndarray], dtype) -> np.ndarray:
        return np.concatenate(parts) if parts else np.zeros([0], dtype)

    return (cat(task_of_row, np.int64), {k: cat(v, np.int32) for k, v in values.items()},
            {k: cat(v, np.int64) for k, v in row_lengths.items()})


def _read_options() -> tf.data.Options:
    # No autotuning in a one-pass read: each task's pipeline starts its own tuning loop, which
    # ramps its parallel maps and prefetches up on an exponential timer (20, 40, 80, ... ms), and
    # on one core the read sat idle through those waits (measured: ~0.5 s of a task's ~0.8 s
    # start-up, wall 1.6x CPU over an uncached flan_all_train read). Parallel maps then run at
    # the cores available; the rows are the same.
    options = tf.data.Options()
    options.autotune.enabled = False
    return options


def _in_task_order(parts: list[_Chunk], lengths: Mapping[str, int]) -> _Chunk:
    """The readers' rows as one table sorted by task, each task's rows in the order it was read."""
    task_of_row = np.concatenate([p[0] for p in parts])
    order = np.argsort(task_of_row, kind="stable")
    values, row_lengths = {}, {}
    for k in lengths:
        lens = np.concatenate([p[2][k] for p in parts])
        flat = np.concatenate([p[1][k] for p in parts])
        starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
        # Row r of the result is row order[r] of the readers' concatenation: gather its ids.
        new_lens = lens[order]
        offsets = np.repeat(starts[order] - np.concatenate([[0], np.cumsum(new_lens)[:-1]]), new_lens)
        values[k] = flat[np.arange(int(new_lens.sum())) + offsets]
        row_lengths[k] = new_lens
    return task_of_row[order], values, row_lengths


def _row_picker(rows: TaskRows, seed: int, shuffle: bool):
    """(offsets, choices) -> the table row of each example of a group (see the module docstring)."""
    num_tasks = len(rows.names)
    counts, starts = tf.constant(rows.counts), tf.constant(rows.starts)

    def pick(offsets: tf.Tensor, choices: tf.Tensor) -> tf.Tensor:
        one_hot = tf.one_hot(choices, num_tasks, dtype=tf.int64)
        within = tf.gather(tf.cumsum(one_hot, axis=0), choices, batch_dims=1) - 1
        pos = tf.gather(offsets, choices) + within  # this example is the pos-th of its task
        n = tf.gather(counts, choices)
        epoch, index = pos // n, pos % n
        if shuffle:
            # A fresh permutation of each task's rows per epoch, keyed by (seed, task, epoch); the
            # raw op, since tf.random.experimental.index_shuffle pads a batched seed on the wrong axis.
            keys = tf.stack([tf.fill(tf.shape(choices), tf.constant(seed, tf.int64)), choices, epoch], axis=1)
            index = tf.raw_ops.RandomIndexShuffle(index=index, seed=keys, max_index=n - 1, rounds=4)
        return tf.gather(starts, choices) + index

    return pick


def _drawer(rows: TaskRows, seed: int, group_size: int):
    """The scan step over group numbers: (offsets, g) -> (offsets + counts, (offsets, choices))."""
    num_tasks = len(rows.names)
    logits = tf.constant(np.log(rows.rates)[None, :], tf.float32)

    def draw(offsets: tf.Tensor, g: tf.Tensor):
        key = tf.stack([tf.constant(seed, tf.int64), g])
        choices = tf.random.stateless_categorical(logits, group_size, key, dtype=tf.int64)[0]
        counts = tf.math.bincount(choices, minlength=num_tasks, maxlength=num_tasks, dtype=tf.int64)
        return offsets + counts, (offsets, choices)

    return draw


def _groups(rows: TaskRows, seed: int, group_size: int, num_groups: int) -> tf.data.Dataset:
    """(offsets, choices) of groups 0, 1, ...: each task's count before the group, its tasks."""
    return tf.data.Dataset.range(num_groups).scan(tf.zeros([len(rows.names)], tf.int64),
                                                  _drawer(rows, seed, group_size))


def stream_rows(rows: TaskRows, seed: int, num_groups: int, group_size: int, shuffle: bool = True) -> np.ndarray:
    """The table rows of the first ``num_groups * group_size`` examples of the stream, in order."""
    ds = _groups(rows, seed, group_size, num_groups)
    pick = _row_picker(rows, seed, shuffle)
    return np.concatenate([pick(o, c).numpy() for o, c in ds]) if num_groups else np.zeros([0], np.int64)


def host_dataset(
    rows: TaskRows,
    feature_converter: seqio.FeatureConverter,
    task_feature_lengths: Mapping[str, int],
    host_batch_size: int,
    seed: int,
    *,
    shuffle: bool = True,
    workers: int = 1,
) -> tf.data.Dataset:
    """This host's batches, forever: groups drawn by index, converted and packed ``workers`` at once."""
    group_size = max(task_feature_lengths.values())
    lengths = dict(task_feature_lengths)
    pick = _row_picker(rows, seed, shuffle)
    # Variables, not constants: tf.data serialises a dataset's graph for its rewrites, and
    # captured constants would go with it (a protobuf cannot exceed 2 GB); a variable is captured as
    # a handle. Nothing writes them.
    table = {k: (tf.Variable(rows.values[k], trainable=False), tf.Variable(rows.row_splits[k], trainable=False))
             for k in rows.values}

    def convert(offsets: tf.Tensor, choices: tf.Tensor) -> dict[str, tf.Tensor]:
        row = pick(offsets, choices)
        group = {k: tf.gather(tf.RaggedTensor.from_row_splits(v, splits, validate=False), row)
                 for k, (v, splits) in table.items()}
        return convert_group(group, feature_converter, lengths)

    ds = _groups(rows, seed, group_size, np.iinfo(np.int64).max)
    # The prefetch lets the workers run ahead of rebatch (measured: without it two workers
    # gained 1.5x over one, with it 2.1x).
    ds = ds.map(convert, num_parallel_calls=workers, deterministic=True).prefetch(2 * workers)
    ds = ds.rebatch(host_batch_size, drop_remainder=True)  # the stream is endless: a static batch size
    # The iterator state leaves the variables out (reading one is "external state"): a resumed run
    # rebuilds them from the same rows, which the state's fingerprint pins (TaskRows.digest).
    options = tf.data.Options()
    options.experimental_external_state_policy = tf.data.experimental.ExternalStatePolicy.IGNORE
    return ds.with_options(options)


def convert_group(group: Mapping[str, tf.RaggedTensor], converter: seqio.FeatureConverter,
                  task_feature_lengths: Mapping[str, int]) -> dict[str, tf.Tensor]:
    """One group's examples ``{feature: [n, None]}`` -> its converted rows ``{model feature: [rows, L]}``.

    Converters that pack the task features themselves (encoder-decoder, LM) pack the group whole
    (packing.pack_group, seqio's packing bit for bit) and run their own per-row conversion
    vectorised over the rows; any other converter (prefix LM, unpacked) runs its own
    tf.data pipeline on the group's examples. Both give the rows seqio's converter gives for
    these examples (tests/test_index_mixture.py).
    """
    lengths = dict(task_feature_lengths)
    group_size = max(lengths.values())
    if _packs_task_features(converter):
        packed = packing.pack_group({k: group[k].to_tensor() for k in lengths}, lengths, group_size)
        return tf.vectorized_map(converter._convert_example, packed)
    examples = tf.data.Dataset.from_tensor_slices({k: group[k] for k in lengths})
    return converter(examples, lengths).batch(group_size).get_single_element()


def _packs_task_features(converter: seqio.FeatureConverter) -> bool:
    return (isinstance(converter, (seqio.EncDecFeatureConverter, seqio.LMFeatureConverter))
            and converter.pack and not converter._use_custom_packing_ops)
