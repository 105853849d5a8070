"""An experiment description shared by the launchers: what to run, with which gin, where.

xmanager-style: a launcher turns an `Experiment` (a list of `Job`s) into processes on some
platform (this machine, or every host of a TPU VM pod slice). The job itself is always the same
command line: `python -m flan_trainer --gin_file=... --gin.X=Y ...`.
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Mapping, Sequence


@dataclasses.dataclass(frozen=True)
class Job:
    """One training (or evaluation) run: its name, gin files, gin overrides and extra flags."""

    name: str
    gin_files: tuple[str, ...]
    gin_overrides: Mapping[str, str] = dataclasses.field(default_factory=dict)
    module: str = "flan_trainer"
    extra_flags: tuple[str, ...] = ()

    def argv(self, python: str = "python") -> list[str]:
        """The job's command line, with gin overrides as T5X-style `--gin.X=Y` flags."""
        args = [python, "-m", self.module]
        args += [f"--gin_file={f}" for f in self.gin_files]
        args += [f"--gin.{k}={v}" for k, v in self.gin_overrides.items()]
        return args + list(self.extra_flags)

    def command(self, python: str = "python") -> str:
        return shlex.join(self.argv(python))


def gin_string(value: str) -> str:
    """Quotes a Python string as a gin literal."""
    return repr(value)


def held_out_sweep(base: Job, clusters: Sequence[str], model_dir_root: str) -> list[Job]:
    """One job per held-out cluster, each with its own MODEL_DIR under `model_dir_root`."""
    jobs = []
    for cluster in clusters:
        overrides = dict(base.gin_overrides)
        overrides["HELD_OUT_CLUSTER"] = gin_string(cluster)
        overrides["MODEL_DIR"] = gin_string(f"{model_dir_root.rstrip('/')}/{cluster}")
        jobs.append(dataclasses.replace(base, name=f"{base.name}-{cluster}", gin_overrides=overrides))
    return jobs
