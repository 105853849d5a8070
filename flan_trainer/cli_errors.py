"""Turning a failed run into one readable line of cause and fix, and an exit status.

``python -m flan_trainer`` ends a failed run with ``error: <cause>. Fix: <what to do>`` on stderr
(details follow on the next lines where there are any), and exits with:

  1  training stopped by another error (e.g. a NaN loss), or an unexpected one (traceback first)
  2  the configuration: a gin syntax error, an unknown binding, a bad value
  3  a checkpoint: damaged, not matching the model, or missing
  4  the file system: MODEL_DIR cannot be written, or the disk is full

Known errors print no traceback (``--log_level=DEBUG`` adds it); unexpected ones keep it.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator

EXIT_OTHER, EXIT_CONFIG, EXIT_CHECKPOINT, EXIT_STORAGE = 1, 2, 3, 4

_STORAGE_ERRNOS = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
                   errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
                   errno.EPERM: "operation not permitted", errno.ENOTDIR: "a path component is not a directory"}
# How the same conditions read when they come back through TensorStore / Orbax as plain text.
_STORAGE_TEXT = ("no space left on device", "disk quota exceeded", "read-only file system", "permission denied")


class GinConfigError(ValueError):
    """The gin files or --gin.X bindings could not be parsed (wraps gin's own error)."""


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def describe_gin_error(exc: Exception) -> str:
    """One line for a gin parse failure: where, what, and how to fix it."""
    if isinstance(exc, SyntaxError):
        where = f"{exc.filename or 'a --gin. binding'}" + (f" line {exc.lineno}" if exc.lineno else "")
        text = f": `{exc.text.strip()}`" if exc.text else ""
        return (f"gin syntax error in {where}: {str(exc.msg).rstrip('.')}{text}. Fix: correct that line; values are gin "
                "literals (strings in quotes, e.g. --gin.MODEL_DIR=\"'/path/run'\").")
    if isinstance(exc, FileNotFoundError):
        return f"{exc} Fix: check the file name, or add its folder with --gin_search_paths."
    first, *rest = str(exc).strip().splitlines() or [type(exc).__name__]
    where = " ".join(line.strip() for line in rest[:2])
    return (f"gin configuration error: {first}{' (' + where + ')' if where else ''}. Fix: check the "
            "spelling of the binding; a configurable exists only if a gin file imports its module.")


def _storage_cause(exc: BaseException) -> tuple[str, str] | None:
    """(cause, path) when a failure comes from the file system refusing a write."""
    for e in _chain(exc):
        if isinstance(e, OSError) and e.errno in _STORAGE_ERRNOS:
            return _STORAGE_ERRNOS[e.errno], str(e.filename or "")
    for e in _chain(exc):
        lowered = str(e).lower()
        for cause in _STORAGE_TEXT:
            if cause in lowered:
                return cause, ""
    return None


def _model_dir_summary() -> tuple[str, str]:
    """(MODEL_DIR, 'its checkpoints ...') from the parsed gin config, where there is one."""
    try:
        import gin

        from flan_trainer import checkpoints

        model_dir = str(gin.query_parameter("%MODEL_DIR"))
        steps = checkpoints.complete_steps(model_dir)
    except Exception:  # noqa: BLE001 - only used to enrich the message
        return "MODEL_DIR", ""
    kept = f" Checkpoints already there are intact: {steps}." if steps else ""
    return model_dir, kept


def explain(exc: BaseException) -> tuple[int, str | None]:
    """(exit status, message whose first line is '<cause>. Fix: <fix>'), message None if unknown."""
    from flan_trainer import checkpoints
    from flan_trainer.distributed import EXIT_MULTIHOST, DistributedStartupError
    from flan_trainer.faults import NonFiniteLossError

    if isinstance(exc, GinConfigError):
        return EXIT_CONFIG, str(exc)
    if isinstance(exc, DistributedStartupError):
        return EXIT_MULTIHOST, str(exc)
    if isinstance(exc, checkpoints.CheckpointCorruptError | checkpoints.CheckpointMismatchError
                  | checkpoints.CheckpointNotFoundError):
        return EXIT_CHECKPOINT, str(exc)
    storage = _storage_cause(exc)
    if storage is not None:
        cause, path = storage
        model_dir, kept = _model_dir_summary()
        where = f" ({path})" if path else ""
        return EXIT_STORAGE, (f"cannot write to {model_dir}{where}: {cause}. Fix: free space or make it "
                              f"writable, or set --gin.MODEL_DIR to a writable disk with room; rerunning the "
                              f"same command resumes from the last complete checkpoint.{kept}\n  "
                              f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}")
    if isinstance(exc, NonFiniteLossError):
        return EXIT_OTHER, str(exc)
    return EXIT_OTHER, None


def unexpected(exc: BaseException) -> str:
    """The last line after the traceback of an error that is not a known fault."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return (f"{type(exc).__name__}: {first}. Fix: not a known fault; the traceback above shows where it "
            "happened. Checkpoints already in MODEL_DIR were not modified by the failure.")
