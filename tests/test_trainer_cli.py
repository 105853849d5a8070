"""The trainer through its command line (`python -m flan_trainer`), and the gin plumbing.

Real runs of a very small model (tests/data/tiny_train.gin) on the embedded suite with the `nli`
cluster held out. The fault tests follow ONE run through its faults, as subprocesses of the CLI
(`interrupted` below): it is preempted (SIGTERM) after its first checkpoint, restarted with the same
command, killed (SIGKILL) after a later checkpoint, restarted again to the end; its per-step losses,
as the user sees them in TensorBoard, are compared with those of the same run uninterrupted. The
subprocesses share a persistent JAX compilation cache so that only the first one pays for compiling
the train step.
"""

from __future__ import annotations

import os
import pathlib
import re
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import gin
import numpy as np
import pytest

import flan_tasks
from flan_trainer import checkpoints, gin_utils

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY_GIN = REPO / "tests" / "data" / "tiny_train.gin"
PAUSE_GIN = REPO / "tests" / "data" / "pause_after_checkpoint.gin"
N, HALF = 8, 4  # TRAIN_STEPS and CHECKPOINT_PERIOD in tiny_train.gin
PAUSES = (3, 6)  # CHECKPOINT_PERIOD 3 and the pause steps in pause_after_checkpoint.gin
RUN_TIMEOUT = 300
FINISHED_RE = re.compile(r"finished at step (\d+) \((\w+)\); started at (\d+) \(([^)]*)\)")


@gin.configurable
def pause_hook(ctx, step, params, final, pause_at_steps=gin.REQUIRED, max_seconds=120.0):
    """Eval hook (see tests/data/pause_after_checkpoint.gin): holds the run at each of `pause_at_steps`.

    Hooks run after that step's checkpoint is saved and its input pipeline state moved into place.
    The hook marks MODEL_DIR/paused_<step> on arrival, so a test that sees the mark signals the
    process at a known point (seeing the orbax checkpoint alone is earlier: the pipeline state is
    published after it). Creating MODEL_DIR/release_<step> lets the run go on.
    """
    del params, final
    if step not in pause_at_steps:
        return None
    (pathlib.Path(ctx.model_dir) / f"paused_{step}").touch()
    release = pathlib.Path(ctx.model_dir) / f"release_{step}"
    deadline = time.monotonic() + max_seconds
    while time.monotonic() < deadline and not release.exists():
        time.sleep(0.05)
    return None


# ----------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def jax_cache(tmp_path_factory) -> pathlib.Path:
    """The suite's persistent compilation cache (tests/conftest.py), where in-process tests may
    already have compiled the tiny run's programs, else one of this module's own: the restart
    test needs one either way."""
    shared = os.environ.get("JAX_COMPILATION_CACHE_DIR")
    return pathlib.Path(shared) if shared else tmp_path_factory.mktemp("jax_cache")


@pytest.fixture
def clean_gin():
    gin.clear_config()
    yield
    gin.clear_config()


def _env(jax_cache: pathlib.Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        JAX_PLATFORMS="cpu",
        TF_CPP_MIN_LOG_LEVEL="3",
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO / "tests"), str(REPO), env.get("PYTHONPATH")) if p),
        JAX_COMPILATION_CACHE_DIR=str(jax_cache),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
    )
    # The same virtual device count as the in-process tests (tests/conftest.py), so the same mesh.
    env.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
    return env


def _cli(model_dir: pathlib.Path, *extra: str, gin_files=(TINY_GIN,)) -> list[str]:
    return [sys.executable, "-m", "flan_trainer", *[f"--gin_file={g}" for g in gin_files],
            f"--gin.MODEL_DIR='{model_dir}'", *extra]


def _run(cmd: list[str], jax_cache: pathlib.Path, cwd: pathlib.Path,
         timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=_env(jax_cache), cwd=cwd, capture_output=True, text=True, timeout=timeout)


