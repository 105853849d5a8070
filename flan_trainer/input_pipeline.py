"""seqio input pipelines: one data shard per host, global jax.Arrays, exact O(1) resume.

Each host reads the shard of the data selected by its devices' position on the mesh's batch axes
('replica' and 'data'); hosts that differ only along 'model' read the same shard and build the same
rows, as T5X does. A host's batch is ``global_batch / num_shards`` rows, and the per-host numpy
batches are assembled into one global ``jax.Array`` sharded ``P('data')`` over the mesh.

Resume: each checkpoint carries, per host, the tf.data iterator state of that host's pipeline
(``TrainIterator.save_state``, layout in flan_trainer/data_checkpoint.py); a resumed run builds the
same pipeline and restores that state, so its first batch is the one the interrupted run would
have read next, whatever the step. Checkpoints without it resume by replaying the batches.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jax
import seqio
import tensorflow as tf
from jax.sharding import Mesh

from flan_tasks import graph_build
from flan_trainer import data_checkpoint, index_mixture, packing, partitioning

logger = logging.getLogger(__name__)

# ----------------------------------------------------------------------------- sharding
# The batch layout and the per-host shard are partitioning's decisions; these are thin adapters.
batch_sharding = partitioning.batch_sharding


def host_shard_info(
    mesh: Mesh, process_index: int | None = None, device_process: Callable[[Any], int] | None = None
) -> seqio.ShardInfo:
    """The seqio.ShardInfo this process reads (see partitioning.data_shard_info)."""
    index, num_shards = partitioning.data_shard_info(mesh, process_index, device_process)
    return seqio.ShardInfo(index=index, num_shards=num_shards)


# ----------------------------------------------------------------------------- checks


def _leaf_tasks(mixture_or_task_name: str) -> list[seqio.Task]:
    provider = seqio.get_mixture_or_task(mixture_or_task_name)
    return list(provider.tasks) if isinstance(provider, seqio.Mixture) else [provider]


def check_cached(mixture_or_task_name: str) -> None:
    """Fail clearly when USE_CACHED_TASKS is on but a task has no offline cache, or a stale one."""
    # Strict on purpose: seqio would silently fall back for tasks that cannot be cached, and fail
    # deep inside tf.data for cacheable ones; either way the user did not get what they asked for.
    from flan_tasks import cache as cache_lib

    tasks = _leaf_tasks(mixture_or_task_name)
    missing = [t.name for t in tasks if not t.cache_dir]
    if missing:
        raise ValueError(
            f"use_cached_tasks=True but {len(missing)} task(s) have no offline cache in the seqio "
            f"cache dirs {seqio.utils.get_global_cache_dirs()}: {', '.join(missing[:10])}"
            f"{' ...' if len(missing) > 10 else ''}. Either build the cache (`python -m flan_tasks "
            f"--suite SUITE cache --mixture {mixture_or_task_name} --output_cache_dir=DIR`, or seqio's "
            "cache_tasks_main) and pass --seqio_cache_dirs=DIR, or preprocess on the fly with "
            "use_cached_tasks=False (gin: --gin.USE_CACHED_TASKS=False)."
        )
    stale = [reason for t in tasks if (reason := cache_lib.check_fingerprint(t))]
    if stale:
        raise ValueError(
            f"the offline cache of {len(stale)} task(s) was built with other settings than this run "
            f"registers: {'; '.join(stale[:5])}{' ...' if len(stale) > 5 else ''}. Rebuild it with the "
            "run's vocabulary (`python -m flan_tasks cache ... --vocabulary=... --overwrite`) or point "
            "--seqio_cache_dirs at a matching cache."
        )


def check_tfds_prepared(mixture_or_task_name: str) -> None:
    """Fail clearly, naming every one, when TFDS datasets a mixture reads are not prepared on disk."""
    from flan_tasks import prepare

    missing = []
    for name, (tasks, data_dir) in prepare.tfds_sources(mixture_or_task_name).items():
        try:
            status = prepare.source_status(name, tasks, data_dir)
        except Exception as exc:  # noqa: BLE001 - e.g. no such builder: TFDS reports it when read
            logger.debug("skipping TFDS check for %s: %s", name, exc)
            continue
        if not status.prepared:
            missing.append(status)
    if missing:
        raise FileNotFoundError(prepare.missing_sources_message(missing, mixture_or_task_name))


def check_sources(mixture_or_task_name: str, use_cached_tasks: bool) -> None:
    """Check every source a run reads (the cache, or the TFDS data) before anything else is built."""
    if use_cached_tasks:
        check_cached(mixture_or_task_name)  # a cached run reads no TFDS data
    else:
        check_tfds_prepared(mixture_or_task_name)


def _converter(feature_converter: Any, pack: bool) -> seqio.FeatureConverter:
    if isinstance(feature_converter, type):
        return feature_converter(pack=pack)
    if feature_converter.pack != pack:
        raise ValueError(
            f"feature converter {type(feature_converter).__name__} has pack={feature_converter.pack} "
            f"but pack={pack} was asked for; pass the converter class or make them agree"
        )
    return feature_converter


# ----------------------------------------------------------------------------- datasets


def get_host_dataset(
    mixture_or_task_name: str,
    task_feature_lengths: Mapping[str, int],
    host_batch_size: int,
    feature_converter: Any,
    shard_info: seqio.ShardInfo,
    seed: int | None,
    *,
    shuffle: bool = True,
    pack: bool = True,
    use_cached_tasks: bool = False,
    start_step: int = 0,
    split: str = "train",
    num_epochs: int | None = None,
    fast: bool = True,
) -> tf.data.Dataset:
    """This host's batches of the converted features, repeated ``num_epochs`` (None = forever).

    ``fast`` (default): vectorised packing (flan_trainer/packing.py) and ``fast_options``;
    False: seqio's per-example packing loop and tf.data's default options (the old path, kept for
    benchmarks). Both give the same batches bit for bit.
    """
    check_sources(mixture_or_task_name, use_cached_tasks)
    converter = _converter(feature_converter, pack)
    if fast:
        converter = packing.fast_packing(converter)
    ds = seqio.get_dataset(
        mixture_or_task_name,
        task_feature_lengths=dict(task_feature_lengths),
        feature_converter=converter,
        dataset_split=split,
        use_cached=use_cached_tasks,
        shuffle=shuffle,
        num_epochs=num_epochs,
        # One shard is all the data: no shard_info, so seqio does not list source files (which it
        # cannot for a multi-config TFDS name without a config; the FLAN catalog names one for each,
        # tests/test_flan_catalog.py, but user tasks may not).
        shard_info=shard_info if shard_info.num_shards > 1 else None,
        seed=seed,
        verbose=False,
    )
    ds = ds.batch(host_batch_size, drop_remainder=num_epochs is None)
    return _replay_and_options(ds, start_step, fast)


def _replay_and_options(ds: tf.data.Dataset, start_step: int, fast: bool) -> tf.data.Dataset:
    """The end of both loaders' pipelines: skip replayed batches, options, prefetch."""
    # Resume by replay (the fallback when a checkpoint has no usable iterator state, see
    # get_train_iterator): the pipeline is deterministic given the seed, so dropping the first
    # start_step batches gives exactly the batches an uninterrupted run would see next, at the
    # cost of re-running preprocessing and packing for every skipped batch.
    if start_step:
        ds = ds.skip(start_step)
    options = fast_options() if fast else tf.data.Options()
    options.deterministic = True
    return ds.with_options(options).prefetch(2 if fast else tf.data.AUTOTUNE)


