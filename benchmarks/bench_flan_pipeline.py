"""Throughput and resume time of the flan training input pipeline (template + SentencePiece + pack
1024/256), on offline mock TFDS data whose text lengths follow the real datasets' (see
flan_tasks/flan/mock_data.FIELD_WORDS for the numbers and their sources).

Every setting runs in its own process pinned to N cores (taskset) with tf.data and TF limited to N
threads, through the trainer's own path (input_pipeline.get_host_dataset, flan_all_train, shuffled,
packed, batched). Modes:

  baseline    the previous path: every template rendered (one kept), one example per op call,
              seqio's packing loop, tf.data's default options (get_host_dataset(fast=False))
  onthefly    what the trainer runs now: a batch of examples rendered and tokenised per op call
              (flan_tasks/batched.py), fast=True: vectorised packing (flan_trainer/packing.py)
              and input_pipeline.fast_options
  cache       from a seqio offline cache of the tasks (--cache_dir; use_cached_tasks=True), fast
  cache_old   the same cache read through the old path (fast=False)
  cache_index the same cache through the index loader (flan_trainer/index_mixture.py, gin
              input_loader.kind='index'): rows read once, groups packed by `cores` workers
  onthefly_index  the index loader without a cache: every row rendered and tokenised once, by
              `cores` reader threads, when the pipeline is built; then as cache_index. Its
              on-the-fly rate is per epoch (each row read once and trained on once):
              1 / (1/read rate + 1/stream rate), both per CPU-second. The read also pays a
              one-time set-up per task (its pipeline's functions, a SentencePiece model load
              per tokenise op: ~0.25 s), which a mock of a few hundred records per task
              inflates; so it is read again from the first quarter of the records, and the
              difference of the two reads gives the per-row (marginal) rate and the set-up
              per task. The steady epoch rate uses the marginal rate, as the other modes'
              rates are timed after their set-up (--warmup)
  resume      time from "build the pipeline and restore the saved iterator state" to the first
              new batch, for a state saved at batch 0 and one saved after --resume_batches batches

    .venv/bin/python benchmarks/bench_flan_pipeline.py --spm /work/shared/vocab/t5_cc_all_32000.spiece.model
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEFAULT_SPM = REPO.parent / "shared" / "vocab" / "t5_cc_all_32000.spiece.model"
LENGTHS = {"inputs": 1024, "targets": 256}
# Modes that measure the old path: seqio's per-example packing loop, tf.data's default options.
OLD_PATH_MODES = ("baseline", "cache_old")


# ----------------------------------------------------------------------------- worker side


def _limit_tf(cores: int) -> None:
    import tensorflow as tf

    tf.config.threading.set_inter_op_parallelism_threads(cores)
    tf.config.threading.set_intra_op_parallelism_threads(cores)


def _render_all_then_gather(templates, record, index, include_options=True):
    """The rendering this benchmark's baseline measures: all templates, then keep one."""
    import tensorflow as tf

    from flan_tasks.rendering import render_tf

    inputs = tf.stack([render_tf(t.inputs, record, include_options) for t in templates])
    targets = tf.stack([render_tf(t.targets, record, include_options) for t in templates])
    return tf.gather(inputs, index), tf.gather(targets, index)


def _dataset(args, cores: int, use_cached: bool, index: bool = False):
    """(this host's batches, the index loader's read timings or {})."""
    import seqio
    import tensorflow as tf

    from flan_tasks import graph_build
    from flan_trainer import index_mixture, input_pipeline

    timings: dict = {}
    # Built as training builds them (input_pipeline.get_train_iterator): without AutoGraph.
    if index:
        rows = index_mixture.read_rows(args.mixture, LENGTHS, use_cached=use_cached, workers=cores)
        timings = dict(rows.timings, rows_read=int(rows.counts.sum()), tasks=len(rows.names))
        ds = graph_build.build(lambda: input_pipeline.get_index_host_dataset(
            rows, seqio.EncDecFeatureConverter, True, LENGTHS, args.batch, 0, True, cores, 0))
    else:
        ds = graph_build.build(lambda: input_pipeline.get_host_dataset(
            args.mixture, LENGTHS, args.batch, seqio.EncDecFeatureConverter, seqio.ShardInfo(0, 1), seed=0,
            shuffle=True, pack=True, use_cached_tasks=use_cached,
            fast=args.mode not in OLD_PATH_MODES))
    options = tf.data.Options()
    options.threading.private_threadpool_size = cores
    options.threading.max_intra_op_parallelism = 1
    return ds.with_options(options), timings