def _run_ok(cmd, jax_cache, cwd) -> subprocess.CompletedProcess:
    proc = _run(cmd, jax_cache, cwd)
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{proc.stderr[-4000:]}"
    return proc


def _finished(stderr: str) -> tuple[int, str, int, str]:
    """(final_step, stopped_by, start_step, source) from the CLI's last log line."""
    match = FINISHED_RE.findall(stderr)
    assert match, f"no 'finished at step' line in:\n{stderr[-3000:]}"
    final, how, start, source = match[-1]
    return int(final), how, int(start), source


def _event_files(model_dir: pathlib.Path) -> list[pathlib.Path]:
    return sorted(model_dir.glob("events.out.tfevents.*"), key=lambda p: p.stat().st_mtime)


def _file_losses(path: pathlib.Path) -> dict[int, float]:
    """The `loss` scalars of one TensorBoard event file, by step (what TensorBoard shows)."""
    import tensorflow as tf

    losses = {}
    for event in tf.compat.v1.train.summary_iterator(str(path)):
        for value in event.summary.value:
            if value.tag == "loss":
                losses[int(event.step)] = float(tf.make_ndarray(value.tensor))
    return losses


def _logged_losses(model_dir: pathlib.Path) -> dict[int, float]:
    """Per-step losses over all of MODEL_DIR's event files; a later file wins for a step."""
    merged: dict[int, float] = {}
    for path in _event_files(model_dir):
        merged.update(_file_losses(path))
    return merged


