"""Per-host tf.data iterator state saved beside each orbax checkpoint: resume without replay.

Layout inside ``MODEL_DIR/checkpoint_<step>/``::

    data/host_<process_index>.index, .data-*   tf.train.Checkpoint(iterator=...) of that host
    data/host_<process_index>.json            what the state belongs to (mixture, seed, shard, ...)

The iterator state holds every buffer of the pipeline (shuffle buffers, the mixture's sampler,
packing and prefetch buffers), so restoring it yields exactly the batch an uninterrupted run would
see next, in time independent of the step. Each host writes its own state after the orbax save
completes: into temporary names, renamed into place with the ``.json`` last, so a host state is
used only when complete. A checkpoint without a usable host state (older runs, a pipeline that
cannot be checkpointed, a changed configuration, a kill between the two writes) resumes by replay.
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


def host_prefix(ckpt_dir: epath.PathLike, process_index: int) -> epath.Path:
    """The tf checkpoint prefix of a host's iterator state in a checkpoint_<step> directory."""
    return epath.Path(ckpt_dir) / DATA_DIR / f"host_{int(process_index)}"


def _files(prefix: epath.Path) -> list[epath.Path]:
    return sorted(prefix.parent.glob(prefix.name + ".*"))


def save_iterator(
    iterator: tf.data.Iterator, ckpt_dir: epath.PathLike, process_index: int, fingerprint: Mapping[str, Any]
) -> bool:
    """Write this host's iterator state into ``ckpt_dir``; False (and a warning) if it cannot."""
    prefix = host_prefix(ckpt_dir, process_index)
    tmp = prefix.parent / f"tmp-{prefix.name}"
    start = time.perf_counter()
    try:
        prefix.parent.mkdir(parents=True, exist_ok=True)
        written = epath.Path(tf.train.Checkpoint(iterator=iterator).write(str(tmp)))
    except (tf.errors.OpError, ValueError, TypeError) as exc:
        # E.g. a source built with Dataset.from_generator: tf.data cannot save python state.
        logger.warning("input pipeline state not saved in %s (%s: %s); a resume from this checkpoint "
                       "replays the batches instead", ckpt_dir, type(exc).__name__, str(exc).splitlines()[0])
        return False
    size = 0
    for f in _files(written):
        size += f.stat().length
        f.rename(prefix.parent / (prefix.name + f.name[len(written.name):]))
    meta = {**fingerprint, "bytes": size}
    tmp_json = prefix.parent / f"tmp-{prefix.name}.json"
    tmp_json.write_text(json.dumps(meta, sort_keys=True))
    tmp_json.rename(prefix.parent / f"{prefix.name}.json")  # last: marks the state complete
    logger.info("saved input pipeline state of host %d (%.1f MB) in %.2fs", process_index, size / 1e6,
                time.perf_counter() - start)
    return True


def read_fingerprint(ckpt_dir: epath.PathLike, process_index: int) -> dict[str, Any] | None:
    """What a saved host state belongs to, or None when the host has no complete state there."""
    path = host_prefix(ckpt_dir, process_index).parent / f"host_{int(process_index)}.json"
    return json.loads(path.read_text()) if path.exists() else None


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
        tf.train.Checkpoint(iterator=iterator).read(str(host_prefix(ckpt_dir, process_index))).assert_consumed()
    except (tf.errors.OpError, ValueError, AssertionError) as exc:
        return f"the saved input pipeline state does not fit ({type(exc).__name__}: {str(exc).splitlines()[0]})"
    return None
