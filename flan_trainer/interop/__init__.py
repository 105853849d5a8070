"""Checkpoint interoperability: Hugging Face T5 (both ways), legacy T5X and Orbax T5X import.

``detect_checkpoint_format`` tells the layouts apart; ``load_checkpoint`` imports any of them.
"""

from __future__ import annotations

import os
from typing import Any

from jax.sharding import Mesh

from flan_trainer.interop.detect import (
    CheckpointFormat,
    UnknownCheckpointFormatError,
    detect_checkpoint_format,
)
from flan_trainer.interop.hf_export import export_hf
from flan_trainer.interop.hf_import import import_hf
from flan_trainer.interop.hf_names import ConversionError
from flan_trainer.interop.placement import ShardingFn
from flan_trainer.interop.t5x_legacy import T5XCheckpoint, import_t5x_legacy, import_t5x_orbax

__all__ = [
    "CheckpointFormat",
    "ConversionError",
    "T5XCheckpoint",
    "UnknownCheckpointFormatError",
    "detect_checkpoint_format",
    "export_hf",
    "import_hf",
    "import_t5x_legacy",
    "import_t5x_orbax",
    "load_checkpoint",
]


def load_checkpoint(
    path: str | os.PathLike,
    *,
    mesh: Mesh | None = None,
    sharding_fn: ShardingFn | None = None,
    config_overrides: dict[str, Any] | None = None,
) -> T5XCheckpoint:
    """Import parameters (and config) from a checkpoint of any supported layout.

    For INITIAL_CHECKPOINT_PATH: the format is detected, parameters land on ``sharding_fn`` /
    ``mesh`` shardings; optimizer state is not carried over (finetuning starts fresh, as in T5X).
    """
    fmt = detect_checkpoint_format(path)
    if fmt == "hf":
        params, config = import_hf(path, mesh=mesh, sharding_fn=sharding_fn, config_overrides=config_overrides)
        return T5XCheckpoint(params=params, config=config, step=None)
    if fmt == "t5x_legacy":
        return import_t5x_legacy(path, mesh=mesh, sharding_fn=sharding_fn, config_overrides=config_overrides,
                                 with_optimizer_state=False)
    return import_t5x_orbax(path, mesh=mesh, sharding_fn=sharding_fn, config_overrides=config_overrides)