def fast_options() -> tf.data.Options:
    """tf.data options of the training input pipeline (measured: benchmarks/bench_flan_pipeline.py).

    A mixture is one small pipeline per task (~75 for flan_all_train: read, cache, several maps,
    shuffle, prefetch), so per-example overheads dominate. tf.data's autotuner models every one of
    those stages and costs more than the work on a busy host (its absence nearly doubled the
    examples per CPU-second from the cache); without it, AUTOTUNE maps run at the thread pool's
    parallelism and AUTOTUNE prefetches keep a fixed buffer. Map fusion joins seqio's consecutive
    per-example maps into one function call. Neither changes what is produced or its order.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    options.experimental_optimization.map_fusion = True
    return options


def get_index_host_dataset(rows: index_mixture.TaskRows, feature_converter: Any, pack: bool,
                        task_feature_lengths: Mapping[str, int], host_batch_size: int, seed: int,
                        shuffle: bool, workers: int, start_step: int) -> tf.data.Dataset:
    """This host's batches from the index loader (flan_trainer/index_mixture.py)."""
    converter = _converter(feature_converter, pack)
    ds = index_mixture.host_dataset(rows, packing.fast_packing(converter), task_feature_lengths, host_batch_size,
                                    seed, shuffle=shuffle, workers=workers)
    return _replay_and_options(ds, start_step, fast=True)


