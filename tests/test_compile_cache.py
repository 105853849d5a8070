"""The persistent compilation cache (flan_trainer/compile_cache.py): where it lives.

That a re-run of the same configuration loads its train step from a warm cache instead of
compiling it (a logged HIT, no MISS) is checked on the restart of
tests/test_trainer_cli.py::test_sigkill_after_checkpoint_then_restart_logs_the_same_losses, which
already runs the same configuration twice: a separate pair of CLI runs here cost a minute of CI.
"""

from __future__ import annotations

from flan_trainer import compile_cache


def test_cache_dir_resolution_order(tmp_path, monkeypatch):
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    resolve = compile_cache.resolve_cache_dir
    assert resolve(None) == str(tmp_path / "xdg" / "flan_jax" / "jax_compilation_cache")
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "env"))
    assert resolve(None) == str(tmp_path / "env")
    assert resolve(None, str(tmp_path / "gin")) == str(tmp_path / "gin")  # gin over the environment
    assert resolve(str(tmp_path / "flag"), str(tmp_path / "gin")) == str(tmp_path / "flag")  # flag first
    assert resolve(None, None) is None  # gin turned it off
    assert resolve("none", str(tmp_path / "gin")) is None
    assert resolve("", None) is None
