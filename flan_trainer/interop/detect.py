"""Tell which checkpoint layout a path holds: Orbax (ours / T5X's newer), legacy T5X, or Hugging Face."""

from __future__ import annotations

import os
import pathlib
import re
from typing import Literal

CheckpointFormat = Literal["orbax", "t5x_legacy", "hf"]

_HF_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
               "pytorch_model.bin.index.json")
_ORBAX_MARKERS = ("_CHECKPOINT_METADATA", "_METADATA", "manifest.ocdbt")
_STEP_RE = re.compile(r"^checkpoint_(\d+)$")


class UnknownCheckpointFormatError(ValueError):
    """No known checkpoint layout at a path; the message says what was looked for."""


def _is_hf(d: pathlib.Path) -> bool:
    return (d / "config.json").is_file() and any((d / w).is_file() for w in _HF_WEIGHTS)


def _is_legacy(d: pathlib.Path) -> bool:
    # A msgpack 'checkpoint' file; its first byte is a msgpack map (fixmap 0x80-0x8f, map16, map32).
    f = d / "checkpoint"
    if not f.is_file():
        return False
    with open(f, "rb") as fh:
        head = fh.read(1)
    return bool(head) and (0x80 <= head[0] <= 0x8F or head[0] in (0xDE, 0xDF))


def _is_orbax(d: pathlib.Path) -> bool:
    if any((d / m).exists() for m in _ORBAX_MARKERS):
        return True
    # A composite checkpoint: items in subdirectories (ours: state/, data_state/).
    return any(child.is_dir() and (child / "_METADATA").exists() for child in d.iterdir())


def _latest_step_dir(d: pathlib.Path) -> pathlib.Path | None:
    steps = [(int(m.group(1)), c) for c in d.iterdir() if c.is_dir() and (m := _STEP_RE.match(c.name))]
    return max(steps)[1] if steps else None


def detect_checkpoint_format(path: str | os.PathLike) -> CheckpointFormat:
    """'hf', 't5x_legacy' or 'orbax' for a checkpoint dir, or a model dir of checkpoint_<step> dirs.

    A model dir is judged by its latest checkpoint_<step> directory. A legacy T5X checkpoint may
    also be given as its msgpack ``checkpoint`` file.
    """
    d = pathlib.Path(path)
    if d.is_file() and d.name == "checkpoint" and _is_legacy(d.parent):
        return "t5x_legacy"  # T5X also accepts its msgpack 'checkpoint' file itself
    if not d.is_dir():
        raise UnknownCheckpointFormatError(
            f"{d} is not a checkpoint directory{' (it does not exist)' if not d.exists() else ''}. Give a model "
            "dir, a checkpoint_<step> dir, a Hugging Face dir, or a legacy T5X 'checkpoint' msgpack file.")
    for candidate in (d, _latest_step_dir(d)):
        if candidate is None:
            continue
        if _is_hf(candidate):
            return "hf"
        if _is_legacy(candidate):
            return "t5x_legacy"
        if _is_orbax(candidate):
            return "orbax"
    raise UnknownCheckpointFormatError(
        f"no known checkpoint layout in {d} (nor in a checkpoint_<step> subdirectory). Looked for: "
        f"Hugging Face (config.json with one of {', '.join(_HF_WEIGHTS)}); legacy T5X (a msgpack file named "
        f"'checkpoint' next to dotted TensorStore dirs); Orbax (one of {', '.join(_ORBAX_MARKERS)}, or an item "
        "subdirectory holding _METADATA)."
    )
