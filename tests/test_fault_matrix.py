"""Fault matrix: what a run does when its checkpoints, config, disk or process go wrong.

Every case asserts the exit status, one readable `error: <cause>. Fix: ...` line, and that no
checkpoint already written was lost or changed. One finished tiny run (tests/data/tiny_train.gin,
checkpoints 4 and 8) is made once per module and copied for each case. Cases that need no kill run
the command line's `main()` in this process (the same code as `python -m flan_trainer`, without
paying for a new process); kills run `python -m flan_trainer` as a subprocess.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import gin
import jax
import numpy as np
import pytest
import tensorstore as ts

from flan_trainer import checkpoints, gin_utils, restore_fallback

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY_GIN = REPO / "tests" / "data" / "tiny_train.gin"
BAD_ARRAY = "params/decoder/logits_dense/kernel"


# ----------------------------------------------------------------------------- helpers


@pytest.fixture
def clean_gin():
    gin.clear_config()
    yield
    gin.clear_config()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> pathlib.Path:
    """A finished 8-step tiny run with checkpoints 4 and 8 (made in this process, once)."""
    from flan_trainer.train import train

    model_dir = tmp_path_factory.mktemp("finished") / "run"
    gin.clear_config()
    gin_utils.parse_gin([str(TINY_GIN)], [f"MODEL_DIR = '{model_dir}'"])
    try:
        assert train().final_step == 8
    finally:
        gin.clear_config()
    assert checkpoints.complete_steps(model_dir) == [4, 8]
    assert (model_dir / "checkpoint_8" / checkpoints.INTEGRITY_ITEM).is_dir()
    return model_dir


def _copy(src: pathlib.Path, dst: pathlib.Path) -> pathlib.Path:
    shutil.copytree(src, dst)
    return dst


def tree_hash(root: pathlib.Path) -> str:
    """One hash over every file's relative path and bytes (and every directory's name)."""
    h, root = hashlib.sha256(), pathlib.Path(root)
    for path in sorted(root.rglob("*")):
        h.update(str(path.relative_to(root)).encode())
        if path.is_file():
            h.update(path.read_bytes())
    return h.hexdigest()


def _error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, f"expected one 'error:' line in:\n{output[-4000:]}"
    assert "Fix:" in lines[0], lines[0]
    return lines[0]


def _chunk_location(state_dir: pathlib.Path, array: str) -> tuple[pathlib.Path, int, int]:
    """(data file, offset, length) of the first stored chunk of `array` ('params/a/b') in an OCDBT item."""
    kv = ts.KvStore.open({"driver": "ocdbt", "base": f"file://{state_dir}/"}).result()
    key = next(k for k in kv.list().result() if k.startswith(array.replace("/", ".").encode() + b"/0"))
    value = kv.read(key).result().value
    for path in sorted(state_dir.rglob("*")):
        if path.is_file() and (offset := path.read_bytes().find(value)) >= 0:
            return path, offset, len(value)
    raise AssertionError(f"chunk {key!r} not found in the files of {state_dir}")


def flip_bytes(state_dir: pathlib.Path, array: str, count: int = 8) -> pathlib.Path:
    """Inverts `count` bytes in the middle of one stored chunk of `array`; returns the file."""
    path, offset, length = _chunk_location(state_dir, array)
    data = bytearray(path.read_bytes())
    middle = offset + length // 2
    for i in range(middle, middle + count):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


# ----------------------------------------------------------------------------- damaged checkpoints


@pytest.mark.slow
def test_bit_flip_in_latest_checkpoint_stops_then_falls_back(tmp_path, finished_run, cli):
    """The issue's scenario: flip bytes of one array of checkpoint_8, rerun with more steps."""
    model_dir = _copy(finished_run, tmp_path / "run")
    flip_bytes(model_dir / "checkpoint_8" / "state", BAD_ARRAY)
    before = tree_hash(model_dir)
    damaged_8 = tree_hash(model_dir / "checkpoint_8")
    intact_4 = tree_hash(model_dir / "checkpoint_4")

    rc, output = cli(model_dir, "--gin.TRAIN_STEPS=12")
    assert rc == 3, output[-4000:]
    line = _error_line(output)
    assert str(model_dir / "checkpoint_8") in line and BAD_ARRAY in line, line
    assert "--gin.RESTORE_FALLBACK=True" in line and "checkpoint_4" in line, line
    assert "Traceback" not in output
    assert tree_hash(model_dir) == before  # nothing modified, not even config.gin

    rc, output = cli(model_dir, "--gin.TRAIN_STEPS=12", "--gin.RESTORE_FALLBACK=True")
    assert rc == 0, output[-4000:]
    assert "finished at step 12 (completed); started at 4" in output, output[-3000:]
    assert f"RESTORE_FALLBACK: checkpoint {model_dir / 'checkpoint_8'} is damaged" in output
    assert f"resumed from {model_dir / 'checkpoint_4'}" in output
    assert checkpoints.complete_steps(model_dir) == [4, 8, 12]
    assert tree_hash(model_dir / "checkpoint_4") == intact_4
    (moved,) = (model_dir / restore_fallback.DAMAGED_DIR).iterdir()
    assert moved.name.startswith("checkpoint_8.") and tree_hash(moved) == damaged_8  # kept, not deleted


