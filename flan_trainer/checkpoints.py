"""Orbax checkpoints in T5X's layout, with the data position saved alongside the train state.

Layout: ``MODEL_DIR/checkpoint_<step>/state`` (the train state, an Orbax PyTree item) and
``MODEL_DIR/checkpoint_<step>/data_state`` (a small JSON item: steps and examples consumed, seed,
mixture name), plus ``checkpoint_<step>/data/host_<i>.*``: each host's input iterator state
(flan_trainer/data_checkpoint.py), written before the orbax save and moved in after it. Orbax writes each step into a temporary directory and renames it only when every
item is complete, so a save that dies half way never replaces or damages the last good checkpoint.

Every restore first compares the checkpoint's metadata with the target (paths, shapes, dtypes) and
raises :class:`CheckpointMismatchError` naming each bad parameter before any array is read. Each
save also writes ``checkpoint_<step>/integrity``, one fingerprint per array; a restore whose data
cannot be read or differs from those raises :class:`CheckpointCorruptError` naming the arrays
(see flan_trainer/checkpoint_integrity.py; falling back to an older step: restore_fallback.py).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from flan_trainer import checkpoint_integrity as integrity
from flan_trainer import layer_stacking
from flan_trainer.checkpoint_integrity import CheckpointCorruptError

logger = logging.getLogger(__name__)

STEP_PREFIX = "checkpoint"
STATE_ITEM = "state"
DATA_ITEM = "data_state"
INTEGRITY_ITEM = integrity.ITEM
# Keys under which a full train state keeps its parameters: ours, and T5X's optimizer 'target'.
PARAMS_KEYS = ("params", "target")
_STEP_DIR_RE = re.compile(rf"^{STEP_PREFIX}_(\d+)$")

PyTree = Any


class CheckpointMismatchError(ValueError):
    """The checkpoint on disk does not fit the state it is being restored into."""


class CheckpointNotFoundError(FileNotFoundError):
    """No usable checkpoint where one was asked for."""


def data_state_dict(
    steps: int, examples: int, seed: int | None, mixture: str, **extra: Any
) -> dict[str, Any]:
    """The JSON record of how far the input pipeline has read (see input_pipeline.get_train_iterator)."""
    return {"steps": int(steps), "examples": int(examples), "seed": seed, "mixture": mixture, **extra}


def abstract_like(tree: PyTree) -> PyTree:
    """ShapeDtypeStructs (with the same shardings) for a tree of arrays: a restore target."""

    def one(x):
        return jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=getattr(x, "sharding", None))

    return jax.tree.map(one, tree)


# ----------------------------------------------------------------------------- validation


def _key_name(key: Any) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def _flat(tree: PyTree) -> dict[str, Any]:
    """'a/b/0/c' -> leaf; None and empty containers (e.g. optax EmptyState) have no leaves."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {"/".join(_key_name(k) for k in path): leaf for path, leaf in leaves}


def _describe(shape: Any, dtype: Any) -> str:
    return f"shape {tuple(shape)} dtype {np.dtype(dtype).name if dtype is not None else '?'}"