def _wait_for_pause(model_dir: pathlib.Path, step: int, proc: subprocess.Popen, log: pathlib.Path,
                    timeout: float = RUN_TIMEOUT) -> None:
    """Until the run waits in pause_hook after checkpoint `step` (its save wholly done)."""
    deadline = time.monotonic() + timeout
    while not (model_dir / f"paused_{step}").exists():
        if proc.poll() is not None:
            pytest.fail(f"run exited ({proc.returncode}) before pausing at {step}:\n{log.read_text()[-4000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"no pause after checkpoint_{step} in {timeout} s:\n{log.read_text()[-4000:]}")
        time.sleep(0.1)
    assert step in checkpoints.complete_steps(model_dir)


def _start(cmd, jax_cache, cwd: pathlib.Path, log: pathlib.Path) -> subprocess.Popen:
    # Output to a file, not a pipe: nobody reads a pipe while we wait, and a full one blocks the run.
    with open(log, "w") as out:
        return subprocess.Popen(cmd, env=_env(jax_cache), cwd=cwd, stdout=out, stderr=subprocess.STDOUT)


def _assert_same_losses(got: dict[int, float], want: dict[int, float], steps) -> None:
    steps = list(steps)
    assert set(steps) <= set(got), f"steps {steps} not all logged: have {sorted(got)}"
    np.testing.assert_allclose([got[s] for s in steps], [want[s] for s in steps], rtol=1e-6, atol=0)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:  # never leave a run behind, even on failure
        proc.kill()
        proc.wait()


def _signal_at_pause(cmd, jax_cache, work: pathlib.Path, name: str, step: int, sig: int) -> tuple[int, str]:
    """Starts `cmd`, waits for checkpoint `step` (the run then pauses), sends `sig`; (exit status, log).

    After SIGTERM the run is released, so it goes on to see the flag after the next step.
    """
    model_dir, log = _model_dir(cmd), work / f"{name}.log"
    proc = _start(cmd, jax_cache, work, log)
    try:
        _wait_for_pause(model_dir, step, proc, log)
        proc.send_signal(sig)
        if sig == signal.SIGTERM:
            (model_dir / f"release_{step}").touch()
        rc = proc.wait(timeout=120)
    finally:
        _stop(proc)
    return rc, log.read_text()


def _model_dir(cmd: list[str]) -> pathlib.Path:
    (arg,) = [a for a in cmd if a.startswith("--gin.MODEL_DIR=")]
    return pathlib.Path(arg.split("=", 1)[1].strip("'"))


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory, jax_cache) -> SimpleNamespace:
    """One N-step run through its faults, each phase a `python -m flan_trainer` process with the same
    command (tiny_train.gin + pause_after_checkpoint.gin, RANDOM_SEED=None):

      preempted: waits after checkpoint 3, gets SIGTERM, stops after step 4 with exit 0;
      killed:    the restart, resumes at 4, waits after checkpoint 6, gets SIGKILL;
      restarted: resumes at 6 and finishes at N;
    then the reference: the same run uninterrupted (tiny_train.gin alone) with the seed the first
    process drew. RANDOM_SEED=None (time-based) on purpose: every resumed run must take the data
    order and the dropout rngs from the seed saved with the checkpoint, not draw a new one.
    What each phase left behind is recorded here and asserted by the tests below.
    """
    work = tmp_path_factory.mktemp("interrupted")
    model_dir = work / "run"
    cmd = _cli(model_dir, "--gin.RANDOM_SEED=None", gin_files=(TINY_GIN, PAUSE_GIN))
    run = SimpleNamespace(model_dir=model_dir)

    run.preempted_rc, run.preempted_log = _signal_at_pause(cmd, jax_cache, work, "preempted", PAUSES[0],
                                                           signal.SIGTERM)
    assert run.preempted_rc == 0, run.preempted_log[-4000:]
    run.preempted_steps = checkpoints.complete_steps(model_dir)
    run.preempted_data_state = checkpoints.read_data_state(checkpoints.step_dir(model_dir, PAUSES[0] + 1))
    run.seed = run.preempted_data_state["seed"]

    run.killed_rc, run.killed_log = _signal_at_pause(cmd, jax_cache, work, "killed", PAUSES[1], signal.SIGKILL)
    run.killed_steps = checkpoints.complete_steps(model_dir)
    run.restart = _run_ok(cmd, jax_cache, work)
    run.restart_events = _file_losses(_event_files(model_dir)[-1])  # the restart's own event file

    run.reference_dir = work / "reference"
    proc = _run_ok(_cli(run.reference_dir, f"--gin.RANDOM_SEED={run.seed}"), jax_cache, work)
    assert _finished(proc.stderr)[:3] == (N, "completed", 0)
    run.reference_losses = _logged_losses(run.reference_dir)
    assert sorted(run.reference_losses) == list(range(1, N + 1))
    assert all(np.isfinite(list(run.reference_losses.values())))
    assert checkpoints.complete_steps(run.reference_dir) == [HALF, N]
    return run


# ----------------------------------------------------------------------------- runs


def test_unknown_held_out_cluster_fails_fast_through_cli(tmp_path, cli):
    model_dir = tmp_path / "run"
    # Unquoted on purpose: the CLI takes a value that is not a gin literal as a string.
    rc, out = cli(model_dir, "--gin.HELD_OUT_CLUSTER=not_a_cluster")
    assert rc != 0
    assert "not_a_cluster" in out
    for name in flan_tasks.clusters("embedded"):
        assert name in out, f"valid cluster {name!r} not listed in the error"
    assert "starting at step" not in out  # failed before restoring or building anything
    assert not model_dir.exists()