def test_truncated_array_file_names_the_arrays(tmp_path, finished_run, cli):
    model_dir = _copy(finished_run, tmp_path / "run")
    path, offset, length = _chunk_location(model_dir / "checkpoint_8" / "state", BAD_ARRAY)
    with open(path, "r+b") as f:
        f.truncate(offset + length // 2)
    before = tree_hash(model_dir)
    rc, output = cli(model_dir)
    assert rc == 3, output[-4000:]
    line = _error_line(output)
    assert "checkpoint_8 is damaged" in line and BAD_ARRAY in line, line
    assert tree_hash(model_dir) == before


def test_checkpoint_of_another_model_size(tmp_path, finished_run, cli):
    model_dir = _copy(finished_run, tmp_path / "run")
    before = tree_hash(model_dir)
    rc, output = cli(model_dir, "--gin.network.T5Config.mlp_dim=128")
    assert rc == 3, output[-4000:]
    line = _error_line(output)
    assert "checkpoint_8 does not match the model" in line, line
    assert "decoder/layers_0/mlp/wi_0/kernel: model expects shape (32, 128)" in output
    assert tree_hash(model_dir) == before


def test_checkpoint_with_another_vocabulary_size(tmp_path, finished_run, cli):
    model_dir = _copy(finished_run, tmp_path / "run")
    before = tree_hash(model_dir)
    rc, output = cli(model_dir, "--gin.NUM_EMBEDDINGS=512")
    assert rc == 3, output[-4000:]
    _error_line(output)
    assert "token_embedder/embedding: model expects shape (512, 32)" in output, output[-3000:]
    assert tree_hash(model_dir) == before


# ----------------------------------------------------------------------------- configuration


def test_gin_syntax_error_and_unknown_binding(tmp_path, finished_run, cli):
    model_dir = _copy(finished_run, tmp_path / "run")
    before = tree_hash(model_dir)
    bad = tmp_path / "bad.gin"
    bad.write_text(f"include '{TINY_GIN}'\nTRAIN_STEPS = = 12\n")
    rc, output = cli(model_dir, gin_files=(bad,))
    assert rc == 2, output[-4000:]
    line = _error_line(output)
    assert f"gin syntax error in {bad} line 2" in line or ("bad.gin" in line and "line 2" in line), line

    rc, output = cli(model_dir, "--gin.train.batchsize=4")
    assert rc == 2, output[-4000:]
    line = _error_line(output)
    assert "doesn't have a parameter named 'batchsize'" in line, line
    rc, output = cli(model_dir, "--gin.trian.batch_size=4")
    assert rc == 2 and "No configurable matching 'trian'" in _error_line(output)
    assert "Traceback" not in output
    assert tree_hash(model_dir) == before


# ----------------------------------------------------------------------------- file system


@pytest.fixture
def tmpfs(tmp_path):
    """mount(size) -> a fresh tmpfs of that many bytes (skips where mounting is not allowed)."""
    mounted = []

    def mount(size: int, name: str = "mnt") -> pathlib.Path:
        point = tmp_path / name
        point.mkdir()
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or proc.returncode})")
        mounted.append(point)
        return point

    yield mount
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], check=False)