def check_compatible(found_meta: PyTree, target: PyTree, *, where: str, prefix: str = "") -> None:
    """Raise CheckpointMismatchError listing every missing/extra/shape/dtype difference."""
    found, expected = _flat(found_meta), _flat(target)
    problems = []
    for path in sorted(expected.keys() - found.keys()):
        want = _describe(np.shape(expected[path]), expected[path].dtype)
        problems.append(f"missing in checkpoint: {prefix}{path} (model expects {want})")
    for path in sorted(found.keys() - expected.keys()):
        problems.append(f"unexpected in checkpoint (model has no such parameter): {prefix}{path}")
    for path in sorted(expected.keys() & found.keys()):
        want, got = expected[path], found[path]
        want_shape, got_shape = tuple(np.shape(want)), tuple(getattr(got, "shape", ()) or ())
        # Python scalars (e.g. an int step) are saved as 64-bit scalars: only their shape must agree.
        scalar = type(got).__name__ == "ScalarMetadata"
        same_dtype = scalar or np.dtype(got.dtype) == np.dtype(want.dtype)
        if want_shape != got_shape or not same_dtype:
            problems.append(
                f"{prefix}{path}: model expects {_describe(want_shape, want.dtype)}, "
                f"checkpoint has {_describe(got_shape, got.dtype)}"
            )
    if problems:
        shown = "\n  ".join(problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        # First line: the cause and the fix (what a failed run prints); then every problem.
        raise CheckpointMismatchError(
            f"checkpoint {where} does not match the model ({len(problems)} problem(s), first: {problems[0]}). "
            "Fix: restore with the model config/optimizer the checkpoint was written with, use another "
            "MODEL_DIR, or use mode='params' to take only the parameters from an initial checkpoint."
            f"\n  {shown}{more}"
        )


# ----------------------------------------------------------------------------- step directories


def step_dir(model_dir: epath.PathLike, step: int) -> epath.Path:
    return epath.Path(model_dir) / f"{STEP_PREFIX}_{int(step)}"


def _is_complete(path: epath.Path) -> bool:
    # Orbax renames a step directory into place only after finishing it; these files are written
    # last, so a directory copied in half way (or damaged) is not mistaken for a good checkpoint.
    return (path / "_CHECKPOINT_METADATA").exists() and (path / STATE_ITEM / "_METADATA").exists()


def complete_steps(model_dir: epath.PathLike) -> list[int]:
    """Steps with a finished checkpoint_<step> directory in MODEL_DIR, ascending."""
    root = epath.Path(model_dir)
    if not root.exists():
        return []
    steps = []
    for child in root.iterdir():
        match = _STEP_DIR_RE.match(child.name)
        if match and child.is_dir():
            if _is_complete(child):
                steps.append(int(match.group(1)))
            else:
                logger.warning("ignoring incomplete checkpoint directory %s", child)
    return sorted(steps)


def resolve_checkpoint_dir(path: epath.PathLike) -> epath.Path:
    """A checkpoint_<step> directory as given, or the latest complete one inside a model dir."""
    path = epath.Path(path)
    if _is_complete(path):
        return path
    if _STEP_DIR_RE.match(path.name):
        raise CheckpointNotFoundError(
            f"{path} is not a complete checkpoint (missing or partly written). Point at another "
            "checkpoint_<step> directory or at the model dir to take its latest."
        )
    steps = complete_steps(path)
    if not steps:
        raise CheckpointNotFoundError(
            f"no complete checkpoint_<step> directory in {path}. Give a checkpoint_<step> directory "
            "or a model dir that holds one."
        )
    return step_dir(path, steps[-1])


# ----------------------------------------------------------------------------- restoring


def _state_metadata(ckpt_dir: epath.Path) -> PyTree:
    return ocp.PyTreeCheckpointHandler().metadata(ckpt_dir / STATE_ITEM).tree


def _read(ckpt_dir: epath.Path, item: PyTree, partial: bool) -> PyTree:
    restore_args = ocp.checkpoint_utils.construct_restore_args(item)
    args = ocp.args.PyTreeRestore(item, restore_args=restore_args, partial_restore=partial)
    with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as ckptr:
        return ckptr.restore(ckpt_dir, args=ocp.args.Composite(**{STATE_ITEM: args}))[STATE_ITEM]


def _checked_metadata(ckpt_dir: epath.Path) -> PyTree:
    """The state item's metadata; unreadable -> CheckpointCorruptError naming the file."""
    try:
        return _state_metadata(ckpt_dir)
    except Exception as e:
        raise CheckpointCorruptError(str(ckpt_dir), {f"{STATE_ITEM}/_METADATA": f"unreadable: {e}"}) from e


def _read_verified(ckpt_dir: epath.Path, item: PyTree, partial: bool) -> PyTree:
    """_read, with damaged arrays named (unreadable ones, or ones not as saved)."""
    saved = integrity.read_manifest(ckpt_dir)
    try:
        restored = _read(ckpt_dir, item, partial)
    except Exception as e:
        damaged = integrity.diagnose_read_failure(ckpt_dir, STATE_ITEM, set(integrity.flat_with_names(item)))
        if damaged is None:
            raise
        raise damaged from e
    integrity.verify(ckpt_dir, restored, saved)
    return restored


def read_data_state(ckpt_dir: epath.PathLike) -> dict[str, Any] | None:
    """The JSON data position saved with a checkpoint, or None if it has none."""
    ckpt_dir = epath.Path(ckpt_dir)
    if not (ckpt_dir / DATA_ITEM).exists():
        return None
    with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as ckptr:
        got = ckptr.restore(ckpt_dir, args=ocp.args.Composite(**{DATA_ITEM: ocp.args.JsonRestore()}))
    return dict(got[DATA_ITEM])


def _read_other_layout(ckpt_dir: epath.Path, meta: PyTree, target: PyTree, key: str | None) -> PyTree:
    """Reads a tree saved with the other layer layout (scanned vs per-layer), converted to ``target``'s.

    The arrays come to the host in the checkpoint's layout, are converted by ``layer_stacking``
    and are then placed on ``target``'s shardings.
    """
    on_disk = layer_stacking.to_layout(target, scanned=layer_stacking.is_stacked(meta))
    check_compatible(meta, on_disk, where=str(ckpt_dir), prefix=f"{key}/" if key else "")
    item = {key: on_disk} if key else on_disk
    restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), item)
    args = ocp.args.PyTreeRestore(item, restore_args=restore_args, partial_restore=key is not None)
    with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as ckptr:
        host = ckptr.restore(ckpt_dir, args=ocp.args.Composite(**{STATE_ITEM: args}))[STATE_ITEM]
    converted = layer_stacking.to_layout(host[key] if key else host, scanned=layer_stacking.is_stacked(target))
    return jax.tree.map(lambda x, t: jax.device_put(x, getattr(t, "sharding", None)), converted, target)