def _count(batch) -> tuple[int, int, int]:
    import numpy as np

    seg = batch["decoder_segment_ids"]
    examples = int(sum(int(row.max()) for row in seg))
    return examples, int(np.sum(batch["encoder_segment_ids"] > 0)), int(np.sum(batch["decoder_loss_weights"]))


def _throughput(args, cores: int, mode: str) -> dict:
    t0 = time.perf_counter()
    ds, timings = _dataset(args, cores, use_cached=mode.startswith("cache"), index=mode.endswith("index"))
    it = iter(ds)
    for _ in range(args.warmup):
        next(it)
    build_s = time.perf_counter() - t0
    examples = in_tok = tgt_tok = 0
    start, cpu_start = time.perf_counter(), time.process_time()
    batches = 0
    # At least --batches, and at least --min_seconds: a fast setting must not be timed only on
    # the buffers it filled during the warm-up.
    while batches < args.batches or time.perf_counter() - start < args.min_seconds:
        ex, i, t = _count({k: v.numpy() for k, v in next(it).items()})
        examples, in_tok, tgt_tok, batches = examples + ex, in_tok + i, tgt_tok + t, batches + 1
    s, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    rows = batches * args.batch
    # cpu_s: CPU time of all this process's threads; examples per CPU-second is the per-core rate
    # and is less disturbed than wall time when other processes share the cores.
    return {"mode": mode, "cores": cores, "rows": rows, "seconds": round(s, 2), "cpu_s": round(cpu, 2),
            "warmup_s": round(build_s, 1), "examples_per_s": round(examples / s, 1),
            "examples_per_cpu_s": round(examples / cpu, 1), "tokens_per_cpu_s": round((in_tok + tgt_tok) / cpu),
            "tokens_per_s": round((in_tok + tgt_tok) / s),
            "input_tokens_per_s": round(in_tok / s), "target_tokens_per_s": round(tgt_tok / s),
            "examples_per_row": round(examples / rows, 2),
            "fill": round((in_tok + tgt_tok) / (rows * sum(LENGTHS.values())), 3), **_read_rates(timings, examples / cpu)}


def _read_rates(timings: dict, stream_rate: float) -> dict:
    """The index loader's read: its own rates, and examples per CPU-second over a one-epoch run."""
    if not timings:
        return {}
    read_rate = timings["rows_read"] / timings["read_cpu_s"]
    return {"rows_read": timings["rows_read"], "tasks": timings["tasks"], "build_s": round(timings["build_s"], 1),
            "read_s": round(timings["read_s"], 2), "read_cpu_s": round(timings["read_cpu_s"], 2),
            "read_examples_per_s": round(timings["rows_read"] / timings["read_s"], 1),
            "read_examples_per_cpu_s": round(read_rate, 1),
            "epoch_examples_per_cpu_s": round(1 / (1 / read_rate + 1 / stream_rate), 1)}


