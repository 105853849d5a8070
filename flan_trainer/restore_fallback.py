"""Resuming from MODEL_DIR when its latest checkpoint is damaged.

By default a damaged latest checkpoint stops the run before anything is written, with an error
that names the checkpoint, the arrays and the cause, and says how to continue. With
``RESTORE_FALLBACK = True`` (gin; ``--gin.RESTORE_FALLBACK=True``) the run instead resumes from
the newest checkpoint that restores cleanly, logging which one and why. The damaged directories
are then moved, never deleted, to ``MODEL_DIR/damaged_checkpoints/`` (so that the run can write
a fresh checkpoint of the same step, and a later start does not trip over them again).

A checkpoint that does not fit the model (CheckpointMismatchError) is not damage: every older
step would fail the same way, so that error always stops the run.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import gin
import jax
from etils import epath

from flan_trainer import checkpoints
from flan_trainer.checkpoint_integrity import CheckpointCorruptError

log = logging.getLogger(__name__)

DAMAGED_DIR = "damaged_checkpoints"
OPTION = "--gin.RESTORE_FALLBACK=True"

PyTree = Any


def _restore_one(ckpt: epath.Path, abstract_state: PyTree) -> tuple[PyTree, dict[str, Any] | None]:
    state = checkpoints.restore_state(ckpt, abstract_state)
    try:
        data_state = checkpoints.read_data_state(ckpt)
    except Exception as e:
        raise CheckpointCorruptError(str(ckpt), {checkpoints.DATA_ITEM: f"unreadable: {e}"}) from e
    return state, data_state


def _stop_hint(model_dir: epath.Path, damaged: int, older: list[int]) -> str:
    if not older:
        return (f"Fix: no older checkpoint in {model_dir} to fall back to; replace checkpoint_{damaged} "
                "from a copy, or start over in a new MODEL_DIR. Nothing was modified.")
    return (f"Fix: rerun the same command with {OPTION} to resume from the newest checkpoint that "
            f"restores cleanly (next to try: checkpoint_{older[-1]}; damaged ones are moved to "
            f"{model_dir / DAMAGED_DIR}, not deleted). Nothing was modified.")


def _move_aside(model_dir: epath.Path, steps: list[int]) -> list[epath.Path]:
    """Damaged checkpoint_<step> dirs -> MODEL_DIR/damaged_checkpoints/ (process 0; all wait)."""
    moved = []
    if jax.process_index() == 0:
        target_root = model_dir / DAMAGED_DIR
        target_root.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for step in steps:
            target = target_root / f"{checkpoints.STEP_PREFIX}_{step}.{stamp}"
            checkpoints.step_dir(model_dir, step).rename(target)
            moved.append(target)
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("flan_trainer.restore_fallback.move_aside")
    return moved


@gin.configurable("restore_latest", allowlist=["fallback"])
def restore_latest(model_dir: epath.PathLike, abstract_state: PyTree,
                   fallback: bool = False) -> tuple[PyTree, dict[str, Any] | None, str]:
    """(state, data_state, source) from the newest checkpoint of MODEL_DIR that restores cleanly.

    Without ``fallback`` only the latest is tried; if it is damaged, CheckpointCorruptError says
    how to continue. MODEL_DIR must hold at least one complete checkpoint.
    """
    model_dir = epath.Path(model_dir)
    steps = checkpoints.complete_steps(model_dir)
    damaged: dict[int, CheckpointCorruptError] = {}
    for i in range(len(steps) - 1, -1, -1):
        step, ckpt = steps[i], checkpoints.step_dir(model_dir, steps[i])
        try:
            state, data_state = _restore_one(ckpt, abstract_state)
        except CheckpointCorruptError as e:
            if not fallback:
                raise e.with_hint(_stop_hint(model_dir, step, steps[:i])) from e
            log.warning("RESTORE_FALLBACK: %s Trying the next older checkpoint.", e.summary)
            damaged[step] = e
            continue
        source = f"resumed from {ckpt}"
        if damaged:
            moved = _move_aside(model_dir, sorted(damaged))
            log.warning("RESTORE_FALLBACK: resumed from %s; damaged checkpoint(s) %s moved to %s (not deleted)",
                        ckpt, sorted(damaged), model_dir / DAMAGED_DIR)
            source += f" (fell back past damaged checkpoint(s) {sorted(damaged)}, moved to {moved})"
        return state, data_state, source
    newest = damaged[steps[-1]]
    raise newest.with_hint(
        f"Fix: every checkpoint in {model_dir} ({steps}) is damaged; restore one from a copy, or start over "
        "in a new MODEL_DIR. Nothing was modified.")