@pytest.mark.slow
def test_sigterm_saves_exits_zero_and_restart_continues(interrupted):
    """SIGTERM -> checkpoint at the step it stopped, exit 0; the restart resumes there, exactly."""
    run = interrupted
    final, how, start, _ = _finished(run.preempted_log)
    assert (final, how, start) == (PAUSES[0] + 1, "preempted", 0)
    # A checkpoint at the step it stopped, off the checkpoint period: the forced preemption save.
    assert run.preempted_steps == [PAUSES[0], PAUSES[0] + 1]
    assert run.preempted_data_state["steps"] == PAUSES[0] + 1
    assert isinstance(run.seed, int)
    # The restart (the phase killed later) resumed from that checkpoint with the saved seed.
    assert f"resumed from {checkpoints.step_dir(run.model_dir, PAUSES[0] + 1)}; starting at step " \
        f"{PAUSES[0] + 1} of {N} (mixture embedded_held_out_nli_train, seed {run.seed})" in run.killed_log, \
        run.killed_log[-3000:]
    # The preempted steps' losses, and every step logged after it, are those of the uninterrupted
    # run with the drawn seed (the steps after the kill follow from the resumed state too).
    logged = _logged_losses(run.model_dir)
    assert set(range(1, PAUSES[0] + 2)) | set(range(PAUSES[1] + 1, N + 1)) <= set(logged), sorted(logged)
    _assert_same_losses(logged, run.reference_losses, sorted(logged))


@pytest.mark.slow
def test_sigkill_after_checkpoint_then_restart_logs_the_same_losses(interrupted):
    """The issue's acceptance test: kill -9 after a checkpoint, rerun, the same losses after it."""
    run = interrupted
    assert run.killed_rc == -signal.SIGKILL, run.killed_log[-4000:]
    assert run.killed_steps == [PAUSES[0], PAUSES[0] + 1, PAUSES[1]]
    final, how, start, source = _finished(run.restart.stderr)
    assert (final, how, start) == (N, "completed", PAUSES[1])
    assert f"checkpoint_{PAUSES[1]}" in source
    # The input pipeline came back from the iterator state saved with the checkpoint (no replay).
    assert (run.model_dir / f"checkpoint_{PAUSES[1]}" / "data" / "host_0.json").exists()
    assert f"input pipeline restored from its saved state at batch {PAUSES[1]}" in run.restart.stderr
    # The restart is a later run of the same config with a warm persistent compilation cache
    # (JAX_COMPILATION_CACHE_DIR): its train step is loaded, not compiled again.
    assert "compilation cache HIT: jit_flan_train_step loaded from" in run.restart.stderr, run.restart.stderr[-3000:]
    assert "compilation cache MISS: jit_flan_train_step" not in run.restart.stderr
    # The restarted process logged exactly the steps after the checkpoint, into its own event file ...
    assert sorted(run.restart_events) == list(range(PAUSES[1] + 1, N + 1))
    # ... with the losses of the uninterrupted run.
    _assert_same_losses(run.restart_events, run.reference_losses, range(PAUSES[1] + 1, N + 1))
    assert checkpoints.complete_steps(run.model_dir) == [*PAUSES[:1], PAUSES[0] + 1, PAUSES[1], N]


@pytest.fixture(scope="module")
def reference(interrupted) -> tuple[pathlib.Path, dict[int, float]]:
    """The uninterrupted N-step run through the CLI: its MODEL_DIR and logged per-step losses."""
    return interrupted.reference_dir, interrupted.reference_losses


@pytest.mark.slow
def test_second_run_into_completed_model_dir_resumes_and_trains_nothing(reference, clean_gin):
    from flan_trainer.train import train

    model_dir, _ = reference
    before = sorted(p.name for p in model_dir.iterdir())
    gin_utils.parse_gin([str(TINY_GIN)], [f"MODEL_DIR = '{model_dir}'"])
    result = train()
    assert (result.start_step, result.final_step, result.losses) == (N, N, {})
    assert f"resumed from {checkpoints.step_dir(model_dir, N)}" == result.restored_from
    assert sorted(p.name for p in model_dir.iterdir()) == before  # no new checkpoint or event file
    assert checkpoints.complete_steps(model_dir) == [HALF, N]