def restore_state(ckpt_dir: epath.PathLike, abstract_state: PyTree) -> PyTree:
    """Restore a full train state onto the shardings of ``abstract_state`` (any mesh).

    A checkpoint written with the other ``scan_layers`` layout is converted (layer_stacking).
    """
    ckpt_dir = epath.Path(ckpt_dir)
    meta = _checked_metadata(ckpt_dir)
    if layer_stacking.layouts_differ(meta, abstract_state):
        return _read_other_layout(ckpt_dir, meta, abstract_state, None)
    check_compatible(meta, abstract_state, where=str(ckpt_dir))
    return _read_verified(ckpt_dir, abstract_state, partial=False)


def _params_of(tree: PyTree) -> tuple[str, PyTree] | None:
    for key in PARAMS_KEYS:
        if isinstance(tree, Mapping) and key in tree:
            return key, tree[key]
        if not isinstance(tree, Mapping) and hasattr(tree, key):
            return key, getattr(tree, key)
    return None


def restore_params_only(ckpt_path: epath.PathLike, abstract_params: PyTree) -> PyTree:
    """Read only the parameters from a checkpoint (a full train state or a params-only tree).

    ``ckpt_path`` is a checkpoint_<step> directory or a model dir (its latest step is used).
    Optimizer state and data position in the checkpoint are ignored.
    """
    ckpt_dir = resolve_checkpoint_dir(ckpt_path)
    meta = _checked_metadata(ckpt_dir)
    found = _params_of(meta)
    if found is None:  # A params-only checkpoint: the tree itself is the parameters.
        if layer_stacking.layouts_differ(meta, abstract_params):
            return _read_other_layout(ckpt_dir, meta, abstract_params, None)
        check_compatible(meta, abstract_params, where=str(ckpt_dir))
        return _read_verified(ckpt_dir, abstract_params, partial=False)
    key, meta_params = found
    if layer_stacking.layouts_differ(meta_params, abstract_params):
        return _read_other_layout(ckpt_dir, meta_params, abstract_params, key)
    check_compatible(meta_params, abstract_params, where=str(ckpt_dir), prefix=f"{key}/")
    return _read_verified(ckpt_dir, {key: abstract_params}, partial=True)[key]


def replace_params(state: PyTree, params: PyTree) -> PyTree:
    """The train state with its parameters swapped (dict states or dataclasses with .replace)."""
    if isinstance(state, Mapping):
        return {**state, "params": params}
    if hasattr(state, "replace"):
        return state.replace(params=params)
    return dataclasses.replace(state, params=params)


# ----------------------------------------------------------------------------- manager


