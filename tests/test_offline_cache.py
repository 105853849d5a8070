"""The offline cache: `python -m flan_tasks cache` on Beam's DirectRunner, read by the trainer's input path.

The cache command runs in the Beam extra's venv (.venv-beam; `bash scripts/setup_env.sh --beam`),
the reading side in the project's .venv, as on real clusters (a Beam job writes, training hosts read).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import seqio
from conftest import REPO_ROOT

import flan_tasks
from flan_tasks import __main__ as tasks_cli
from flan_tasks import cache as cache_lib
from flan_tasks.manifest import mixture_manifest
from flan_trainer import index_mixture
from flan_trainer import input_pipeline as ip

BEAM_PYTHON = REPO_ROOT / ".venv-beam" / "bin" / "python"
TASKS = ("embedded_movie_reviews_train", "embedded_capital_qa_train")
MIX = "test_offline_cache_mix"
LENGTHS = {"inputs": 128, "targets": 32}


def _beam_python() -> str:
    if BEAM_PYTHON.exists():
        return str(BEAM_PYTHON)
    if os.environ.get("CI"):
        pytest.fail(f"{BEAM_PYTHON} is missing: CI must install the Beam extra (scripts/setup_env.sh --beam)")
    pytest.skip(f"the Beam extra is not installed ({BEAM_PYTHON}); run `bash scripts/setup_env.sh --beam`")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("seqio_cache")
    cmd = [_beam_python(), "-m", "flan_tasks", "--suite", "embedded", "cache",
           *[a for t in TASKS for a in ("--task", t)], "--output_cache_dir", str(out),
           "--runner=DirectRunner", "--direct_num_workers=1"]
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert all(f"cached: {t}" in proc.stdout for t in TASKS), proc.stdout
    return out


@pytest.fixture
def cached(cache_dir):
    flan_tasks.register_embedded_suite()
    if MIX not in seqio.MixtureRegistry.names():
        seqio.MixtureRegistry.add(MIX, [(t, flan_tasks.task_info(t).rate) for t in TASKS])
    before = seqio.utils.get_global_cache_dirs()
    seqio.add_global_cache_dirs([str(cache_dir)])
    yield cache_dir
    seqio.set_global_cache_dirs(before)
    for t in TASKS:
        seqio.get_mixture_or_task(t)._cache_dir = None  # forget the cache for later tests


def _batches(cached: bool, shard: seqio.ShardInfo, n: int = 6) -> list[dict]:
    ds = ip.get_host_dataset(MIX, LENGTHS, 4, seqio.EncDecFeatureConverter, shard, seed=11,
                             use_cached_tasks=cached)
    return list(ds.take(n).as_numpy_iterator())


@pytest.mark.slow
def test_cached_reads_the_same_examples_as_uncached(cached):
    for task_name in TASKS:
        task = seqio.get_mixture_or_task(task_name)
        assert task.cache_dir == os.path.join(cached, task_name)
        stats = json.load(open(os.path.join(task.cache_dir, "stats.train.json")))
        assert stats["examples"] == task.num_input_examples("train")  # every row, capped alike
        assert cache_lib.read_fingerprint(task.cache_dir) == cache_lib.fingerprint(task_name)
    # The trainer's input path (per-task shuffle, mixing, packing), same seed, on one host and on
    # the second of two hosts: the same batches, so each task gave the same examples in order.
    for shard in (seqio.ShardInfo(0, 1), seqio.ShardInfo(1, 2)):
        plain, from_cache = _batches(False, shard), _batches(True, shard)
        for a, b in zip(plain, from_cache, strict=True):
            assert a.keys() == b.keys()
            for k in a:
                np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    # The index loader (input_loader.kind='index') reads the same rows, in the same order, from
    # the cache as on the fly, so both give the same stream for a seed.
    cached_rows = index_mixture.read_rows(MIX, LENGTHS, use_cached=True)
    plain_rows = index_mixture.read_rows(MIX, LENGTHS, use_cached=False)
    assert cached_rows.digest() == plain_rows.digest() and sum(cached_rows.counts) > 100
    # Mixture rates do not depend on where the rows come from.
    rates = [(r.task, r.rate) for r in mixture_manifest(MIX)]
    assert all(rate for _, rate in rates)
    seqio.set_global_cache_dirs([])
    for t in TASKS:
        seqio.get_mixture_or_task(t)._cache_dir = None
    assert [(r.task, r.rate) for r in mixture_manifest(MIX)] == rates


@pytest.mark.slow
def test_stale_cache_is_refused(cached, tmp_path):
    # A cache built with another vocabulary must not be read as if it matched.
    task = seqio.get_mixture_or_task(TASKS[0])
    stale = tmp_path / "stale"
    src = cached / TASKS[0]
    (stale / TASKS[0]).mkdir(parents=True)
    for f in src.iterdir():
        data = f.read_bytes()
        if f.name == "COMPLETED":
            fp = json.loads(data)
            fp["vocabulary"] = "sentencepiece:0123456789abcdef:extra_ids=100"
            data = json.dumps(fp).encode()
        (stale / TASKS[0] / f.name).write_bytes(data)
    seqio.set_global_cache_dirs([str(stale)])
    task._cache_dir = None
    with pytest.raises(ValueError, match=r"built with other settings.*vocabulary: cache 'sentencepiece"):
        ip.check_cached(TASKS[0])


def test_cache_command_without_beam_names_the_install(tmp_path, monkeypatch):
    # Where Apache Beam is not installed, the command says how to get it.
    monkeypatch.setitem(sys.modules, "apache_beam", None)  # `import apache_beam` raises ImportError
    monkeypatch.delitem(sys.modules, "flan_tasks.cache_beam", raising=False)
    with pytest.raises(SystemExit, match=r"needs Apache Beam.*setup_env.sh --beam"):
        tasks_cli.main(["cache", "--task", TASKS[0], "--output_cache_dir", str(tmp_path)])
