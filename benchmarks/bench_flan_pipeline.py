"""Throughput of the flan input pipeline: the all-clusters training mixture through templating,
SentencePiece tokenisation and packing (inputs 1024 / targets 256), on offline mock TFDS data.

Mock records come from each builder's real feature spec but their texts are short (4-24 words),
so the numbers measure pipeline overhead per example rather than real-document tokenisation.
tf.data is limited to 1 and then 2 threads (private thread pool, intra-op parallelism 1).

    .venv/bin/python benchmarks/bench_flan_pipeline.py --spm /work/shared/vocab/t5_cc_all_32000.spiece.model
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import seqio  # noqa: E402
import tensorflow as tf  # noqa: E402
from results_io import write_results  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

from flan_tasks.flan import register_flan_collection  # noqa: E402
from flan_tasks.flan.mock_data import mock_flan_tfds  # noqa: E402

DEFAULT_SPM = pathlib.Path(__file__).resolve().parents[2] / "shared" / "vocab" / "t5_cc_all_32000.spiece.model"
LENGTHS = {"inputs": 1024, "targets": 256}


def build(mixture: str) -> tf.data.Dataset:
    return seqio.get_dataset(
        mixture,
        task_feature_lengths=LENGTHS,
        dataset_split="train",
        shuffle=False,
        num_epochs=None,
        seed=0,
        feature_converter=seqio.EncDecFeatureConverter(pack=True),
    )


def limit_threads(ds: tf.data.Dataset, cores: int) -> tf.data.Dataset:
    options = tf.data.Options()
    options.threading.private_threadpool_size = cores
    options.threading.max_intra_op_parallelism = 1
    return ds.with_options(options)


def measure(ds: tf.data.Dataset, rows: int, warmup: int) -> dict:
    it = ds.as_numpy_iterator()
    for _ in range(warmup):
        next(it)
    examples = target_tokens = input_tokens = 0
    start = time.perf_counter()
    for _ in range(rows):
        row = next(it)
        examples += int(row["decoder_segment_ids"].max())
        target_tokens += int(np.sum(row["decoder_loss_weights"]))
        input_tokens += int(np.sum(row["encoder_segment_ids"] > 0))
    seconds = time.perf_counter() - start
    return {
        "packed_rows": rows,
        "examples": examples,
        "seconds": round(seconds, 3),
        "examples_per_s": round(examples / seconds, 1),
        "target_tokens_per_s": round(target_tokens / seconds, 1),
        "input_tokens_per_s": round(input_tokens / seconds, 1),
        "examples_per_packed_row": round(examples / rows, 2),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spm", default=str(DEFAULT_SPM), help="T5 SentencePiece model path")
    parser.add_argument("--mixture", default="flan_all_train")
    parser.add_argument("--rows", type=int, default=200, help="packed rows timed per setting")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--mock-examples", type=int, default=64, help="mock records per dataset and split")
    parser.add_argument("--cores", default="1,2")
    parser.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" / "flan_pipeline.json"))
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    register_flan_collection(vocabulary=seqio.SentencePieceVocabulary(args.spm))
    register_s = time.perf_counter() - t0
    results = []
    with mock_flan_tfds(num_examples=args.mock_examples):
        for cores in [int(c) for c in args.cores.split(",")]:
            t0 = time.perf_counter()
            ds = limit_threads(build(args.mixture), cores)
            build_s = time.perf_counter() - t0
            res = {"cores": cores, "build_s": round(build_s, 2), **measure(ds, args.rows, args.warmup)}
            results.append(res)
            print(json.dumps(res), flush=True)

    report = {
        "benchmark": "flan input pipeline (template + tokenize + pack 1024/256), mock TFDS data",
        "mixture": args.mixture,
        "spm": args.spm,
        "register_s": round(register_s, 2),
        "machine": {"python": platform.python_version(), "tf": tf.__version__, "cpus": os.cpu_count()},
        "results": results,
    }
    header = f"{'cores':>5} {'examples/s':>11} {'target tok/s':>13} {'input tok/s':>12} {'ex/row':>7} {'build s':>8}"
    print(header)
    for r in results:
        print(f"{r['cores']:>5} {r['examples_per_s']:>11} {r['target_tokens_per_s']:>13} "
              f"{r['input_tokens_per_s']:>12} {r['examples_per_packed_row']:>7} {r['build_s']:>8}")
    write_results(report, args.out)
    return report


if __name__ == "__main__":
    main()
