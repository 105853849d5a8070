"""The launcher's multi-host path: two local processes train together; losing one stops the other
within the heartbeat timeout, naming the lost process; relaunching resumes from the checkpoint."""

import re
import time

import pytest

from launch import local
from launch.experiment import job_from_args

HEARTBEAT_S = 10


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
        "--gin_file=runs/quickstart.gin", f"--gin.MODEL_DIR='{model_dir}'", "--gin.TRAIN_STEPS=500",
        "--gin.BATCH_SIZE=8", "--gin.TASK_FEATURE_LENGTHS={'inputs': 64, 'targets': 16}",
        "--gin.CHECKPOINT_PERIOD=2", "--gin.train.eval_hooks=[]", f"--heartbeat_timeout_s={HEARTBEAT_S}",
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
    assert last + 2 in _complete_checkpoints(model_dir)