class TrainIterator(Iterator[dict[str, jax.Array]]):
    """Infinite iterator of global batches; knows its position and saves its state for checkpoints."""

    def __init__(
        self, host_iter: tf.data.Iterator, mesh: Mesh, global_batch_size: int,
        seed: int, mixture: str, shard_info: seqio.ShardInfo, start_step: int,
        fingerprint: Mapping[str, Any] | None = None,
    ) -> None:
        self._host_iter = host_iter
        self.sharding = batch_sharding(mesh)
        self.global_batch_size = global_batch_size
        self.seed, self.mixture, self.shard_info = seed, mixture, shard_info
        self.step = start_step  # batches consumed so far (including skipped ones)
        self.fingerprint = dict(fingerprint or {})
        self.resumed_by = "start"  # 'start' | 'iterator state' | 'replay'

    def __next__(self) -> dict[str, jax.Array]:
        local = {k: v.numpy() for k, v in next(self._host_iter).items()}
        self.step += 1
        return {
            k: jax.make_array_from_process_local_data(
                self.sharding, v, (self.global_batch_size, *v.shape[1:]))
            for k, v in local.items()
        }

    def data_state(self) -> dict[str, Any]:
        """The JSON position to save with a checkpoint (see checkpoints.CheckpointManager.save)."""
        return {
            "steps": self.step,
            "examples": self.step * self.global_batch_size,
            "seed": self.seed,
            "mixture": self.mixture,
        }

    def save_state(self, folder: Any) -> bool:
        """Write this host's iterator state into ``folder`` (see data_checkpoint for the layout)."""
        fingerprint = {**self.fingerprint, "steps": self.step}
        return data_checkpoint.save_iterator(self._host_iter, folder, jax.process_index(), fingerprint)


def _fingerprint(mixture: str, lengths: Mapping[str, int], host_batch_size: int, seed: int,
                 shard_info: seqio.ShardInfo, shuffle: bool, pack: bool, use_cached_tasks: bool) -> dict[str, Any]:
    """What a saved iterator state depends on: restoring it into another pipeline is refused."""
    return {"mixture": mixture, "task_feature_lengths": dict(sorted(lengths.items())),
            "host_batch_size": host_batch_size, "seed": seed, "shard": [shard_info.index, shard_info.num_shards],
            "shuffle": shuffle, "pack": pack, "use_cached_tasks": use_cached_tasks,
            # The fast pipeline's tf.data graph differs from the old one (same rows): so does its state.
            "pipeline": "fast-v1"}


