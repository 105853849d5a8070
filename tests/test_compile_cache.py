"""The persistent compilation cache (flan_trainer/compile_cache.py) through the trainer's CLI.

Two runs of the same tiny configuration into fresh MODEL_DIRs share one cache folder: the first
compiles the train step and writes it, the second must load it (a logged cache hit) and compile
no train step of its own.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

from flan_trainer import compile_cache

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY_GIN = REPO / "tests" / "data" / "tiny_train.gin"
STEP = "jit_flan_train_step"


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


def _run(model_dir: pathlib.Path, cache: pathlib.Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_PERSISTENT_CACHE")}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    env.update(JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p))
    env.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
    cmd = [sys.executable, "-m", "flan_trainer", f"--gin_file={TINY_GIN}", f"--gin.MODEL_DIR='{model_dir}'",
           "--gin.TRAIN_STEPS=2", "--gin.EVAL_PERIOD=100", f"--compilation_cache_dir={cache}"]
    proc = subprocess.run(cmd, env=env, cwd=model_dir.parent, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "finished at step 2" in proc.stderr, proc.stderr[-3000:]
    return proc.stderr


@pytest.mark.slow
def test_second_run_loads_the_train_step_from_the_cache(tmp_path):
    cache = tmp_path / "cache"
    first = _run(tmp_path / "run1", cache)
    assert f"compilation cache MISS: {STEP}" in first, first[-3000:]
    assert f"compilation cache HIT: {STEP}" not in first
    assert any(cache.iterdir()), "nothing written to the cache folder"

    second = _run(tmp_path / "run2", cache)
    assert f"compilation cache HIT: {STEP} loaded from {cache}" in second, second[-3000:]
    assert f"compilation cache MISS: {STEP}" not in second, "the train step was compiled again"
    # The summary line counts every executable: the warm run compiled none of its own.
    assert "hits, 0 compiled" in second, second[-3000:]
