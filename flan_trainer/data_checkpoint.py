"""Per-host tf.data iterator state saved with each orbax checkpoint: resume without replay.

Layout::

    MODEL_DIR/checkpoint_<step>/data/host_<process_index>.index, .data-*   tf.train.Checkpoint(iterator=...)
    MODEL_DIR/checkpoint_<step>/data/host_<process_index>.json             what it belongs to (mixture, seed, ...)

The iterator state holds every buffer of the pipeline (shuffle buffers, the mixture's sampler,
packing and prefetch buffers), so restoring it yields exactly the batch an uninterrupted run would
see next, in time independent of the step. Each host writes its state BEFORE the orbax save, into
``MODEL_DIR/pending_data_state/checkpoint_<step>/`` (temporary names, renamed into place, the
``.json`` last), and moves it into the finished step directory after it: a process killed at any
point leaves either no checkpoint or a checkpoint whose host state is found in one of the two
places. A checkpoint without a usable host state (older runs, a pipeline that cannot be
checkpointed, a changed configuration) resumes by replay.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import Any

import tensorflow as tf
from etils import epath

logger = logging.getLogger(__name__)

DATA_DIR = "data"
PENDING_DIR = "pending_data_state"


def data_dir(ckpt_dir: epath.PathLike) -> epath.Path:
    """Where a finished checkpoint_<step> directory keeps its hosts' iterator states."""
    return epath.Path(ckpt_dir) / DATA_DIR


def pending_dir(ckpt_dir: epath.PathLike) -> epath.Path:
    """Where hosts write their state before the checkpoint_<step> directory exists."""
    ckpt_dir = epath.Path(ckpt_dir)
    return ckpt_dir.parent / PENDING_DIR / ckpt_dir.name


def _prefix(folder: epath.Path, process_index: int) -> epath.Path:
    return folder / f"host_{int(process_index)}"


def _files(prefix: epath.Path) -> list[epath.Path]:
    """The tf checkpoint files of a prefix (.data-* before .index), without the .json."""
    return sorted(f for f in prefix.parent.glob(prefix.name + ".*") if f.suffix != ".json")


def save_iterator(
    iterator: tf.data.Iterator, folder: epath.PathLike, process_index: int, fingerprint: Mapping[str, Any]
) -> bool:
    """Write this host's iterator state into ``folder``; False (and a warning) if it cannot."""
    prefix = _prefix(epath.Path(folder), process_index)
    tmp = prefix.parent / f"tmp-{prefix.name}"
    start = time.perf_counter()
    try:
        prefix.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale(prefix, tmp)
        written = epath.Path(tf.train.Checkpoint(iterator=iterator).write(str(tmp)))
    except (tf.errors.OpError, ValueError, TypeError) as exc:
        # E.g. a source built with Dataset.from_generator: tf.data cannot save python state.
        logger.warning("input pipeline state not saved in %s (%s: %s); a resume from this checkpoint "
                       "replays the batches instead", folder, type(exc).__name__, str(exc).splitlines()[0])
        return False
    size = 0
    for f in _files(written):
        size += f.stat().length
        f.rename(prefix.parent / (prefix.name + f.name[len(written.name):]))
    tmp_json = prefix.parent / f"tmp-{prefix.name}.json"
    tmp_json.write_text(json.dumps({**fingerprint, "bytes": size}, sort_keys=True))
    tmp_json.rename(prefix.parent / f"{prefix.name}.json")  # last: marks the state complete
    logger.info("saved input pipeline state of host %d (%.1f MB) in %.2fs", process_index, size / 1e6,
                time.perf_counter() - start)
    return True


def _remove_stale(prefix: epath.Path, tmp: epath.Path) -> None:
    """Drop what an earlier process left for this host and step (killed after writing its pending
    state, before the checkpoint completed): this save supersedes it. The .json goes first, so a
    kill in between never leaves a "complete" marker over partial files."""
    folder = prefix.parent
    for stale in (folder / f"{prefix.name}.json", folder / f"{tmp.name}.json", *_files(prefix), *_files(tmp)):
        if stale.exists():
            stale.unlink()


def publish(ckpt_dir: epath.PathLike, process_index: int) -> None:
    """Move this host's pending state into the finished checkpoint_<step> directory."""
    pending, final = pending_dir(ckpt_dir), data_dir(ckpt_dir)
    src = _prefix(pending, process_index)
    if not (pending / f"{src.name}.json").exists():
        return
    final.mkdir(parents=True, exist_ok=True)
    for f in [*_files(src), pending / f"{src.name}.json"]:  # _files has no .json: it moves last
        f.rename(final / f.name)
    try:
        pending.rmdir()  # empty once every host has moved its files; the last one removes it
        pending.parent.rmdir()
    except (OSError, ValueError):  # epath raises ValueError for a directory that is not empty
        pass


def _find(ckpt_dir: epath.PathLike, process_index: int) -> epath.Path | None:
    for folder in (data_dir(ckpt_dir), pending_dir(ckpt_dir)):
        if (folder / f"host_{int(process_index)}.json").exists():
            return folder
    return None


def read_fingerprint(ckpt_dir: epath.PathLike, process_index: int) -> dict[str, Any] | None:
    """What a host's saved state belongs to, or None when the checkpoint has no complete one."""
    folder = _find(ckpt_dir, process_index)
    return json.loads((folder / f"host_{int(process_index)}.json").read_text()) if folder else None


def restore_iterator(
    iterator: tf.data.Iterator, ckpt_dir: epath.PathLike, process_index: int, fingerprint: Mapping[str, Any]
) -> str | None:
    """Restore this host's saved state into ``iterator``; None on success, else why not.

    ``iterator`` must come from a freshly built dataset; after a failed restore build a new one.
    """
    saved = read_fingerprint(ckpt_dir, process_index)
    if saved is None:
        return f"no saved input pipeline state for host {process_index} in {ckpt_dir}"
    diff = {k: (saved.get(k), v) for k, v in fingerprint.items() if saved.get(k) != v}
    if diff:
        changed = ", ".join(f"{k}: saved {a!r}, now {b!r}" for k, (a, b) in sorted(diff.items()))
        return f"the input pipeline changed since the checkpoint ({changed})"
    try:
        prefix = _prefix(_find(ckpt_dir, process_index), process_index)
        tf.train.Checkpoint(iterator=iterator).read(str(prefix)).assert_consumed()
    except (tf.errors.OpError, ValueError, AssertionError) as exc:
        return f"the saved input pipeline state does not fit ({type(exc).__name__}: {str(exc).splitlines()[0]})"
    return None
