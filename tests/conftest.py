"""Shared test setup: 8 virtual CPU devices for mesh tests, quiet TensorFlow, repo paths."""

import os
import pathlib

# Must happen before jax is imported anywhere: mesh tests need 8 host devices.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# A persistent compilation cache for every test process and the trainer subprocesses they start:
# most of this suite's CPU is XLA compiling the same small programs as the last run, which a cache
# loads instead (the key covers the program, the compile options and the jax/XLA versions, so a
# changed program is compiled anew). It is the trainer's own default folder (flan_trainer/
# compile_cache.py); FLAN_TEST_COMPILATION_CACHE=DIR picks another, =none turns it off. Tests that
# need a cache of their own (test_trainer_cli.py, test_fault_matrix.py) still set theirs.
from flan_trainer.compile_cache import default_cache_dir  # noqa: E402 (imports no jax)

_CACHE = os.environ.get("FLAN_TEST_COMPILATION_CACHE") or str(default_cache_dir())
if _CACHE.lower() not in ("none", "off"):
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _CACHE)
# jax's own switch for programs that cost more to optimise than to run (XLA:CPU's LLVM at -O0, no
# expensive passes): the tests' programs are tiny and run a few steps, and compiling them is most
# of this suite's CPU (a tiny T5 loss+grad compiles in ~40% less CPU). The HLO, shardings and
# collectives are the same; floats may differ in the last bits (e.g. FMA contraction), and every
# comparison in the suite is between programs compiled alike or within a tolerance. An environment
# variable, so the trainer subprocesses (including the multi-process ones, whose XLA_FLAGS are
# replaced) inherit it; it is part of the compilation cache key, so the cache never mixes them with
# users' executables. JAX_DISABLE_MOST_OPTIMIZATIONS=0 turns it off.
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")

import sys  # noqa: E402

# torch probes for triton; triton's LLVM clashes with TensorFlow's once both are loaded in one
# process ("inconsistency in registered CommandLine options") and aborts it. Nothing here needs
# triton, so make it unimportable before any test imports torch.
sys.modules.setdefault("triton", None)

import pytest  # noqa: E402

# Per-test wall/CPU table (tests/cpuprof.py): opt-in, never on by default.
pytest_plugins = ["tests.cpuprof"] if os.environ.get("FLAN_TEST_CPUPROF") else []

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_VOCAB = REPO_ROOT.parent / "shared" / "vocab" / "t5_cc_all_32000.spiece.model"
TINY_GIN = REPO_ROOT / "tests" / "data" / "tiny_train.gin"


@pytest.fixture(scope="session")
def repo_root() -> pathlib.Path:
    return REPO_ROOT


@pytest.fixture
def cli(capsys, caplog):
    """Runs `python -m flan_trainer ...` in this process (the same `main()`, without paying ~10 s
    of imports for a new process): run(model_dir, *flags, gin_files=(tiny_train.gin,)) gives
    (exit status, everything it printed and logged). For cases that need no kill or restart."""
    import gin

    from flan_trainer.main import main

    caplog.set_level("INFO")

    def run(model_dir: pathlib.Path, *extra: str, gin_files=(TINY_GIN,)) -> tuple[int, str]:
        gin.clear_config()
        caplog.clear()
        try:
            rc = main([*[f"--gin_file={g}" for g in gin_files], f"--gin.MODEL_DIR='{model_dir}'", *extra])
        finally:
            gin.clear_config()
        out = capsys.readouterr()
        return rc, caplog.text + out.out + out.err

    return run


@pytest.fixture(scope="session")
def spm_path() -> pathlib.Path:
    if not SHARED_VOCAB.exists():
        pytest.skip(f"standard T5 SentencePiece model not found at {SHARED_VOCAB}")
    return SHARED_VOCAB


# The files that cost the most (measured with tests/cpuprof.py: per-test user+sys time incl.
# subprocesses, and wall for the multi-process files, which wait on heartbeats and peers), heaviest
# first. `--dist loadfile` hands whole files to the two workers in collection order, so starting
# with the long ones keeps one worker from running a long file alone at the end. A worker whose file
# has at most 2 tests left takes the next file at once, so the first worker takes the 1st and 3rd
# files: the two multi-process files go there, one after the other (both at once would be 5
# processes on 2 cores), and the longest, which waits the most, goes first.
HEAVY_FIRST = ("test_launch_multihost.py", "test_fault_matrix.py", "test_multihost.py", "test_launch.py",
               "test_trainer_cli.py", "test_train_step.py", "test_models_scan.py", "test_tasks_registry.py",
               "test_flan_mock_pipeline.py", "test_models_api.py")


def pytest_collection_modifyitems(config, items) -> None:
    del config
    rank = {name: i for i, name in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order
