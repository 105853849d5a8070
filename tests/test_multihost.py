"""Two real jax.distributed processes on CPU: per-host data shards, training, shared Orbax checkpoint."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(REPO, "tests", "multihost_worker.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_train_save_restore(tmp_path):
    port, model_dir = _free_port(), tmp_path / "model"
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["PYTHONPATH"] = REPO
    procs, logs = [], []
    for pid in range(2):
        log = open(tmp_path / f"worker{pid}.log", "w")
        logs.append(log)
        procs.append(subprocess.Popen(
            [sys.executable, WORKER, str(pid), str(port), str(model_dir), str(tmp_path / f"out{pid}.json")],
            env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT))
    try:
        codes = [p.wait(timeout=240) for p in procs]
    except subprocess.TimeoutExpired:
        codes = None
    finally:
        for p in procs:  # never leave a worker behind, even on failure
            if p.poll() is None:
                p.kill()
                p.wait()
        for log in logs:
            log.close()
    tails = "\n".join((tmp_path / f"worker{i}.log").read_text()[-3000:] for i in range(2))
    assert codes == [0, 0], f"workers exited with {codes}:\n{tails}"
    out = [json.loads((tmp_path / f"out{i}.json").read_text()) for i in range(2)]

    # Each host read its own shard; together they cover the global batch exactly once.
    assert [o["shard"] for o in out] == [[0, 2], [1, 2]]
    a, b = out[0]["first_batch"], out[1]["first_batch"]
    assert len(a) == len(b) == 4 and not set(a) & set(b)
    assert set(a) | set(b) == {f"ex {i}" for i in range(8)}
    # The computation was global: both hosts saw the same loss, and it went down.
    assert out[0]["losses"] == out[1]["losses"]
    assert out[0]["losses"][-1] < out[0]["losses"][0]
    # The shared checkpoint restored the trained values on both hosts, onto the new sharding.
    assert (model_dir / "checkpoint_3" / "state").is_dir()
    for o in out:
        np.testing.assert_allclose(o["restored_w"], out[0]["trained_w"], rtol=0, atol=0)
        assert o["restored_replicated"] and o["restored_step"] == 3
        assert o["data_state"]["steps"] == 3 and o["data_state"]["examples"] == 24
        # Resuming the pipeline at the saved position gives the batch the run would have seen next.
        assert o["resumed_batch"] == o["next_batch"]
    assert np.any(np.asarray(out[0]["trained_w"]) != 0)