class CheckpointManager:
    """Periodic, keep-N, synchronous saving of (train state, data position) into MODEL_DIR.

    Every process of a multi-host job must call ``save``/``restore`` together (Orbax syncs them).
    """

    def __init__(
        self, model_dir: epath.PathLike, keep: int | None = None, period: int = 5000,
        async_save: bool = False,
    ) -> None:
        if period < 1:
            raise ValueError(f"checkpoint period must be >= 1, got {period}")
        if keep is not None and keep < 1:
            raise ValueError(f"keep must be None (keep all) or >= 1, got {keep}")
        self.model_dir = epath.Path(model_dir)
        self.keep, self.period = keep, period
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep,
            step_prefix=STEP_PREFIX,
            enable_async_checkpointing=async_save,
            # Leftovers of a save that was killed half way: remove them at start-up.
            cleanup_tmp_directories=True,
        )
        self._manager = ocp.CheckpointManager(
            self.model_dir,
            options=options,
            item_handlers={STATE_ITEM: ocp.PyTreeCheckpointHandler(), DATA_ITEM: ocp.JsonCheckpointHandler(),
                           INTEGRITY_ITEM: ocp.JsonCheckpointHandler()},
        )

    def all_steps(self) -> list[int]:
        return complete_steps(self.model_dir)

    def latest_step(self) -> int | None:
        steps = self.all_steps()
        return steps[-1] if steps else None

    def should_save(self, step: int) -> bool:
        return step % self.period == 0

    def save(
        self, step: int, state: PyTree, data_state: Mapping[str, Any] | None = None, force: bool = False,
        data_iterator: Any = None,
    ) -> bool:
        """Save if ``step`` is on the period (or ``force``); returns whether a checkpoint was written.

        A step that already has a checkpoint is left untouched (returns False). ``data_iterator``
        (e.g. input_pipeline.TrainIterator) has ``save_state(folder)``: every host writes its
        input pipeline state beside the checkpoint (flan_trainer/data_checkpoint.py).
        """
        step = int(step)
        if not force and not self.should_save(step):
            return False
        if step in self._manager.all_steps() or step_dir(self.model_dir, step).exists():
            logger.info("checkpoint for step %d already exists in %s; not overwriting", step, self.model_dir)
            return False
        if data_iterator is not None:
            from flan_trainer import data_checkpoint  # tensorflow: only when there is a pipeline

            # Written before the step directory can be complete, moved into it after (see there).
            data_iterator.save_state(data_checkpoint.pending_dir(step_dir(self.model_dir, step)))
        items = {STATE_ITEM: ocp.args.PyTreeSave(state)}
        items[DATA_ITEM] = ocp.args.JsonSave(dict(data_state or {}))
        items[INTEGRITY_ITEM] = ocp.args.JsonSave(integrity.manifest(state))
        saved = self._manager.save(step, args=ocp.args.Composite(**items), force=True)
        self._manager.wait_until_finished()
        if saved and data_iterator is not None:
            data_checkpoint.publish(step_dir(self.model_dir, step), jax.process_index())
        return bool(saved)

    def restore(self, step: int | None, abstract_state: PyTree) -> tuple[PyTree, dict[str, Any] | None]:
        """Restore (state, data_state) of ``step`` (None: latest) onto the target's shardings."""
        step = self.latest_step() if step is None else int(step)
        if step is None or not _is_complete(step_dir(self.model_dir, step)):
            raise CheckpointNotFoundError(
                f"no complete checkpoint for step {step} in {self.model_dir}; have {self.all_steps()}"
            )
        ckpt = step_dir(self.model_dir, step)
        return restore_state(ckpt, abstract_state), read_data_state(ckpt)

    def restore_params_only(self, step: int | None, abstract_params: PyTree) -> PyTree:
        step = self.latest_step() if step is None else int(step)
        if step is None:
            raise CheckpointNotFoundError(f"no complete checkpoint in {self.model_dir}")
        return restore_params_only(step_dir(self.model_dir, step), abstract_params)

    def wait_until_finished(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.close()

    def __enter__(self) -> CheckpointManager:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# ----------------------------------------------------------------------------- restore order


def restore_or_initialize(
    model_dir: epath.PathLike | None,
    initial_checkpoint_path: epath.PathLike | None,
    mode: str,
    init_fn: Callable[[], PyTree],
    abstract_state: PyTree,
) -> tuple[PyTree, dict[str, Any] | None, str]:
    """T5X's restore order: latest in MODEL_DIR, else INITIAL_CHECKPOINT_PATH, else from scratch.

    ``mode='full'`` restores the whole state (optimizer included) from the initial checkpoint;
    ``mode='params'`` takes only its parameters and the rest from ``init_fn()``. Resuming from
    MODEL_DIR always restores the full state and the data position. Returns
    ``(state, data_state or None, human-readable source)``.
    """
    if mode not in ("full", "params"):
        raise ValueError(f"restore mode must be 'full' or 'params', got {mode!r}")
    steps = complete_steps(model_dir) if model_dir else []
    if steps:
        ckpt = step_dir(model_dir, steps[-1])
        return restore_state(ckpt, abstract_state), read_data_state(ckpt), f"resumed from {ckpt}"
    if initial_checkpoint_path:
        ckpt = resolve_checkpoint_dir(initial_checkpoint_path)
        if mode == "full":
            return restore_state(ckpt, abstract_state), None, f"full state from initial checkpoint {ckpt}"
        found = _params_of(abstract_state)
        if found is None:
            raise ValueError("mode='params' needs a state with a 'params' field or key")
        params = restore_params_only(ckpt, found[1])
        # Initialise the rest only after the parameters loaded cleanly.
        return replace_params(init_fn(), params), None, f"params from initial checkpoint {ckpt}"
    return init_fn(), None, "initialized from scratch"
