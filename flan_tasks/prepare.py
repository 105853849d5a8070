"""TFDS preparation: which datasets a mixture reads, which are prepared in a data dir, and building the rest.

`python -m flan_tasks --suite flan prepare --mixture M --data_dir DIR [--check]` lists every TFDS
dataset (with its pinned version) that the mixture's tasks read, says which are prepared in DIR and
which need a manual download (and where to put it), and, without --check, builds the missing ones
with the TFDS builder's download_and_prepare. The trainer runs `missing_sources` before building
the model, so a run never compiles a model only to stop at the first missing dataset.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import seqio

# (name, data_dir) found prepared: a prepared dataset stays prepared, so it is not asked again.
_PREPARED: set[tuple[str, str]] = set()


@dataclasses.dataclass(frozen=True)
class SourceStatus:
    """One TFDS dataset (name/config:version) a mixture reads, and its state in a data dir."""

    name: str
    tasks: tuple[str, ...]
    data_dir: str
    prepared: bool
    manual_instructions: str | None  # the builder's MANUAL_DOWNLOAD_INSTRUCTIONS, if any
    manual_dir: str

    @property
    def base_name(self) -> str:
        return self.name.split(":")[0]

    def describe(self) -> str:
        if self.prepared:
            return f"{self.name:36s} prepared"
        line = f"{self.name:36s} MISSING"
        if self.manual_instructions:
            hint = " ".join(self.manual_instructions.split())
            line += f" (manual download into {self.manual_dir}: {hint[:160]}{'...' if len(hint) > 160 else ''})"
        return line


def tfds_sources(mixture_or_task: str) -> dict[str, tuple[list[str], str | None]]:
    """TFDS name (with version) -> (the tasks that read it, its data dir), in first-use order.

    The data dir is seqio's: `--tfds_data_dir` (seqio.set_tfds_data_dir_override) if set, else the
    source's own, else None (TFDS's default).
    """
    provider = seqio.get_mixture_or_task(mixture_or_task)
    tasks = provider.tasks if isinstance(provider, seqio.Mixture) else [provider]
    out: dict[str, tuple[list[str], str | None]] = {}
    for task in tasks:
        if isinstance(task.source, seqio.TfdsDataSource) and task.source.tfds_dataset.name:
            loader = task.source.tfds_dataset
            out.setdefault(loader.name, ([], loader.data_dir))[0].append(task.name)
    return out


def source_status(name: str, tasks: Sequence[str], data_dir: str | None) -> SourceStatus:
    """Whether the TFDS dataset `name` is prepared in data_dir (None: TFDS's default data dir)."""
    import tensorflow_datasets as tfds

    data_dir = str(data_dir or tfds.core.constants.DATA_DIR)
    manual_dir = os.path.join(data_dir, "downloads", "manual")
    if (name, data_dir) in _PREPARED:  # checked before in this process (the trainer checks twice)
        return SourceStatus(name, tuple(tasks), data_dir, True, None, manual_dir)
    builder = tfds.builder(name, data_dir=data_dir)
    prepared = bool(builder.is_prepared())
    if prepared:
        _PREPARED.add((name, data_dir))
    return SourceStatus(
        name=name,
        tasks=tuple(tasks),
        data_dir=data_dir,
        prepared=prepared,
        manual_instructions=getattr(builder, "MANUAL_DOWNLOAD_INSTRUCTIONS", None) or None,
        manual_dir=manual_dir,
    )


def mixture_status(mixture_or_task: str) -> list[SourceStatus]:
    """The state of every TFDS dataset the mixture (or task) reads, in seqio's data dir."""
    return [source_status(n, t, d) for n, (t, d) in tfds_sources(mixture_or_task).items()]


def missing_sources_message(missing: Sequence[SourceStatus], mixture: str) -> str:
    """One message naming every missing dataset and the commands that prepare them."""
    names = ", ".join(s.name for s in missing)
    bases = " ".join(dict.fromkeys(s.base_name for s in missing))
    manual = [s.name for s in missing if s.manual_instructions]
    manual_note = f"; {', '.join(manual)} may need manual downloads in DIR/downloads/manual" if manual else ""
    return (
        f"{len(missing)} TFDS dataset(s) read by {mixture!r} are not prepared in {missing[0].data_dir}: "
        f"{names}. Prepare them with `python -m flan_tasks --suite flan prepare --mixture {mixture} "
        f"--data_dir=DIR` (or `tfds build {bases} --data_dir=DIR`{manual_note}), then pass "
        "--tfds_data_dir=DIR (seqio.set_tfds_data_dir_override)."
    )


def prepare(statuses: Sequence[SourceStatus]) -> dict[str, str]:
    """Build every missing dataset; returns name -> 'built' or the one-line reason it failed.

    Each failure is reported and the next dataset is tried: one bad download does not undo or
    stop the others.
    """
    import tensorflow_datasets as tfds

    results = {}
    for status in statuses:
        if status.prepared:
            continue
        try:
            builder = tfds.builder(status.name, data_dir=status.data_dir)
            builder.download_and_prepare(
                download_config=tfds.download.DownloadConfig(manual_dir=status.manual_dir))
            results[status.name] = "built"
        except Exception as exc:  # noqa: BLE001 - reported per dataset, the others still run
            results[status.name] = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
    return results