@pytest.mark.slow
def test_dry_run_prints_params_shardings_memory_and_writes_nothing(tmp_path, cli):
    model_dir = tmp_path / "run"
    # Two-way model parallelism, so that parameter shardings are not all replicated.
    rc, out = cli(model_dir, "--dry_run", "--gin.NUM_PARTITIONS=2")
    assert rc == 0, out[-4000:]
    assert "=== mesh: {'data': 4, 'model': 2} ===" in out, out[-3000:]
    total = re.search(r"=== parameters: ([\d,]+) ", out)
    assert total, out[-3000:]
    # Counted by hand for tiny_train.gin's T5.1.1 (vocab 384, emb 32, 2 heads x 16, mlp 64 gated,
    # 1 encoder + 1 decoder layer, separate logits layer): embeddings 2 * 384 * 32; encoder layer
    # 4 * 32 * 32 + 3 * 32 * 64 + 2 * 32; decoder layer 8 * 32 * 32 + 3 * 32 * 64 + 3 * 32; each
    # stack's relative position bias 32 buckets * 2 heads and final norm 32.
    expected = 2 * 384 * 32 + (4096 + 6144 + 64) + (8192 + 6144 + 96) + 2 * (64 + 32)
    assert int(total.group(1).replace(",", "")) == expected
    rows = re.findall(r"^\s+(\S+/\S+)\s+(\([\d, ]*\))\s+(\w+)\s+(P(?:artitionSpec)?\(.*\))$", out, re.M)
    specs = {name: spec for name, _, _, spec in rows}
    assert "token_embedder/embedding" in specs, out[-3000:]
    assert sum(int(np.prod(eval(shape))) for _, shape, _, _ in rows) == expected
    # T5X's rules put the MLP's hidden dimension on 'model'; layer norm scales stay replicated.
    assert "'model'" in specs["decoder/layers_0/mlp/wi_0/kernel"], specs
    assert "'model'" not in specs["encoder/encoder_norm/scale"]
    assert "compiled train step, per device" in out
    memory = dict(re.findall(r"^\s+(\w+_in_bytes)\s+([\d.]+) MiB$", out, re.M))
    assert "temp_size_in_bytes" in memory
    assert float(memory["argument_size_in_bytes"]) > 0
    assert re.search(r"^\s+compile_seconds\s+\d+\.\d+ s$", out, re.M), out[-1500:]
    assert not model_dir.exists()  # no checkpoint, no config.gin, no event file


# ----------------------------------------------------------------------------- gin plumbing


def test_gin_overrides_are_rewritten_into_bindings():
    argv = [
        "--gin.MODEL_DIR='/tmp/run a'",          # quoted string: kept
        '--gin.B="double"',                     # double-quoted string: kept
        "--gin.C=/tmp/plain",                   # not a gin literal: taken as a string
        "--gin.HELD_OUT_CLUSTER=nli",           # bare word: a string
        "--gin.D=a=b",                          # only the first '=' separates name and value
        "--gin.TRAIN_STEPS=2000",
        "--gin.LR=1e-3",
        "--gin.NEG=-2",
        "--gin.SEED=None",
        "--gin.FLAG=True",
        "--gin.network.T5Config.emb_dim=32",
        "--gin.train.eval_hooks=[@pause_hook]",
        "--gin.HOOK=@pause_hook",
        "--gin.REF=%TRAIN_STEPS",
        "--gin.LENGTHS={'inputs': 64, 'targets': 16}",
        "--gin.PAIR=(1, 2)",
        "--gin_file=runs/quickstart.gin",
        "--dry_run",
    ]
    bindings, rest = gin_utils.split_gin_overrides(argv)
    assert rest == ["--gin_file=runs/quickstart.gin", "--dry_run"]
    assert bindings == [
        "MODEL_DIR = '/tmp/run a'",
        'B = "double"',
        "C = '/tmp/plain'",
        "HELD_OUT_CLUSTER = 'nli'",
        "D = 'a=b'",
        "TRAIN_STEPS = 2000",
        "LR = 1e-3",
        "NEG = -2",
        "SEED = None",
        "FLAG = True",
        "network.T5Config.emb_dim = 32",
        "train.eval_hooks = [@pause_hook]",
        "HOOK = @pause_hook",
        "REF = %TRAIN_STEPS",
        "LENGTHS = {'inputs': 64, 'targets': 16}",
        "PAIR = (1, 2)",
    ]


