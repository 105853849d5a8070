"""Gin plumbing with T5X's command-line conventions.

`--gin_file` (repeatable, later wins), `--gin.MACRO=value` (rewritten into the binding
`MACRO = value`), `--gin_search_paths` (comma separated). Values are gin literals, so strings
need quotes (`--gin.MODEL_DIR="'/tmp/run'"`); as a convenience a value that does not parse as
a gin literal is taken as a string.
"""

from __future__ import annotations

import ast
import logging
import os
import pathlib
from collections.abc import Mapping, Sequence

import gin

log = logging.getLogger(__name__)

REPO_GIN_DIR = pathlib.Path(__file__).resolve().parents[1] / "gin"


def split_gin_overrides(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Separates `--gin.X=Y` arguments (returned as bindings) from all other arguments."""
    bindings, rest = [], []
    for arg in argv:
        if arg.startswith("--gin.") and "=" in arg:
            name, value = arg[len("--gin."):].split("=", 1)
            bindings.append(f"{name} = {_as_gin_literal(value)}")
        else:
            rest.append(arg)
    return bindings, rest


def _as_gin_literal(value: str) -> str:
    """Keeps valid gin values (numbers, quoted strings, None, @refs, %macros, lists) as they are."""
    stripped = value.strip()
    if stripped.startswith(("@", "%", "[", "(", "{", "'", '"')) or stripped in ("None", "True", "False"):
        return stripped
    try:
        ast.literal_eval(stripped)
        return stripped
    except (ValueError, SyntaxError):
        return repr(stripped)


def _drop_package_resource_reader() -> None:
    """Stops gin from treating 'runs/x.gin' as a file inside a Python package called `runs`.

    gin's resource reader maps 'a/b.gin' to package `a`; when the working directory has a plain
    folder of that name (e.g. the quickstart's own runs/ output folder), the folder is found as a
    namespace package without a file origin and gin crashes with a TypeError. Our gin files are
    plain files on the search path, so the plain file reader is all we need.
    """
    readers = getattr(gin.config, "_FILE_READERS", None)
    if readers is not None:
        readers[:] = [r for r in readers if getattr(r[0], "__module__", "") != "gin.resource_reader"]


def parse_gin(gin_files: Sequence[str], bindings: Sequence[str], search_paths: Sequence[str] = ()) -> None:
    """Parses gin files and bindings, searching the repo's gin/ folder and any extra paths."""
    _drop_package_resource_reader()
    for path in [str(REPO_GIN_DIR), *search_paths, os.getcwd()]:
        gin.add_config_file_search_path(path)
    missing = [f for f in gin_files if not _findable(f, search_paths)]
    if missing:
        raise FileNotFoundError(
            f"gin file(s) not found: {missing}. Looked in the current directory ({os.getcwd()}), "
            f"{REPO_GIN_DIR} and --gin_search_paths={list(search_paths)}."
        )
    gin.parse_config_files_and_bindings(list(gin_files), list(bindings), finalize_config=False)


def _findable(name: str, search_paths: Sequence[str]) -> bool:
    roots = [pathlib.Path.cwd(), REPO_GIN_DIR, *map(pathlib.Path, search_paths)]
    return pathlib.Path(name).is_file() or any((root / name).is_file() for root in roots)


# Set by launch/ (XManager work units): which experiment and work unit started this run.
LAUNCH_ENV_VARS = ("XM_EXPERIMENT_ID", "XM_EXPERIMENT_TITLE", "XM_WORK_UNIT_ID", "XM_WORK_UNIT_NAME")


def launch_labels(environ: Mapping[str, str] | None = None) -> list[str]:
    """`NAME: value` for each launch variable that is set (empty when started by hand)."""
    environ = os.environ if environ is None else environ
    return [f"{name}: {environ[name]}" for name in LAUNCH_ENV_VARS if environ.get(name)]


def write_operative_config(model_dir: str) -> str:
    """Writes gin's operative config (every binding actually used) to MODEL_DIR/config.gin.

    The launch labels (XManager experiment and work unit) head the file as comments.
    """
    path = os.path.join(model_dir, "config.gin")
    os.makedirs(model_dir, exist_ok=True)
    header = "".join(f"# {line}\n" for line in launch_labels())
    with open(path, "w") as f:
        f.write(header + ("\n" if header else "") + gin.operative_config_str())
    return path
