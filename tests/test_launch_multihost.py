"""The launcher's multi-host path: two local processes train together; losing one stops the other
within the heartbeat timeout, naming the lost process; relaunching resumes from the checkpoint;
`python -m evals` then evaluates that checkpoint as two processes too."""

import json
import os
import pathlib
import re
import subprocess
import sys
import time

import pytest

from launch import local
from launch.experiment import job_from_args
from launch.local import free_port, process_env

HEARTBEAT_S = 10
TINY_NETWORK = f"--gin_file={pathlib.Path(__file__).parent / 'data' / 'tiny_network.gin'}"


def _complete_checkpoints(model_dir) -> list[int]:
    return sorted(int(p.name.split("_")[1]) for p in model_dir.glob("checkpoint_*") if p.name.split("_")[1].isdigit())


def _run(job, tmp_path, tag):
    logs = [open(tmp_path / f"{tag}{i}.log", "w") for i in range(2)]
    return local.start_processes(job, 2, devices_per_process=2, logs=logs), logs


def _stop(procs, logs):
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    for f in logs:
        f.close()


@pytest.mark.slow
def test_lost_process_stops_the_survivor_and_relaunch_resumes(tmp_path):
    model_dir = tmp_path / "model"
    job = job_from_args("mh", [
        "--gin_file=runs/quickstart.gin", TINY_NETWORK, f"--gin.MODEL_DIR='{model_dir}'", "--gin.TRAIN_STEPS=500",
        "--gin.BATCH_SIZE=8", "--gin.TASK_FEATURE_LENGTHS={'inputs': 64, 'targets': 16}",
        "--gin.CHECKPOINT_PERIOD=2", "--gin.train.eval_hooks=[]", f"--heartbeat_timeout_s={HEARTBEAT_S}",
        # The index loader here (tests/test_multihost.py runs the seqio loader on 2 processes): each
        # process reads its shard's rows, saves its iterator state, and restores it on relaunch.
        "--gin.input_loader.kind='index'",
        "--initialization_timeout_s=120", "--log_level=INFO"])
    procs, logs = _run(job, tmp_path, "run")
    try:
        deadline = time.monotonic() + 600  # a bound on a hang, not a timing
        while not _complete_checkpoints(model_dir) and time.monotonic() < deadline:
            assert all(p.poll() is None for p in procs), (tmp_path / "run0.log").read_text()[-3000:]
            time.sleep(0.5)
        assert _complete_checkpoints(model_dir), "no checkpoint within 600 s"
        procs[1].kill()
        killed = time.monotonic()
        code = procs[0].wait(timeout=HEARTBEAT_S + 60)
        elapsed = time.monotonic() - killed
    finally:
        _stop(procs, logs)
    survivor = (tmp_path / "run0.log").read_text()
    assert code != 0
    assert elapsed < HEARTBEAT_S + 30, f"survivor took {elapsed:.0f}s"
    # Named by our message when a collective with it failed first, else by jax's coordination
    # service, which stops the survivor once the lost process misses its heartbeats.
    assert re.search(r"lost process 1\b|Task 1 heartbeat timeout|stopped sending heartbeats\):\s*1\b",
                     survivor), survivor[-3000:]

    last = _complete_checkpoints(model_dir)[-1]
    resumed = job_from_args("mh", [*job.args()[2:]]).with_bindings(TRAIN_STEPS=last + 2)
    procs, logs = _run(resumed, tmp_path, "again")
    try:
        codes = [p.wait(timeout=600) for p in procs]
    finally:
        _stop(procs, logs)
    log = (tmp_path / "again0.log").read_text()
    assert codes == [0, 0], log[-3000:]
    assert f"starting at step {last} of {last + 2}" in log
    for i in range(2):  # both processes read their rows and restored their own saved position
        text = (tmp_path / f"again{i}.log").read_text()
        assert "index loader: read" in text and f"restored from its saved state at batch {last}" in text, text[-3000:]
    assert last + 2 in _complete_checkpoints(model_dir)

    _evaluate_on_two_processes(model_dir, tmp_path)


def _evaluate_on_two_processes(model_dir, tmp_path):
    """`python -m evals` on 2 processes x 2 devices: both join, each feeds its rows, only process 0
    writes the report (scores equal to one device are asserted in tests/test_multihost.py)."""
    out_dir = tmp_path / "eval"
    argv = [sys.executable, "-m", "evals", f"--checkpoint={model_dir}", "--cluster=nli", "--suite=embedded",
            "--gin_file=runs/quickstart.gin", TINY_NETWORK, "--max_examples=4", "--split=validation", "--batch_size=4",
            f"--output_dir={out_dir}"]
    port = free_port()
    logs = [open(tmp_path / f"eval{i}.log", "w") for i in range(2)]
    procs = [subprocess.Popen(argv, env={**{k: v for k, v in os.environ.items() if k != "XLA_FLAGS"},
                                         **process_env(i, 2, port, 2)},
                              stdout=logs[i], stderr=subprocess.STDOUT) for i in range(2)]
    try:
        codes = [p.wait(timeout=600) for p in procs]
    finally:
        _stop(procs, logs)
    texts = [(tmp_path / f"eval{i}.log").read_text() for i in range(2)]
    assert codes == [0, 0], texts[0][-3000:] + texts[1][-3000:]
    assert "wrote " in texts[0] and "wrote " not in texts[1]
    results = json.loads((out_dir / "results.json").read_text())
    assert results["run"]["compiled_programs"] >= 1
    assert [c["cluster"] for c in results["clusters"]] == ["nli"] and results["templates"]
    assert all(t["num_examples_validation"] == 4 for t in results["templates"])