def test_gin_override_values_parse_as_intended(clean_gin):
    macros = ["MODEL_DIR='/tmp/run a'", "C=/tmp/plain", "HELD_OUT_CLUSTER=nli", "TRAIN_STEPS=2000",
              "LR=1e-3", "SEED=None", "FLAG=True", "HOOK=@pause_hook", "REF=%TRAIN_STEPS",
              "LENGTHS={'inputs': 64, 'targets': 16}"]
    bindings, _ = gin_utils.split_gin_overrides([f"--gin.{m}" for m in macros])
    gin.parse_config(bindings)
    q = gin.query_parameter
    assert q("%MODEL_DIR") == "/tmp/run a"
    assert q("%C") == "/tmp/plain"
    assert q("%HELD_OUT_CLUSTER") == "nli"
    assert q("%TRAIN_STEPS") == 2000 and isinstance(q("%TRAIN_STEPS"), int)
    assert q("%LR") == pytest.approx(1e-3)
    assert q("%SEED") is None
    assert q("%FLAG") is True
    assert q("%LENGTHS") == {"inputs": 64, "targets": 16}
    assert q("%HOOK").configurable.name == "pause_hook"
    assert str(q("%REF")) == "%TRAIN_STEPS"  # a macro reference, not a string


def test_missing_gin_file_names_the_places_searched(tmp_path, clean_gin):
    extra = tmp_path / "extra_gin"
    extra.mkdir()
    with pytest.raises(FileNotFoundError) as err:
        gin_utils.parse_gin(["runs/no_such_run.gin"], [], [str(extra)])
    msg = str(err.value)
    assert "runs/no_such_run.gin" in msg
    assert os.getcwd() in msg
    assert str(gin_utils.REPO_GIN_DIR) in msg
    assert str(extra) in msg


def test_gin_search_paths_find_a_file(tmp_path, clean_gin):
    extra = tmp_path / "extra_gin"
    extra.mkdir()
    (extra / "mine.gin").write_text("MY_MACRO = 'found'\n")
    gin_utils.parse_gin(["mine.gin"], ["OTHER = 3"], [str(extra)])
    assert gin.query_parameter("%MY_MACRO") == "found"
    assert gin.query_parameter("%OTHER") == 3


@pytest.mark.slow
def test_operative_config_is_written_and_parses_back(reference, clean_gin):
    model_dir, _ = reference
    text = (model_dir / "config.gin").read_text()
    assert "train.model_dir" in text
    assert "HELD_OUT_CLUSTER = 'nli'" in text
    assert re.search(r"emb_dim = 32\b", text)
    # What was written is a config that gin takes back as it is.
    gin.parse_config(text)
    assert gin.query_parameter("%MODEL_DIR") == str(model_dir)
    assert gin.query_parameter("%TRAIN_STEPS") == N


def test_write_operative_config_creates_model_dir(tmp_path, clean_gin):
    gin.parse_config(["test_trainer_cli.pause_hook.pause_at_steps = [7]"])
    pause_hook(None, 1, None, False)  # a call, so the binding is operative
    path = gin_utils.write_operative_config(str(tmp_path / "new" / "dir"))
    assert path == str(tmp_path / "new" / "dir" / "config.gin")
    assert "pause_at_steps = [7]" in pathlib.Path(path).read_text()


# ----------------------------------------------------------------------------- gin files


def _import_gin_dependencies() -> None:
    # The modules gin files import (so their configurables are registered before strict parsing).
    import evals.train_hook  # noqa: F401
    import flan_trainer.models  # noqa: F401
    import flan_trainer.optimizers  # noqa: F401
    import flan_trainer.schedules  # noqa: F401
    import flan_trainer.tasks_setup  # noqa: F401
    import flan_trainer.train  # noqa: F401


