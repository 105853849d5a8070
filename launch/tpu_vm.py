"""Launch a job on every host of a Cloud TPU VM pod slice.

T5X users' most common pod failure is a job started on only some hosts: every host must run the
same command at the same time, or the collective initialisation hangs. This launcher emits one
`gcloud compute tpus tpu-vm ssh --worker=all` command that does exactly that (jax discovers the
coordinator and process ids on TPU VMs by itself), after checking the flags it can check here.

    python -m launch.tpu_vm --tpu=my-v4-64 --zone=us-central2-b --repo_dir=~/flan-jax \
        --gin_file=runs/finetune.gin --gin_file=held_out/nli.gin --gin.MODEL_DIR="'gs://b/nli'"

By default it prints the command; `--execute` runs it.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from collections.abc import Sequence

from launch.experiment import Job


def pod_command(job: Job, tpu: str, zone: str, repo_dir: str, project: str | None = None) -> list[str]:
    """The gcloud command that starts `job` on all workers of the TPU VM `tpu`."""
    remote = f"cd {shlex.quote(repo_dir)} && .venv/bin/{job.command('python')}"
    cmd = ["gcloud", "compute", "tpus", "tpu-vm", "ssh", tpu, f"--zone={zone}", "--worker=all",
           f"--command={remote}"]
    if project:
        cmd.insert(5, f"--project={project}")
    return cmd


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tpu", required=True, help="TPU VM name")
    parser.add_argument("--zone", required=True)
    parser.add_argument("--project", default=None)
    parser.add_argument("--repo_dir", default="~/flan-jax", help="checkout on every host (set up with scripts/setup_env.sh)")
    parser.add_argument("--execute", action="store_true", help="run the command instead of printing it")
    args, rest = parser.parse_known_args(argv)
    gin_files = tuple(a.split("=", 1)[1] for a in rest if a.startswith("--gin_file="))
    if not gin_files:
        parser.error("give at least one --gin_file (e.g. --gin_file=runs/finetune.gin)")
    if not any(a.startswith("--gin.MODEL_DIR=") for a in rest):
        parser.error("set --gin.MODEL_DIR to a location every host can write (e.g. a gs:// bucket)")
    job = Job(name=args.tpu, gin_files=gin_files, extra_flags=tuple(a for a in rest if not a.startswith("--gin_file=")))
    cmd = pod_command(job, args.tpu, args.zone, args.repo_dir, args.project)
    if not args.execute:
        print(shlex.join(cmd))
        return 0
    return subprocess.call(cmd)


if __name__ == "__main__":
    sys.exit(main())
