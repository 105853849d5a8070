"""Sweep over held-out clusters: one instruction-tuning run per cluster, the paper's protocol.

    python -m launch.sweep_held_out --suite=embedded --model_dir_root=runs/sweep \
        --gin_file=runs/quickstart.gin [--clusters=nli,sentiment] [--platform=local|print]

Each run trains on every cluster except the held-out one (and its overlaps), evaluates zero-shot
on the held-out cluster, and writes its report under MODEL_DIR_ROOT/<cluster>/. When all local
runs finish, their held-out cluster scores are collected into MODEL_DIR_ROOT/sweep_summary.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

import flan_tasks
from launch.experiment import Job, gin_string, held_out_sweep
from launch.local import run_local


def collect_summary(model_dir_root: str, clusters: Sequence[str]) -> dict:
    """Reads each run's results.json (written by evals) and keeps the held-out cluster scores."""
    summary = {}
    for cluster in clusters:
        path = os.path.join(model_dir_root, cluster, "eval", "results.json")
        if not os.path.exists(path):
            summary[cluster] = None
            continue
        with open(path) as f:
            results = json.load(f)
        summary[cluster] = results.get("clusters", {}).get(cluster)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="embedded", choices=["embedded", "flan"])
    parser.add_argument("--clusters", default=None, help="comma-separated; default: all of the suite")
    parser.add_argument("--model_dir_root", required=True)
    parser.add_argument("--platform", default="local", choices=["local", "print"])
    args, rest = parser.parse_known_args(argv)
    valid = flan_tasks.clusters(args.suite)
    clusters = args.clusters.split(",") if args.clusters else list(valid)
    unknown = [c for c in clusters if c not in valid]
    if unknown:
        parser.error(f"unknown cluster(s) {unknown} for suite {args.suite!r}; valid: {', '.join(valid)}")
    gin_files = tuple(a.split("=", 1)[1] for a in rest if a.startswith("--gin_file="))
    base = Job(name=f"sweep-{args.suite}", gin_files=gin_files,
               gin_overrides={"TASK_SUITE": gin_string(args.suite)},
               extra_flags=tuple(a for a in rest if not a.startswith("--gin_file=")))
    worst = 0
    for job in held_out_sweep(base, clusters, args.model_dir_root):
        worst = max(worst, run_local(job, dry_run=args.platform == "print"))
    if args.platform == "local":
        summary = collect_summary(args.model_dir_root, clusters)
        os.makedirs(args.model_dir_root, exist_ok=True)
        with open(os.path.join(args.model_dir_root, "sweep_summary.json"), "w") as f:
            json.dump(summary, f, indent=2)
        print(json.dumps(summary, indent=2))
    return worst


if __name__ == "__main__":
    sys.exit(main())
