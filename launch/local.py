"""Launch training on this machine: one process, or N local processes joined by jax.distributed.

    python -m launch.local --gin_file=runs/quickstart.gin --gin.MODEL_DIR="'runs/qs'"
    python -m launch.local --num_processes=2 --devices_per_process=4 --heartbeat_timeout_s=20 --gin_file=...

With several processes each gets JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID (read
by flan_trainer.distributed) and its own CPU devices: a faithful rehearsal of a multi-host job.
If one process dies, the others stop within the heartbeat timeout, naming it, and this launcher
stops the rest and returns non-zero; run it again and training resumes from the last checkpoint.
This is the plain-subprocess path (no XManager needed); `launch.xm_launch --executor=local
--num_processes=N` runs the same processes as one XManager work unit.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import IO

from launch.experiment import Job, job_from_args


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_env(process_id: int, num_processes: int, port: int, devices_per_process: int | None) -> dict[str, str]:
    """What process `process_id` of a local multi-process job needs to find the others."""
    env = {"JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}", "JAX_NUM_PROCESSES": str(num_processes),
           "JAX_PROCESS_ID": str(process_id), "JAX_PLATFORMS": "cpu"}
    if devices_per_process:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices_per_process}"
    return env


def start_processes(job: Job, num_processes: int, devices_per_process: int | None = None,
                    python: str = sys.executable, logs: Sequence[IO] | None = None) -> list[subprocess.Popen]:
    """Starts the job's processes (one, or `num_processes` joined by jax.distributed); process i
    writes to logs[i] when given."""
    argv = job.argv(python)
    out = (lambda i: {"stdout": logs[i], "stderr": subprocess.STDOUT}) if logs else (lambda i: {})
    if num_processes == 1:
        return [subprocess.Popen(argv, **out(0))]
    port = free_port()
    base = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    return [subprocess.Popen(argv, env={**base, **process_env(i, num_processes, port, devices_per_process)},
                             **out(i)) for i in range(num_processes)]


def wait_all(procs: Sequence[subprocess.Popen], grace_s: float = 30.0) -> int:
    """Waits for every process; once one fails, the rest get `grace_s` to stop by themselves (the
    survivors' own heartbeat timeout names the lost one), then are terminated. Worst exit code."""
    failed_at = None
    while any(p.poll() is None for p in procs):
        codes = [p.poll() for p in procs]
        if failed_at is None and any(c not in (None, 0) for c in codes):
            failed_at = time.monotonic()
        if failed_at is not None and time.monotonic() - failed_at > grace_s:
            for p in procs:
                if p.poll() is None:
                    p.terminate()
        time.sleep(0.2)
    codes = [p.returncode for p in procs]
    return max(codes, key=lambda c: (c != 0, abs(c)))


def run_local(job: Job, num_processes: int = 1, devices_per_process: int | None = None,
              dry_run: bool = False) -> int:
    """Runs `job` here; returns the worst exit code of its processes."""
    if dry_run:
        print(job.command())
        return 0
    return wait_all(start_processes(job, num_processes, devices_per_process))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num_processes", type=int, default=1)
    parser.add_argument("--devices_per_process", type=int, default=None)
    parser.add_argument("--name", default="local")
    parser.add_argument("--print_only", action="store_true", help="print the command instead of running it")
    args, rest = parser.parse_known_args(argv)
    job = job_from_args(args.name, rest)
    return run_local(job, args.num_processes, args.devices_per_process, args.print_only)


if __name__ == "__main__":
    sys.exit(main())
