"""The training loop in-process (`flan_trainer.train.train`): failing fast and failing safely.

Real runs of a very small model (tests/data/tiny_train.gin) on the embedded suite. Runs through
the command line, resume after SIGKILL/SIGTERM and --dry_run are in tests/test_trainer_cli.py.
"""

from __future__ import annotations

import pathlib
import re

import gin
import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

import flan_tasks
from flan_trainer import checkpoints, gin_utils
from flan_trainer.faults import NonFiniteLossError
from flan_trainer.train import train

TINY_GIN = pathlib.Path(__file__).resolve().parent / "data" / "tiny_train.gin"
# What jax reports when it traces a function (model init included, even abstractly) or compiles one.
JAX_WORK_EVENTS = ("/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/backend_compile_duration")


@pytest.fixture
def clean_gin():
    gin.clear_config()
    yield
    gin.clear_config()


def _configure(model_dir: pathlib.Path, *bindings: str) -> None:
    gin_utils.parse_gin([str(TINY_GIN)], [f"MODEL_DIR = '{model_dir}'", *bindings])


def test_unknown_held_out_cluster_fails_before_any_model_or_compilation(tmp_path, clean_gin):
    model_dir = tmp_path / "run"
    _configure(model_dir, "HELD_OUT_CLUSTER = 'not_a_cluster'")
    jax_work = []

    def listener(event, duration_secs, **kwargs):
        del duration_secs, kwargs
        if event in JAX_WORK_EVENTS:
            jax_work.append(event)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        with pytest.raises(flan_tasks.UnknownClusterError) as err:
            train()
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    msg = str(err.value)
    assert "not_a_cluster" in msg
    valid = flan_tasks.clusters("embedded")
    assert valid and all(name in msg for name in valid), msg
    assert jax_work == []  # no parameter shapes traced, nothing compiled
    assert not model_dir.exists()  # no checkpoint, not even the operative config


@pytest.mark.slow
def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, clean_gin):
    model_dir = tmp_path / "run"
    # A learning rate this large takes the first update's parameters far enough that the next
    # forward pass overflows; a checkpoint after every step shows which ones are kept.
    _configure(model_dir, "LEARNING_RATE = 1e30", "CHECKPOINT_PERIOD = 1")
    with pytest.raises(NonFiniteLossError) as err:
        train()
    msg = str(err.value)
    match = re.search(r"loss became (\S+) at step (\d+)", msg)
    assert match, msg
    assert not np.isfinite(float(match.group(1)))
    bad_step = int(match.group(2))
    assert 1 < bad_step <= 8
    good_step = bad_step - 1
    assert f"last good checkpoint (step {good_step})" in msg
    # Every step before the bad one was checkpointed; the bad one was not (not even partly).
    assert checkpoints.complete_steps(model_dir) == list(range(1, bad_step))
    assert not list(model_dir.glob(f"checkpoint_{bad_step}*"))

    # The last good checkpoint holds finite parameters of its step ...
    good_dir = checkpoints.step_dir(model_dir, good_step)
    raw = ocp.PyTreeCheckpointer().restore(good_dir / checkpoints.STATE_ITEM)
    assert int(np.asarray(raw["step"])) == good_step
    params = jax.tree.leaves(raw["params"])
    assert params and all(np.all(np.isfinite(np.asarray(p))) for p in params)
    assert checkpoints.read_data_state(good_dir)["steps"] == good_step

    # ... and a run pointed at the directory restores it through the trainer's own path.
    gin.clear_config()
    _configure(model_dir, "LEARNING_RATE = 1e30", "CHECKPOINT_PERIOD = 1", f"TRAIN_STEPS = {good_step}")
    result = train()
    assert result.restored_from == f"resumed from {good_dir}"
    assert (result.start_step, result.final_step, result.losses) == (good_step, good_step, {})
    assert checkpoints.complete_steps(model_dir) == list(range(1, bad_step))