def get_train_iterator(
    mixture_or_task_name: str,
    task_feature_lengths: Mapping[str, int],
    batch_size: int,
    feature_converter: Any,
    mesh: Mesh,
    seed: int | None,
    shuffle: bool = True,
    pack: bool = True,
    use_cached_tasks: bool = False,
    start_step: int = 0,
    resume_dir: Any = None,
) -> TrainIterator:
    """Global training batches for ``mesh``, forever; resuming at ``start_step`` is exact.

    ``batch_size`` is global (in sequences). ``seed=None`` picks a time-based seed (T5X's
    RANDOM_SEED=None) which is kept in ``data_state()`` so a resume can reuse it. With
    ``resume_dir`` (the checkpoint_<step> directory being resumed) the host restores the iterator
    state saved there (O(1) in ``start_step``); without one, or when that state is missing or was
    saved by another pipeline, it replays ``start_step`` batches (logged).
    """
    if seed is None:
        if start_step:
            raise ValueError("resuming (start_step > 0) needs the seed of the original run")
        seed = int(time.time() * 1000) % (2**31 - 1)
        logger.info("no input seed given; using time-based seed %d", seed)
    data_size = int(mesh.shape[partitioning.DATA_AXIS])
    if batch_size % data_size:
        raise ValueError(
            f"BATCH_SIZE {batch_size} is not divisible by the data-parallel size {data_size} "
            f"(mesh {dict(mesh.shape)}); choose a multiple of {data_size}"
        )
    shard_info = host_shard_info(mesh)
    host_batch = batch_size // shard_info.num_shards
    fingerprint = _fingerprint(mixture_or_task_name, task_feature_lengths, host_batch, seed, shard_info,
                               shuffle, pack, use_cached_tasks)

    kind, workers = index_mixture.loader_settings()
    if kind == "index":
        check_sources(mixture_or_task_name, use_cached_tasks)
        rows = index_mixture.read_rows(mixture_or_task_name, task_feature_lengths, "train", use_cached_tasks,
                                       shard_info if shard_info.num_shards > 1 else None, workers)
        # Another table of rows, or another number of workers (the buffers in flight), is
        # another pipeline: its saved state is refused and the run replays instead.
        fingerprint.update(pipeline="index-v1", rows=rows.digest(), workers=workers)

    def dataset(skip: int) -> tf.data.Dataset:
        if kind == "index":
            return get_index_host_dataset(rows, feature_converter, pack, task_feature_lengths, host_batch, seed,
                                          shuffle, workers, skip)
        return get_host_dataset(
            mixture_or_task_name, task_feature_lengths, host_batch, feature_converter, shard_info, seed,
            shuffle=shuffle, pack=pack, use_cached_tasks=use_cached_tasks, start_step=skip)

    def build(skip: int) -> tf.data.Iterator:
        return iter(graph_build.build(lambda: dataset(skip)))  # without AutoGraph: faster start-up

    resumed_by = "start"
    host_iter = None
    if start_step and resume_dir is not None:
        host_iter = build(0)
        why = data_checkpoint.restore_iterator(
            host_iter, resume_dir, jax.process_index(), {**fingerprint, "steps": start_step})
        if why is None:
            resumed_by = "iterator state"
            logger.info("input pipeline restored from its saved state at batch %d", start_step)
        else:
            host_iter = None
            logger.warning("%s; replaying %d batches to resume the input pipeline", why, start_step)
    if host_iter is None:
        host_iter = build(start_step)
        resumed_by = "replay" if start_step else "start"
        if start_step and resume_dir is None:
            logger.info("input pipeline resumes by replaying %d batches", start_step)
    it = TrainIterator(host_iter, mesh, batch_size, seed, mixture_or_task_name, shard_info, start_step, fingerprint)
    it.resumed_by = resumed_by
    return it


def get_eval_dataset(
    mixture_or_task_name: str,
    task_feature_lengths: Mapping[str, int],
    batch_size: int,
    feature_converter: Any,
    mesh: Mesh | None = None,
    split: str = "validation",
    use_cached_tasks: bool = False,
) -> tf.data.Dataset:
    """This host's evaluation batches: one epoch, in order, unpacked (the last batch may be short).

    ``batch_size`` is global; with a mesh the host reads its shard and ``batch_size / num_shards``
    rows per batch, without one it reads everything.
    """
    shard_info = host_shard_info(mesh) if mesh is not None else seqio.ShardInfo(0, 1)
    if batch_size % shard_info.num_shards:
        raise ValueError(f"eval batch_size {batch_size} must divide by the {shard_info.num_shards} hosts")
    return graph_build.build(lambda: get_host_dataset(
        mixture_or_task_name, task_feature_lengths, batch_size // shard_info.num_shards,
        feature_converter, shard_info, seed=None, shuffle=False, pack=False,
        use_cached_tasks=use_cached_tasks, split=split, num_epochs=1,
    ))