def _with_marginal_read(res: dict, small: dict) -> dict:
    """res (an onthefly_index result) with the per-row read rate past the per-task set-up.

    Two reads of the same tasks in fresh processes, from M and M/4 records per dataset:
    cpu = tasks * set-up + rows * per_row (a second read in the same process costs more per
    task: TF's function library has grown).
    """
    per_row = (res["read_cpu_s"] - small["read_cpu_s"]) / (res["rows_read"] - small["rows_read"])
    setup = (res["read_cpu_s"] - per_row * res["rows_read"]) / res["tasks"]
    stream_rate = res["examples_per_cpu_s"]
    return {**res, "small_rows_read": small["rows_read"], "small_read_cpu_s": small["read_cpu_s"],
            "read_setup_cpu_s_per_task": round(setup, 3),
            "read_marginal_examples_per_cpu_s": round(1 / per_row, 1),
            "steady_epoch_examples_per_cpu_s": round(1 / (per_row + 1 / stream_rate), 1)}


def _read_only(args, cores: int) -> dict:
    """Mode index_read: only the uncached index loader's read (no stream)."""
    from flan_trainer import index_mixture

    rows = index_mixture.read_rows(args.mixture, LENGTHS, workers=cores)
    t = rows.timings
    return {"mode": "index_read", "cores": cores, "rows_read": int(rows.counts.sum()),
            "read_cpu_s": round(t["read_cpu_s"], 2), "read_s": round(t["read_s"], 2)}


def _resume(args, cores: int) -> dict:
    from flan_trainer import data_checkpoint

    work = pathlib.Path(tempfile.mkdtemp(prefix="bench_resume_"))
    fp = {"benchmark": "resume"}
    out: dict = {"mode": "resume", "cores": cores, "resume_from": args.resume_from}
    # A resume builds its pipeline from scratch (for the index loader: reads the rows again).
    from_ = {"use_cached": args.resume_from.startswith("cache"), "index": args.resume_from == "cache_index"}
    try:
        it = iter(_dataset(args, cores, **from_)[0])
        out["late_batches"] = args.resume_batches
        for at, tag in ((0, "start"), (args.resume_batches, "late")):
            t0 = time.perf_counter()
            while out.get("consumed", 0) < at:
                next(it)
                out["consumed"] = out.get("consumed", 0) + 1
            if at:
                out["consume_s"] = round(time.perf_counter() - t0, 1)  # what a replay would redo
            t0 = time.perf_counter()
            assert data_checkpoint.save_iterator(it, data_checkpoint.data_dir(work / tag), 0, fp)
            out[f"save_s_{tag}"] = round(time.perf_counter() - t0, 2)
            out[f"state_mb_{tag}"] = round(data_checkpoint.read_fingerprint(work / tag, 0)["bytes"] / 1e6, 1)
            want = {k: v.numpy() for k, v in next(it).items()}
            out["consumed"] = out.get("consumed", 0) + 1
            t0 = time.perf_counter()
            fresh = iter(_dataset(args, cores, **from_)[0])
            why = data_checkpoint.restore_iterator(fresh, work / tag, 0, fp)
            got = {k: v.numpy() for k, v in next(fresh).items()}
            out[f"resume_s_{tag}"] = round(time.perf_counter() - t0, 2)
            out[f"exact_{tag}"] = why is None and all((want[k] == got[k]).all() for k in want)
        out["resume_ratio"] = round(out["resume_s_late"] / out["resume_s_start"], 2)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def worker(args) -> dict:
    args.cores = int(args.cores)
    _limit_tf(args.cores)
    import seqio

    from flan_tasks import batched, preprocessors
    from flan_tasks.flan import register_flan_collection
    from flan_tasks.flan.mock_data import mock_flan_tfds

    if args.mode == "baseline":
        preprocessors.render_choice_tf = _render_all_then_gather
        # ... and the previous per-example training preprocessors (flan_tasks/batched.py).
        batched.train_preprocessors = batched.per_example_train_preprocessors
    if args.cache_dir:
        seqio.add_global_cache_dirs([args.cache_dir])
    register_flan_collection(vocabulary=seqio.SentencePieceVocabulary(args.spm, extra_ids=100))
    with mock_flan_tfds(num_examples=args.mock_examples, realistic_lengths=True):
        if args.mode == "index_read":
            return _read_only(args, args.cores)
        return _resume(args, args.cores) if args.mode == "resume" else _throughput(args, args.cores, args.mode)


