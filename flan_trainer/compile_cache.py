"""Persistent XLA compilation cache: a re-run of the same configuration loads its train step from disk.

``enable()`` points jax's persistent compilation cache at a folder and lowers jax's thresholds so
that every executable is written, CPU ones included (by default jax only keeps programs that took
over a second to compile). It must run before the first compilation: jax decides once per process,
at its first compile, whether the cache is in use. The CLI (``flan_trainer/main.py``) calls it
right after parsing gin.

Where the cache lives, first match wins:
  1. ``--compilation_cache_dir=DIR`` on the command line (``none`` or empty turns the cache off);
  2. the gin binding ``compile_cache.enable.cache_dir = 'DIR'`` (``None`` turns it off);
  3. jax's own ``JAX_COMPILATION_CACHE_DIR`` environment variable;
  4. ``$XDG_CACHE_HOME/flan_jax/jax_compilation_cache`` (``~/.cache/...``), shared by all runs of
     this user, so a sweep over held-out clusters compiles the (identical) train step once.

``CacheMonitor`` tells hits from compilations. jax reports them only as DEBUG log records of
``jax._src.compiler`` ("Persistent compilation cache hit for 'jit_flan_train_step'" / "PERSISTENT
COMPILATION CACHE MISS for ..."), which carry the module name; the monitor lowers that logger to
DEBUG, takes those two records for itself and lets through only what the logger's previous level
let through, so nothing else gets louder. Hits and misses of the train and eval steps are logged
at INFO by ``flan_trainer.compile_cache``:

    compilation cache HIT: jit_flan_train_step loaded from /home/u/.cache/flan_jax/... (no recompilation)
"""

from __future__ import annotations

import logging
import os
import pathlib

import gin

log = logging.getLogger(__name__)

_UNSET = object()
_JAX_COMPILER_LOGGER = "jax._src.compiler"
# Module names (jax names a jitted function's module 'jit_<function name>') logged at INFO.
WATCHED_MODULES = ("jit_flan_train_step", "jit_flan_eval_step")


def default_cache_dir() -> pathlib.Path:
    """``$XDG_CACHE_HOME/flan_jax/jax_compilation_cache`` (``~/.cache`` when XDG_CACHE_HOME is unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "flan_jax" / "jax_compilation_cache"


def resolve_cache_dir(flag_value: str | None, gin_value: object = _UNSET) -> str | None:
    """The folder to use (see the module doc for the order), or None when the cache is off."""
    given = [v for v in (flag_value, gin_value) if v is not None and v is not _UNSET]
    if flag_value is None and gin_value is None:
        return None  # gin turned it off and the command line did not turn it back on
    if given:
        value = str(given[0]).strip()
        if value.lower() in ("", "none", "off"):
            return None
        return os.path.abspath(os.path.expanduser(value))
    env = os.environ.get("JAX_COMPILATION_CACHE_DIR")
    return env if env else str(default_cache_dir())


class CacheMonitor(logging.Filter):
    """Counts persistent-cache hits and misses (compilations) by module name; see the module doc."""

    def __init__(self, cache_dir: str = "") -> None:
        super().__init__()
        self.cache_dir = cache_dir
        self.hits: list[str] = []
        self.misses: list[str] = []
        self._pass_level = logging.WARNING

    def install(self) -> CacheMonitor:
        logger = logging.getLogger(_JAX_COMPILER_LOGGER)
        self._pass_level = logger.getEffectiveLevel()
        logger.addFilter(self)
        logger.setLevel(logging.DEBUG)
        return self

    def uninstall(self) -> None:
        logger = logging.getLogger(_JAX_COMPILER_LOGGER)
        logger.removeFilter(self)
        logger.setLevel(self._pass_level)

    def filter(self, record: logging.LogRecord) -> bool:
        msg = str(record.msg)
        if msg.startswith("Persistent compilation cache hit for"):
            self._note(self.hits, record, "HIT", "loaded from {dir} (no recompilation)")
            return False
        if msg.startswith("PERSISTENT COMPILATION CACHE MISS for"):
            self._note(self.misses, record, "MISS", "compiling and writing to {dir}")
            return False
        return record.levelno >= self._pass_level

    def _note(self, into: list[str], record: logging.LogRecord, what: str, detail: str) -> None:
        module = str(record.args[0]) if record.args else "?"
        into.append(module)
        level = logging.INFO if module in WATCHED_MODULES else logging.DEBUG
        log.log(level, "compilation cache %s: %s %s", what, module, detail.format(dir=self.cache_dir))

    def summary(self) -> str:
        return f"compilation cache: {len(self.hits)} hits, {len(self.misses)} compiled ({self.cache_dir})"


_monitor: CacheMonitor | None = None


@gin.configurable(module="compile_cache")
def enable(flag_value: str | None = None, cache_dir: object = _UNSET) -> CacheMonitor | None:
    """Turns the persistent cache on (before any jit) and installs a ``CacheMonitor``.

    ``flag_value`` is the command line's ``--compilation_cache_dir`` (None when not given);
    ``cache_dir`` is the gin binding. Returns the monitor, or None when the cache is off.
    """
    global _monitor
    import jax

    path = resolve_cache_dir(flag_value, cache_dir)
    if path is None:
        jax.config.update("jax_enable_compilation_cache", False)
        log.info("persistent compilation cache off")
        return None
    try:
        pathlib.Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        log.warning("persistent compilation cache off: cannot create %s (%s); pass "
                    "--compilation_cache_dir=DIR with a writable folder", path, e)
        return None
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_compilation_cache_dir", path)
    # Cache everything: CPU compiles of small models take well under jax's 1 s default.
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    if "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES" not in os.environ:
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)  # no size floor, no override
    if _monitor is not None:
        _monitor.uninstall()
    _monitor = CacheMonitor(cache_dir=path).install()
    log.info("persistent compilation cache at %s", path)
    return _monitor


def monitor() -> CacheMonitor | None:
    """The monitor installed by ``enable`` (None before it, or when the cache is off)."""
    return _monitor