def test_quickstart_gin_parses(clean_gin):
    _import_gin_dependencies()
    gin_utils.parse_gin(["runs/quickstart.gin"], [])
    q = gin.query_parameter
    assert q("%TASK_SUITE") == "embedded"
    assert q("%HELD_OUT_CLUSTER") in flan_tasks.clusters("embedded")
    assert q("%VOCABULARY_KIND") == "byte"
    assert isinstance(q("%TRAIN_STEPS"), int) and q("%TRAIN_STEPS") > 0
    assert q("%NUM_EMBEDDINGS") >= 259  # the byte vocabulary's size
    assert q("%MODEL_DIR") == "runs/quickstart"


def test_finetune_gin_with_model_and_held_out_cluster_parses(clean_gin):
    _import_gin_dependencies()
    files = ["models/base.gin", "runs/finetune.gin", "held_out/nli.gin"]
    gin_utils.parse_gin(files, ["MODEL_DIR = '/tmp/flan_nli'", "TRAIN_STEPS = 30000",
                                "VOCABULARY_PATH = '/data/vocab/cc_all.32000.model'"])
    q = gin.query_parameter
    assert q("%MODEL_DIR") == "/tmp/flan_nli"
    assert q("%TRAIN_STEPS") == 30000
    assert q("%VOCABULARY_PATH") == "/data/vocab/cc_all.32000.model"
    assert q("%HELD_OUT_CLUSTER") == "nli"
    assert q("%TASK_SUITE") == "flan"
    assert "nli" in flan_tasks.clusters("flan")
    assert q("network.T5Config.emb_dim") == 768
    # The run file's macros override the model file's defaults (it comes later).
    assert q("%DROPOUT_RATE") == 0.05


def test_finetune_gin_leaves_required_macros_required(clean_gin):
    _import_gin_dependencies()
    gin_utils.parse_gin(["models/base.gin", "runs/finetune.gin"], [])
    for macro in ("MODEL_DIR", "TRAIN_STEPS", "VOCABULARY_PATH"):
        value = gin.query_parameter(f"%{macro}")
        assert str(value) == "%gin.REQUIRED", f"{macro} = {value!r}"


GIN_FILES = sorted(p.relative_to(REPO / "gin").as_posix() for p in (REPO / "gin").rglob("*.gin"))


def test_gin_tree_is_what_we_parse():
    assert {"runs/quickstart.gin", "runs/finetune.gin", "models/base.gin", "held_out/nli.gin"} <= set(GIN_FILES)
    assert len([f for f in GIN_FILES if f.startswith("held_out/")]) == len(flan_tasks.clusters("flan"))


@pytest.mark.parametrize("name", GIN_FILES)
def test_every_gin_file_parses_strictly(name, clean_gin):
    _import_gin_dependencies()
    gin.add_config_file_search_path(str(REPO / "gin"))  # for includes such as 'models/tiny.gin'
    gin.parse_config_files_and_bindings([str(REPO / "gin" / name)], [], skip_unknown=False,
                                        finalize_config=False)
    if name.startswith("held_out/"):
        assert gin.query_parameter("%HELD_OUT_CLUSTER") in flan_tasks.clusters("flan")


def test_shuffle_buffer_binding_reaches_the_training_tasks(clean_gin):
    import seqio

    from flan_trainer import tasks_setup

    def buffers():
        tasks_setup.register_suite("embedded")
        return {t.shuffle_buffer_size for t in seqio.get_mixture_or_task("embedded_all_train").tasks}

    gin_utils.parse_gin([str(TINY_GIN)], ["MODEL_DIR = '/tmp/unused'"])
    assert buffers() == {64}  # tiny_train.gin's
    gin.clear_config()
    assert buffers() == {1000}  # seqio's default
    with pytest.raises(ValueError, match="shuffle_buffer_size must be >= 1"):
        tasks_setup.register_suite("embedded", shuffle_buffer_size=0)