def build_cache(args) -> None:
    """Write the seqio offline cache of args.mixture from the same mock records, in this process.

    The same rows and files as flan_tasks/cache_beam.py (seqio's format: one shard per task, since
    the mock serves each split as one shard; info/stats JSON as seqio's GetInfo/GetStats write them;
    COMPLETED with the flan_tasks fingerprint), without Beam: the DirectRunner stalled here on 62
    tasks, and seqio cannot list the shards of TFDS names without a config ('paws_wiki:1.1.0'),
    which the Beam builder asks for.
    """
    import json

    import numpy as np
    import seqio
    import tensorflow as tf

    from flan_tasks import cache as cache_lib
    from flan_tasks.flan.mock_data import mock_flan_tfds

    config = cache_lib.SuiteConfig("flan", vocabulary=args.spm)
    with mock_flan_tfds(num_examples=args.mock_examples, realistic_lengths=True):
        config.register()
        names = cache_lib.training_tasks([args.mixture])
        for name in names:
            if cache_lib.is_completed(args.cache_dir, name):
                continue
            task, out = seqio.get_mixture_or_task(name), cache_lib.task_cache_dir(args.cache_dir, name)
            tf.io.gfile.makedirs(out)
            ds = task.preprocess_precache(task.source.get_dataset(split="train", shuffle=False), seed=None)
            stats: dict = {"examples": 0}
            features: dict = {}
            with tf.io.TFRecordWriter(seqio.get_cached_tfrecord_prefix(out, "train") + "-00000-of-00001") as w:
                for row in ds.as_numpy_iterator():
                    w.write(seqio.dict_to_tfexample(row).SerializeToString())
                    stats["examples"] += 1
                    for k, v in row.items():
                        v = np.asarray(v)
                        features[k] = {"shape": [None] + list(v.shape[1:]) if v.shape else [],
                                       "dtype": tf.as_dtype(v.dtype).name}
                        if k in task.output_features and v.dtype in (np.int32, np.int64):
                            n = int(np.sum((v != 1) & (v != 0)))  # seqio's count: not EOS, not padding
                            stats[f"{k}_tokens"] = stats.get(f"{k}_tokens", 0) + n
                            stats[f"{k}_max_tokens"] = max(stats.get(f"{k}_max_tokens", 0), n)
            info = {"num_shards": 1, "features": features, "seqio_version": seqio.__version__}
            for path, value in ((seqio.get_cached_info_path(out, "train"), info),
                                (seqio.get_cached_stats_path(out, "train"), stats)):
                with tf.io.gfile.GFile(path, "w") as f:
                    f.write(json.dumps(value))
            with tf.io.gfile.GFile(f"{out}/COMPLETED", "w") as f:
                f.write(json.dumps(cache_lib.fingerprint(name), sort_keys=True))
    print(f"cache of {len(names)} tasks in {args.cache_dir}", flush=True)


# ----------------------------------------------------------------------------- driver side


