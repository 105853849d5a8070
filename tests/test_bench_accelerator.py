"""benchmarks/bench_accelerator.py end to end at tiny size on CPU, on a machine without TF.

The run has tests/data/no_tf_site on PYTHONPATH, which hides tensorflow, seqio, tensorflow_text and
clu from the parent and from both candidates' processes, as on a bare GPU machine: the "ours"
path (models, Adafactor, train step, partitioning, flops) must not need them.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
NO_TF_SITE = REPO / "tests" / "data" / "no_tf_site"


def test_no_tf_site_hides_the_packages():
    code = ("import importlib.util, flan_trainer.flops\n"
            "assert all(importlib.util.find_spec(m) is None for m in ('tensorflow', 'seqio', 'clu'))\n"
            "try:\n    import seqio\nexcept ModuleNotFoundError:\n    print('hidden')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join((str(NO_TF_SITE), str(REPO))))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "hidden" in proc.stdout, proc.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.interop
def test_tiny_ours_and_hf_without_tensorflow(tmp_path):
    pytest.importorskip("transformers")
    out = tmp_path / "accelerator.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join((str(NO_TF_SITE), str(REPO))), JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)  # one CPU device, as bench users have
    cmd = [sys.executable, str(REPO / "benchmarks" / "bench_accelerator.py"), "--sizes=tiny", "--batches=4",
           "--seq=32/8", "--steps=2", "--dtype=float32", "--candidates=ours,hf", "--peak_flops=1e12",
           f"--output={out}"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    # Every stage printed as it finished, in order, for both candidates.
    for name in ("ours", "hf"):
        printed = [line.split("] ")[1].split(":")[0] for line in proc.stdout.splitlines()
                   if line.startswith(f"[{name} tiny b4]")]
        want = ["import", "backend", "init", "lower", "compile_only", "first_step", "steps"]
        assert printed == (want if name == "ours" else [s for s in want if "compile" not in s and s != "lower"])
    result = json.loads(out.read_text())
    runs = {r["candidate"]: r for r in result["runs"]}
    assert set(runs) == {"ours", "hf"}
    for r in runs.values():
        assert "error" not in r, r["error"]
        assert len(r["times_s"]) == 2 and r["median_s"] > 0
        assert r["tokens_per_s"] == pytest.approx(4 * 40 / r["median_s"])
        assert 0 < r["mfu"] < 1  # from --peak_flops: CPU has no known peak
        assert r["device_kind"] and r["backend"] == "cpu"
    assert runs["ours"]["compile_s"] > 0 and runs["ours"]["scan_layers"] is True
    assert "tiny b4: tokens/s ours/hf = " in "\n".join(result["ratios"])
    assert "tokens/s" in proc.stdout and "ratios:" in proc.stdout  # the table
