"""What to run, with which gin, where: the part of a launch every executor shares.

A `Job` is one run of `python -m flan_trainer` (gin files, `--gin.X=Y` bindings, extra flags). Its
command line is a list of arguments, never a shell string: a binding's value is a gin literal
(`gin_literal` writes one from a Python value: strings quoted once, tuples, dicts, macros `%X`,
references `@f()`), and `shlex.join` quotes the whole list once where a shell is involved (a TPU
VM's ssh command). `parse_argv` reads a command line back, so a test can check that what an
executor would submit is what was meant (T5X's xm_launch quoted every value, strings or not).

Sweeps: `sweep_points` is the product of several gin parameters' values, `sweep_jobs` gives each
point its own MODEL_DIR under a root. Nothing here imports jax, gin or xmanager: the XManager
launcher (launch/xm_launch.py) runs in its own virtual environment.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any


@dataclasses.dataclass(frozen=True)
class Macro:
    """A gin macro reference: `Macro('TRAIN_STEPS')` is written `%TRAIN_STEPS`."""

    name: str


@dataclasses.dataclass(frozen=True)
class Ref:
    """A gin configurable reference: `Ref('models.EncoderDecoderModel', call=True)` -> `@models.EncoderDecoderModel()`."""

    name: str
    call: bool = False


def gin_literal(value: Any) -> str:
    """A Python value written as a gin literal (what follows `=` in a binding)."""
    if isinstance(value, Macro):
        return f"%{value.name}"
    if isinstance(value, Ref):
        return f"@{value.name}" + ("()" if value.call else "")
    if value is None or isinstance(value, bool | int | float):
        return repr(value)
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, tuple):
        items = ", ".join(gin_literal(v) for v in value)
        return f"({items},)" if len(value) == 1 else f"({items})"
    if isinstance(value, list):
        return "[" + ", ".join(gin_literal(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{gin_literal(k)}: {gin_literal(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {value!r} ({type(value).__name__}) as a gin literal")


def gin_string(value: str) -> str:
    """Quotes a Python string as a gin literal."""
    return gin_literal(str(value))


@dataclasses.dataclass(frozen=True)
class Job:
    """One training run: its name, gin files, gin bindings (name -> gin literal text), extra flags."""

    name: str
    gin_files: tuple[str, ...]
    gin_overrides: Mapping[str, str] = dataclasses.field(default_factory=dict)
    module: str = "flan_trainer"
    extra_flags: tuple[str, ...] = ()

    def args(self) -> list[str]:
        """The arguments after `python`: `-m flan_trainer --gin_file=... --gin.X=Y ...`."""
        args = ["-m", self.module]
        args += [f"--gin_file={f}" for f in self.gin_files]
        args += [f"--gin.{k}={v}" for k, v in self.gin_overrides.items()]
        return args + list(self.extra_flags)

    def argv(self, python: str = "python") -> list[str]:
        """The job's full command line, with gin overrides as T5X-style `--gin.X=Y` flags."""
        return [python, *self.args()]

    def command(self, python: str = "python") -> str:
        """The command line quoted once for a POSIX shell."""
        return shlex.join(self.argv(python))

    def with_bindings(self, **bindings: Any) -> Job:
        """A copy with more bindings, given as Python values (written with `gin_literal`)."""
        overrides = dict(self.gin_overrides)
        overrides.update({k: gin_literal(v) for k, v in bindings.items()})
        return dataclasses.replace(self, gin_overrides=overrides)


def parse_argv(argv: Sequence[str]) -> tuple[list[str], dict[str, str], list[str]]:
    """A trainer command line read back: (gin files, {binding name: gin literal text}, other args)."""
    gin_files, bindings, rest = [], {}, []
    for arg in argv:
        if arg.startswith("--gin_file="):
            gin_files.append(arg.split("=", 1)[1])
        elif arg.startswith("--gin.") and "=" in arg:
            name, value = arg[len("--gin."):].split("=", 1)
            bindings[name] = value
        else:
            rest.append(arg)
    return gin_files, bindings, rest


def job_from_args(name: str, args: Sequence[str]) -> Job:
    """A Job from command-line arguments given to a launcher (`--gin_file=`, `--gin.X=Y`, others)."""
    gin_files, bindings, rest = parse_argv(args)
    return Job(name=name, gin_files=tuple(gin_files), gin_overrides=bindings, extra_flags=tuple(rest))


def _label(value: Any) -> str:
    text = value if isinstance(value, str) else gin_literal(value)
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "x"


def point_name(point: Mapping[str, Any]) -> str:
    """A short, path-safe name for one sweep point: `nli`, `nli_learning_rate-0.003`, ..."""
    parts = []
    for key, value in point.items():
        parts.append(_label(value) if key == "HELD_OUT_CLUSTER" else f"{key.split('.')[-1].lower()}-{_label(value)}")
    return "_".join(parts)


def sweep_points(params: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the parameters' values (a product), in the order given."""
    names = list(params)
    for name in names:
        if not params[name]:
            raise ValueError(f"sweep parameter {name} has no values")
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(params[n] for n in names))]


def sweep_jobs(base: Job, params: Mapping[str, Sequence[Any]], model_dir_root: str) -> list[tuple[dict, Job]]:
    """One job per sweep point, each with its own MODEL_DIR = model_dir_root/<point name>."""
    out = []
    for point in sweep_points(params):
        name = point_name(point)
        job = base.with_bindings(**point, MODEL_DIR=f"{model_dir_root.rstrip('/')}/{name}")
        out.append((point, dataclasses.replace(job, name=f"{base.name}-{name}")))
    names = [j.name for _, j in out]
    if len(set(names)) != len(names):
        raise ValueError(f"sweep points share a name (and so a MODEL_DIR): {names}")
    return out


def held_out_sweep(base: Job, clusters: Sequence[str], model_dir_root: str) -> list[Job]:
    """One job per held-out cluster, each with its own MODEL_DIR under `model_dir_root`."""
    return [job for _, job in sweep_jobs(base, {"HELD_OUT_CLUSTER": list(clusters)}, model_dir_root)]