def _remount_read_only(point: pathlib.Path) -> None:
    proc = subprocess.run(["mount", "-o", "remount,ro", str(point)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot remount {point} read-only: {proc.stderr.strip()}")


def _du(root: pathlib.Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def test_unwritable_model_dir(tmp_path, finished_run, cli, tmpfs):
    """A MODEL_DIR on a file system that became read-only: stop before training, say where and why."""
    point = tmpfs(64 << 20)
    model_dir = _copy(finished_run, point / "run")
    before = tree_hash(model_dir)
    _remount_read_only(point)
    rc, output = cli(model_dir, "--gin.TRAIN_STEPS=12")
    assert rc == 4, output[-4000:]
    line = _error_line(output)
    assert f"cannot write to {model_dir}" in line and "read-only file system" in line, line
    assert "Checkpoints already there are intact: [4, 8]" in line, line
    assert "Traceback" not in output
    assert tree_hash(model_dir) == before


@pytest.mark.slow
def test_disk_full_while_saving_keeps_earlier_checkpoints(tmp_path, finished_run, cli, tmpfs):
    """A disk with room for the run's small files but not for another checkpoint."""
    room = 256 << 10
    point = tmpfs(((_du(finished_run) + room) // 4096 + 1) * 4096)
    model_dir = _copy(finished_run, point / "run")
    ckpt_hashes = {s: tree_hash(checkpoints.step_dir(model_dir, s)) for s in (4, 8)}
    rc, output = cli(model_dir, "--gin.TRAIN_STEPS=12")
    assert rc == 4, output[-4000:]
    line = _error_line(output)
    assert "no space left on device" in line and "Checkpoints already there are intact: [4, 8]" in line, line
    assert checkpoints.complete_steps(model_dir) == [4, 8]
    assert {s: tree_hash(checkpoints.step_dir(model_dir, s)) for s in (4, 8)} == ckpt_hashes


# ----------------------------------------------------------------------------- kills


@gin.configurable
def stall_hook(ctx, step, params, final):
    """Eval hook for the kill tests: at a step whose `stall_<step>` file exists in the directory
    $FAULT_CONTROL_DIR, creates `stalled_<step>` and waits (an evaluation in progress) until
    `release` exists or 120 s pass. Hooks run after that step's checkpoint (if any) is saved."""
    del ctx, params, final
    control = pathlib.Path(os.environ["FAULT_CONTROL_DIR"])
    if not (control / f"stall_{step}").exists():
        return None
    (control / f"stalled_{step}").touch()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (control / "release").exists():
        time.sleep(0.05)
    return None


def _env(jax_cache: pathlib.Path, control: pathlib.Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3", FAULT_CONTROL_DIR=str(control),
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO / "tests"), str(REPO), env.get("PYTHONPATH")) if p),
        JAX_COMPILATION_CACHE_DIR=str(jax_cache), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
    )
    env.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
    return env


def _wait_for(predicate, proc: subprocess.Popen, log: pathlib.Path, what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            pytest.fail(f"run exited ({proc.returncode}) before {what}:\n{log.read_text()[-4000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} after {timeout} s:\n{log.read_text()[-4000:]}")
        time.sleep(0.02)


def _kill(proc: subprocess.Popen) -> None:
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL


LAST = 20  # the kill runs' TRAIN_STEPS: room for checkpoints 16 and 20 after the kills at 12 and 13


@pytest.mark.slow
def test_sigkill_during_init_evaluation_and_steps_loses_no_checkpoint(tmp_path, finished_run):
    """SIGKILL at three points of a resumed run; after each, every complete checkpoint is intact,
    and a last run resumes from the newest one and finishes."""
    model_dir = _copy(finished_run, tmp_path / "run")
    # The suite's compilation cache (tests/conftest.py) if any: finished_run compiled these programs.
    control = tmp_path / "control"
    jax_cache = pathlib.Path(os.environ.get("JAX_COMPILATION_CACHE_DIR") or tmp_path / "jax_cache")
    control.mkdir()
    run_gin = tmp_path / "stall.gin"
    run_gin.write_text(f"include '{TINY_GIN}'\nimport test_fault_matrix\n"
                       "train.eval_hooks = [@test_fault_matrix.stall_hook]\nEVAL_PERIOD = 1\n")
    cmd = [sys.executable, "-m", "flan_trainer", f"--gin_file={run_gin}", f"--gin.MODEL_DIR='{model_dir}'",
           f"--gin.TRAIN_STEPS={LAST}"]
    hashes = {s: tree_hash(checkpoints.step_dir(model_dir, s)) for s in (4, 8)}

    def start(name: str) -> tuple[subprocess.Popen, pathlib.Path]:
        log = tmp_path / f"{name}.log"
        with open(log, "w") as out:
            return subprocess.Popen(cmd, env=_env(jax_cache, control), cwd=tmp_path, stdout=out,
                                    stderr=subprocess.STDOUT), log

    def assert_kept() -> None:
        for step, digest in hashes.items():
            assert tree_hash(checkpoints.step_dir(model_dir, step)) == digest, f"checkpoint_{step} changed"

    # 1. During start-up (imports, model and state set-up, restore): nothing on disk changes.
    before = tree_hash(model_dir)
    proc, log = start("init")
    time.sleep(3.0)
    _kill(proc)
    assert "starting at step" not in log.read_text()
    assert tree_hash(model_dir) == before

    # 2. During an evaluation, after checkpoint 12 was saved.
    (control / "stall_12").touch()
    proc, log = start("eval")
    _wait_for(lambda: (control / "stalled_12").exists(), proc, log, "the evaluation at step 12")
    _kill(proc)
    assert checkpoints.complete_steps(model_dir) == [4, 8, 12]
    assert_kept()
    hashes[12] = tree_hash(checkpoints.step_dir(model_dir, 12))

    # 3. During training steps (and periodic saves): released after step 13, killed moments later.
    (control / "stall_12").unlink()
    (control / "stall_13").touch()
    proc, log = start("steps")
    _wait_for(lambda: (control / "stalled_13").exists(), proc, log, "step 13")
    assert f"resumed from {checkpoints.step_dir(model_dir, 12)}" in log.read_text()
    (control / "release").touch()
    time.sleep(0.3)
    _kill(proc)
    steps = checkpoints.complete_steps(model_dir)
    assert steps[:3] == [4, 8, 12] and set(steps) <= set(range(4, LAST + 1, 4)), steps
    assert_kept()

    # 4. A plain rerun resumes from the newest complete checkpoint and finishes.
    (control / "stall_13").unlink()
    proc, log = start("final")
    assert proc.wait(timeout=600) == 0, log.read_text()[-4000:]
    assert f"finished at step {LAST} (completed); started at {steps[-1]}" in log.read_text()
    assert checkpoints.complete_steps(model_dir) == list(range(4, LAST + 1, 4))
    assert_kept()


ASYNC_WRITER = """
import sys
import numpy as np
from flan_trainer import checkpoints
mgr = checkpoints.CheckpointManager(sys.argv[1], period=1, async_save=True)
mgr.save(1, {"w": np.arange(16, dtype=np.float32)})
print("saved 1", flush=True)
mgr.save(2, {"w": np.random.default_rng(0).random(16 << 20, dtype=np.float32)})
print("saved 2", flush=True)
"""


def test_sigkill_during_async_checkpoint_write(tmp_path):
    model_dir = tmp_path / "run"
    log = tmp_path / "writer.log"
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-c", ASYNC_WRITER, str(model_dir)], env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        _wait_for(lambda: "saved 1" in log.read_text(), proc, log, "the first checkpoint", timeout=120)
        kept = tree_hash(model_dir / "checkpoint_1")
        _wait_for(lambda: any(p.name.startswith("checkpoint_2") for p in model_dir.iterdir()), proc, log,
                  "the second checkpoint's write", timeout=120)
        _kill(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "saved 2" not in log.read_text()
    assert checkpoints.complete_steps(model_dir) == [1]  # the half-written step is not taken for one
    assert tree_hash(model_dir / "checkpoint_1") == kept
    with checkpoints.CheckpointManager(model_dir, period=1) as mgr:  # cleans up the leftover
        assert mgr.latest_step() == 1
        one = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        restored, _ = mgr.restore(None, {"w": jax.ShapeDtypeStruct((16,), np.float32, sharding=one)})
    np.testing.assert_array_equal(np.asarray(restored["w"]), np.arange(16, dtype=np.float32))
    assert sorted(p.name for p in model_dir.iterdir()) == ["checkpoint_1"]


# ----------------------------------------------------------------------------- fingerprints


def test_fingerprint_is_mesh_independent_and_sees_every_single_bit():
    from flan_trainer import checkpoint_integrity as integrity

    rng = np.random.default_rng(0)
    tree = {"w": rng.normal(size=(16, 8)).astype(np.float32), "b": rng.normal(size=(8,)).astype(jax.numpy.bfloat16),
            "n": np.arange(5, dtype=np.int32)}
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:8]).reshape(4, 2), ("data", "model"))
    spec = {"w": jax.sharding.PartitionSpec("data", "model"), "b": jax.sharding.PartitionSpec("model"),
            "n": jax.sharding.PartitionSpec()}
    sharded = jax.tree.map(lambda x, s: jax.device_put(x, jax.sharding.NamedSharding(mesh, s)), tree, spec)
    want = integrity.fingerprints(tree)
    assert integrity.fingerprints(sharded) == want
    flat = tree["w"].view(np.uint32).reshape(-1)
    for index, bit in ((0, 0), (77, 31), (127, 12)):
        flipped = flat.copy()
        flipped[index] ^= np.uint32(1 << bit)
        got = integrity.fingerprints({**tree, "w": flipped.view(np.float32).reshape(16, 8)})
        assert got["w"] != want["w"] and got["b"] == want["b"]
    with pytest.raises(integrity.CheckpointCorruptError, match=r"checkpoint /x is damaged: 1 array\(s\).*: w "):
        integrity.verify("/x", {**tree, "w": tree["w"] + 1}, integrity.manifest(tree))