def _run_worker(args, mode: str, cores: int, *extra: str) -> dict:
    cpus = ",".join(str(c) for c in range(cores))
    cmd = ["taskset", "-c", cpus, sys.executable, __file__, "--worker", "--mode", mode, "--cores", str(cores),
           *args.passthrough, *extra]
    env = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        raise RuntimeError(f"{mode}/{cores} cores failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    res = json.loads(lines[-1])
    print(json.dumps(res), flush=True)
    return res


def _table(results: list[dict]) -> str:
    head = (f"{'mode':>11} {'cores':>5} {'examples/s':>11} {'tokens/s':>9} {'ex/cpu-s':>9} {'tok/cpu-s':>10} "
            f"{'ex/row':>6} {'fill':>5}")
    rows = [head] + [
        f"{r['mode']:>11} {r['cores']:>5} {r['examples_per_s']:>11} {r['tokens_per_s']:>9} "
        f"{r['examples_per_cpu_s']:>9} {r['tokens_per_cpu_s']:>10} {r['examples_per_row']:>6} {r['fill']:>5}"
        for r in results if "examples_per_s" in r]
    for r in results:
        if "read_s" in r:
            rows.append(f"{r['mode']} {r['cores']} core(s): read {r['rows_read']} rows in {r['read_s']} s "
                        f"({r['read_examples_per_s']} ex/s, {r['read_examples_per_cpu_s']} ex/cpu-s; pipelines "
                        f"built in {r['build_s']} s); one epoch: {r['epoch_examples_per_cpu_s']} ex/cpu-s")
        if "read_marginal_examples_per_cpu_s" in r:
            rows.append(f"  ... per row past the set-up ({r['read_setup_cpu_s_per_task']} cpu-s per task, from a "
                        f"second read of {r['small_rows_read']} rows): {r['read_marginal_examples_per_cpu_s']} "
                        f"ex/cpu-s; steady epoch: {r['steady_epoch_examples_per_cpu_s']} ex/cpu-s")
        if r["mode"] == "resume":
            rows.append(f"resume (1 core): {r['resume_s_start']} s at batch 0, {r['resume_s_late']} s after "
                        f"{r['late_batches']} batches (ratio {r['resume_ratio']}; replaying them took "
                        f"{r.get('consume_s')} s); state {r['state_mb_start']} / {r['state_mb_late']} MB; "
                        f"exact: {r['exact_start'] and r['exact_late']}")
    return "\n".join(rows)


def _ratios(results: list[dict]) -> dict:
    by = {(r["mode"], r["cores"]): r for r in results if "examples_per_s" in r}
    out = {}
    for mode in ("onthefly", "cache", "cache_old", "cache_index", "onthefly_index", "baseline"):
        if (mode, 1) in by and (mode, 2) in by:
            out[f"{mode}_2_over_1_cores"] = round(by[mode, 2]["tokens_per_s"] / by[mode, 1]["tokens_per_s"], 2)
            out[f"{mode}_2_over_1_cores_cpu_s"] = round(
                by[mode, 2]["tokens_per_cpu_s"] / by[mode, 1]["tokens_per_cpu_s"], 2)
    for cores in (1, 2):
        if ("cache", cores) in by and ("cache_old", cores) in by:
            for key in ("tokens_per_s", "tokens_per_cpu_s"):
                out[f"cache_over_cache_old_{key}_{cores}core"] = round(
                    by["cache", cores][key] / by["cache_old", cores][key], 2)
    for cores in (1, 2):
        if ("cache", cores) in by and ("cache_index", cores) in by:
            out[f"cache_index_over_cache_tokens_per_s_{cores}core"] = round(
                by["cache_index", cores]["tokens_per_s"] / by["cache", cores]["tokens_per_s"], 2)
    for cores in (1, 2):
        if ("onthefly", cores) in by and ("baseline", cores) in by:
            for key in ("examples_per_s", "examples_per_cpu_s"):
                out[f"onthefly_over_baseline_{key}_{cores}core"] = round(
                    by["onthefly", cores][key] / by["baseline", cores][key], 2)
        if ("onthefly_index", cores) in by and ("baseline", cores) in by:
            index, base = by["onthefly_index", cores], by["baseline", cores]["examples_per_cpu_s"]
            out[f"onthefly_index_epoch_over_baseline_examples_per_cpu_s_{cores}core"] = round(
                index["epoch_examples_per_cpu_s"] / base, 2)
            if "steady_epoch_examples_per_cpu_s" in index:
                out[f"onthefly_index_steady_epoch_over_baseline_examples_per_cpu_s_{cores}core"] = round(
                    index["steady_epoch_examples_per_cpu_s"] / base, 2)
    if ("onthefly_index", 1) in by and ("onthefly_index", 2) in by:
        out["onthefly_index_read_2_over_1_cores"] = round(
            by["onthefly_index", 1]["read_s"] / by["onthefly_index", 2]["read_s"], 2)
    return out


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spm", default=str(DEFAULT_SPM), help="T5 SentencePiece model path")
    parser.add_argument("--mixture", default="flan_all_train")
    parser.add_argument("--batch", type=int, default=8, help="packed rows per batch (one host)")
    # Enough batches that the timed window spans many 1024-example packing groups (seqio packs
    # padded batches of max(lengths) examples) and is not just the warm-up buffers draining.
    parser.add_argument("--batches", type=int, default=400, help="batches timed per setting")
    parser.add_argument("--min_seconds", type=float, default=10.0, help="least time timed per setting")
    parser.add_argument("--warmup", type=int, default=5, help="batches read before timing (fills buffers)")
    parser.add_argument("--mock_examples", type=int, default=64, help="mock records per dataset and split")
    parser.add_argument("--modes", default="baseline,onthefly,resume",
                        help="comma list of baseline, onthefly, onthefly_index, cache, cache_old, cache_index, resume "
                             "(cache*: --cache_dir)")
    parser.add_argument("--cores", default="1,2")
    parser.add_argument("--cache_dir", default="", help="seqio cache dir holding the flan tasks (cache mode)")
    parser.add_argument("--resume_batches", type=int, default=10_000)
    parser.add_argument("--resume_batch", type=int, default=1, help="host batch of the resume measurement")
    parser.add_argument("--resume_from", default="onthefly", choices=("onthefly", "cache", "cache_index"))
    parser.add_argument("--build_cache", action="store_true",
                        help="only build the offline cache of the mock data in --cache_dir")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="onthefly", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" / "flan_pipeline.json"))
    args = parser.parse_args(argv)
    if args.build_cache:
        build_cache(args)
        return None
    if args.worker:
        if args.mode == "resume":
            args.batch = args.resume_batch
        print(json.dumps(worker(args)), flush=True)
        return None
    args.passthrough = [f"--{k}={getattr(args, k)}" for k in (
        "spm", "mixture", "batch", "batches", "min_seconds", "warmup", "mock_examples", "cache_dir", "resume_batches",
        "resume_batch", "resume_from")]
    cores = [int(c) for c in args.cores.split(",")]
    from results_io import write_results  # benchmarks/ is on sys.path when run as a script

    needs_cache = any(m.startswith("cache") for m in args.modes.split(",")) or (
        "resume" in args.modes and args.resume_from.startswith("cache"))
    if needs_cache:
        if not args.cache_dir:
            raise SystemExit("error: the cache modes read an offline cache. Fix: pass --cache_dir=DIR "
                             "(built from the mock data on first use)")
        if not any(pathlib.Path(args.cache_dir).glob("*/COMPLETED")):
            subprocess.run([sys.executable, __file__, "--build_cache", *args.passthrough], check=True,
                           env={**os.environ, "PYTHONPATH": str(REPO)})
    results: list[dict] = []
    report: dict = {}
    for mode in args.modes.split(","):
        for n in ([1] if mode == "resume" else cores):
            res = _run_worker(args, mode, n)
            if mode == "onthefly_index" and args.mock_examples >= 8:
                small = _run_worker(args, "index_read", n, f"--mock_examples={args.mock_examples // 4}")
                res = _with_marginal_read(res, small)
            results.append(res)
            report = {
                "benchmark": "flan input pipeline: template + tokenize + pack 1024/256, mock TFDS data with "
                             "real length distributions (flan_tasks/flan/mock_data.FIELD_WORDS)",
                "mixture": args.mixture, "spm": args.spm, "batch_rows": args.batch,
                "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                            "load_avg": os.getloadavg()},
                "results": results, "ratios": _ratios(results),
            }
            write_results(report, args.out)  # after every setting: a long run keeps what it measured
    print(_table(results))
    print(json.dumps(report["ratios"]))
    return report


if __name__ == "__main__":
    main()
