"""Launch training on this machine: one process, or N local processes joined by jax.distributed.

    python -m launch.local --gin_file=runs/quickstart.gin --gin.MODEL_DIR="'runs/qs'"
    python -m launch.local --num_processes=2 --devices_per_process=4 --gin_file=...

With several processes each gets JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID
(read by flan_trainer.main) and its own CPU devices: a faithful rehearsal of a multi-host job.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from collections.abc import Sequence

from launch.experiment import Job


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_local(job: Job, num_processes: int = 1, devices_per_process: int | None = None,
              dry_run: bool = False) -> int:
    """Runs `job` here; returns the worst exit code of its processes."""
    argv = job.argv(sys.executable)
    if dry_run:
        print(job.command())
        return 0
    if num_processes == 1:
        return subprocess.call(argv)
    port = _free_port()
    procs = []
    for pid in range(num_processes):
        env = dict(os.environ, JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
                   JAX_NUM_PROCESSES=str(num_processes), JAX_PROCESS_ID=str(pid), JAX_PLATFORMS="cpu")
        if devices_per_process:
            env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices_per_process}"
        procs.append(subprocess.Popen(argv, env=env))
    return max(p.wait() for p in procs)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num_processes", type=int, default=1)
    parser.add_argument("--devices_per_process", type=int, default=None)
    parser.add_argument("--name", default="local")
    parser.add_argument("--print_only", action="store_true", help="print the command instead of running it")
    args, rest = parser.parse_known_args(argv)
    gin_files = tuple(a.split("=", 1)[1] for a in rest if a.startswith("--gin_file="))
    extra = tuple(a for a in rest if not a.startswith("--gin_file="))
    job = Job(name=args.name, gin_files=gin_files, extra_flags=extra)
    return run_local(job, args.num_processes, args.devices_per_process, args.print_only)


if __name__ == "__main__":
    sys.exit(main())
