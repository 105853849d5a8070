"""`import flan_tasks` is cheap, registers nothing, and works when jax cannot be imported.

seqio itself imports jax (through clu), so with jax blocked only the jax-free parts of
flan_tasks (import, clusters, held-out rules, OPTIONS formatting) can run.
"""

import subprocess
import sys

from conftest import REPO_ROOT

_BLOCKED = r"""
import sys, time
for blocked in ("jax", "flax", "optax", "flan_trainer"):
    sys.modules[blocked] = None  # any import of these now raises ImportError
start = time.perf_counter()
import flan_tasks
elapsed = time.perf_counter() - start
assert elapsed < 1.0, elapsed
assert "seqio" not in sys.modules and "flan_tasks.registry" not in sys.modules
assert flan_tasks.clusters("embedded")[0] == "nli"
assert "paraphrase" not in flan_tasks.held_out_training_clusters("embedded", "nli")
print("OK", round(elapsed, 3))
"""

_NOTHING_REGISTERED = r"""
import seqio
before = set(seqio.TaskRegistry.names()) | set(seqio.MixtureRegistry.names())
import flan_tasks
from flan_tasks import eval_plan, mixture_manifest, validate_spec  # noqa: F401 (module loads only)
after = set(seqio.TaskRegistry.names()) | set(seqio.MixtureRegistry.names())
assert after == before, sorted(after - before)
assert not any(n.startswith(("embedded_", "flan_")) for n in after)
print("OK")
"""


def _run(script):
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK" in result.stdout


def test_import_is_cheap_and_jax_free():
    _run(_BLOCKED)


def test_import_registers_nothing():
    _run(_NOTHING_REGISTERED)
