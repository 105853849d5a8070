"""flan_trainer.distributed: where a multi-process job's description comes from, and a bounded
startup (a host that never arrives is a one-line error after the timeout, not a hang)."""

import json
import os
import pathlib
import subprocess
import sys
import time

import pytest

from flan_trainer import distributed
from flan_trainer.distributed import DistributedStartupError, detect

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_sources_in_order_flags_env_slurm_vertex():
    env = {"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "4", "JAX_PROCESS_ID": "3"}
    flags = {"coordinator_address": "f:2", "num_processes": 2, "process_id": 1}
    spec = detect(flags, env, detect_tpu=False, heartbeat_timeout_s=7)
    assert (spec.source, spec.coordinator_address, spec.num_processes, spec.process_id) == ("flags", "f:2", 2, 1)
    assert spec.heartbeat_timeout_s == 7
    assert detect({}, env, detect_tpu=False).source == "env"
    slurm = {"SLURM_JOB_ID": "9", "SLURM_NTASKS": "8", "SLURM_PROCID": "5", "SLURM_STEP_NODELIST": "n[1-2]"}
    spec = detect({}, slurm, detect_tpu=False)
    assert (spec.source, spec.num_processes, spec.process_id) == ("slurm", 8, 5)
    vertex = {"CLUSTER_SPEC": json.dumps({"cluster": {"workerpool0": ["chief:2222"], "workerpool1": ["w0:2222", "w1:2222"]},
                                          "task": {"type": "workerpool1", "index": 1}})}
    spec = detect({}, vertex, detect_tpu=False)
    assert (spec.source, spec.coordinator_address, spec.num_processes, spec.process_id) == ("vertex", "chief:8476", 3, 2)
    assert detect({}, {}, detect_tpu=False).source == "single"
    assert detect({}, {**env, "JAX_NUM_PROCESSES": "1", "JAX_PROCESS_ID": "0"}, detect_tpu=False).source == "single"


def test_partial_or_inconsistent_descriptions_are_refused():
    with pytest.raises(DistributedStartupError, match="JAX_PROCESS_ID"):
        detect({}, {"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "2"}, detect_tpu=False)
    with pytest.raises(DistributedStartupError, match="not in"):
        detect({"coordinator_address": "h:1", "num_processes": 2, "process_id": 2}, {}, detect_tpu=False)


def test_a_host_that_never_arrives_fails_within_the_timeout():
    address = f"127.0.0.1:{_free_port()}"
    code = ("from flan_trainer import distributed as d\n"
            f"spec = d.detect({{'coordinator_address': '{address}', 'num_processes': 2, 'process_id': 0}},"
            " {}, initialization_timeout_s=3, detect_tpu=False)\n"
            "d.initialize(spec)\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"}
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 5, proc.stderr[-2000:]
    assert "error: process 0 of 2 via flags" in proc.stderr and "within 3s" in proc.stderr, proc.stderr[-2000:]
    assert time.monotonic() - start < 90


def _free_port() -> int:
    from launch.local import free_port

    return free_port()


def test_single_process_initialize_is_a_no_op():
    distributed.initialize(detect({}, {}, detect_tpu=False))


FAILING_PEER = """
import sys, time
from flan_trainer import distributed as d
pid = int(sys.argv[2])
spec = d.detect({{'coordinator_address': sys.argv[1], 'num_processes': 2, 'process_id': pid}}, {{}},
                initialization_timeout_s=60, heartbeat_timeout_s=5, detect_tpu=False)
d.initialize(spec)
from jax.experimental import multihost_utils
with d.exit_on_lost_peer(spec, report=lambda e: print(f"error: {{e}}", file=sys.stderr) or 3):
    if pid == 0:
        raise ValueError("process 0 failed")  # e.g. a file it could not write before a checkpoint
    multihost_utils.sync_global_devices("never reached by process 0")
"""


def test_a_failing_process_exits_at_once_and_its_peer_does_not_hang():
    """Process 0 fails while process 1 waits for it in a barrier: process 0 must leave with its
    status instead of waiting for process 1 in jax's shutdown barrier (a deadlock), and process 1
    then stops too."""
    address = f"127.0.0.1:{_free_port()}"
    env = {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"}
    procs = [subprocess.Popen([sys.executable, "-c", FAILING_PEER.format(), address, str(i)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    try:
        outs = [p.communicate(timeout=60)[0] for p in procs]  # a bound on a hang, not a timing
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert procs[0].returncode == 3, outs[0][-2000:]
    assert "error: process 0 failed" in outs[0]
    assert procs[1].returncode != 0, outs[1][-2000:]
