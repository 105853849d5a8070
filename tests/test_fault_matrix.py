"""Fault matrix: what a run does when its checkpoints, config, disk or process go wrong.

Every case asserts the exit status, one readable `error: <cause>. Fix: ...` line, and that no
checkpoint already written was lost or changed. One finished tiny run (tests/data/tiny_train.gin,
checkpoints 4 and 8) is made once per module and copied for each case. Cases that need no kill run
the command line's `main()` in this process (the same code as `python -m flan_trainer`, without
paying for a new process); kills run `python -m flan_trainer` as a subprocess.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import gin
import pytest
import tensorstore as ts

from flan_trainer import checkpoints, gin_utils, restore_fallback
from flan_trainer.main import main

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY_GIN = REPO / "tests" / "data" / "tiny_train.gin"
BAD_ARRAY = "params/decoder/logits_dense/kernel"


# ----------------------------------------------------------------------------- helpers


@pytest.fixture
def clean_gin():
    gin.clear_config()
    yield
    gin.clear_config()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> pathlib.Path:
    """A finished 8-step tiny run with checkpoints 4 and 8 (made in this process, once)."""
    from flan_trainer.train import train

    model_dir = tmp_path_factory.mktemp("finished") / "run"
    gin.clear_config()
    gin_utils.parse_gin([str(TINY_GIN)], [f"MODEL_DIR = '{model_dir}'"])
    try:
        assert train().final_step == 8
    finally:
        gin.clear_config()
    assert checkpoints.complete_steps(model_dir) == [4, 8]
    assert (model_dir / "checkpoint_8" / checkpoints.INTEGRITY_ITEM).is_dir()
    return model_dir


def _copy(src: pathlib.Path, dst: pathlib.Path) -> pathlib.Path:
    shutil.copytree(src, dst)
    return dst


def tree_hash(root: pathlib.Path) -> str:
    """One hash over every file's relative path and bytes (and every directory's name)."""
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        h.update(str(path.relative_to(root)).encode())
        if path.is_file():
            h.update(path.read_bytes())
    return h.hexdigest()


@pytest.fixture
def cli(capsys, caplog, clean_gin):
    """Runs `python -m flan_trainer ...` in this process: (exit status, everything it printed and logged)."""
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


def _error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, f"expected one 'error:' line in:\n{output[-4000:]}"
    assert "Fix:" in lines[0], lines[0]
    return lines[0]


def _chunk_location(state_dir: pathlib.Path, array: str) -> tuple[pathlib.Path, int, int]:
    """(data file, offset, length) of the first stored chunk of `array` ('params/a/b') in an OCDBT item."""
    kv = ts.KvStore.open({"driver": "ocdbt", "base": f"file://{state_dir}/"}).result()
    key = next(k for k in kv.list().result() if k.startswith(array.replace("/", ".").encode() + b"/0"))
    value = kv.read(key).result().value
    for path in sorted(state_dir.rglob("*")):
        if path.is_file() and (offset := path.read_bytes().find(value)) >= 0:
            return path, offset, len(value)
    raise AssertionError(f"chunk {key!r} not found in the files of {state_dir}")


def flip_bytes(state_dir: pathlib.Path, array: str, count: int = 8) -> pathlib.Path:
    """Inverts `count` bytes in the middle of one stored chunk of `array`; returns the file."""
    path, offset, length = _chunk_location(state_dir, array)
    data = bytearray(path.read_bytes())
    middle = offset + length // 2
    for i in range(middle, middle + count):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


# ----------------------------------------------------------------------------- damaged checkpoints


@pytest.mark.slow
def test_bit_flip_in_latest_checkpoint_stops_then_falls_back(tmp_path, finished_run, cli):
    """The issue's scenario: flip bytes of one array of checkpoint_8, rerun with more steps."""
    model_dir = _copy(finished_run, tmp_path / "run")
    flip_bytes(model_dir / "checkpoint_8" / "state", BAD_ARRAY)
    before = tree_hash(model_dir)
    damaged_8 = tree_hash(model_dir / "checkpoint_8")
    intact_4 = tree_hash(model_dir / "checkpoint_4")

    rc, output = cli(model_dir, "--gin.TRAIN_STEPS=12")
    assert rc == 3, output[-4000:]
    line = _error_line(output)
    assert str(model_dir / "checkpoint_8") in line and BAD_ARRAY in line, line
    assert "--gin.RESTORE_FALLBACK=True" in line and "checkpoint_4" in line, line
    assert "Traceback" not in output
    assert tree_hash(model_dir) == before  # nothing modified, not even config.gin

    rc, output = cli(model_dir, "--gin.TRAIN_STEPS=12", "--gin.RESTORE_FALLBACK=True")
    assert rc == 0, output[-4000:]
    assert "finished at step 12 (completed); started at 4" in output, output[-3000:]
    assert f"RESTORE_FALLBACK: checkpoint {model_dir / 'checkpoint_8'} is damaged" in output
    assert f"resumed from {model_dir / 'checkpoint_4'}" in output
    assert checkpoints.complete_steps(model_dir) == [4, 8, 12]
    assert tree_hash(model_dir / "checkpoint_4") == intact_4
    (moved,) = (model_dir / restore_fallback.DAMAGED_DIR).iterdir()
    assert moved.name.startswith("checkpoint_8.") and tree_hash(moved) == damaged_8  # kept, not deleted


def test_truncated_array_file_names_the_arrays(tmp_path, finished_run, cli):
    model_dir = _copy(finished_run, tmp_path / "run")
    path, offset, length = _chunk_location(model_dir / "checkpoint_8" / "state", BAD_ARRAY)
    with open(path, "r+b") as f:
        f.truncate(offset + length // 2)
    before = tree_hash(model_dir)
    rc, output = cli(model_dir)
    assert rc == 3, output[-4000:]
    line = _error_line(output)
    assert "checkpoint_8 is damaged" in line and BAD_ARRAY in line, line
    assert tree_hash(model_dir) == before


def test_checkpoint_of_another_model_size(tmp_path, finished_run, cli):
    model_dir = _copy(finished_run, tmp_path / "run")
    before = tree_hash(model_dir)
    rc, output = cli(model_dir, "--gin.network.T5Config.mlp_dim=128")
    assert rc == 3, output[-4000:]
    line = _error_line(output)
    assert "checkpoint_8 does not match the model" in line, line
    assert "decoder/layers_0/mlp/wi_0/kernel: model expects shape (32, 128)" in output
    assert tree_hash(model_dir) == before


def test_checkpoint_with_another_vocabulary_size(tmp_path, finished_run, cli):
    model_dir = _copy(finished_run, tmp_path / "run")
    before = tree_hash(model_dir)
    rc, output = cli(model_dir, "--gin.NUM_EMBEDDINGS=512")
    assert rc == 3, output[-4000:]
    _error_line(output)
    assert "token_embedder/embedding: model expects shape (512, 32)" in output, output[-3000:]
    assert tree_hash(model_dir) == before


# ----------------------------------------------------------------------------- configuration


def test_gin_syntax_error_and_unknown_binding(tmp_path, finished_run, cli):
    model_dir = _copy(finished_run, tmp_path / "run")
    before = tree_hash(model_dir)
    bad = tmp_path / "bad.gin"
    bad.write_text(f"include '{TINY_GIN}'\nTRAIN_STEPS = = 12\n")
    rc, output = cli(model_dir, gin_files=(bad,))
    assert rc == 2, output[-4000:]
    line = _error_line(output)
    assert f"gin syntax error in {bad} line 2" in line or ("bad.gin" in line and "line 2" in line), line

    rc, output = cli(model_dir, "--gin.train.batchsize=4")
    assert rc == 2, output[-4000:]
    line = _error_line(output)
    assert "doesn't have a parameter named 'batchsize'" in line, line
    rc, output = cli(model_dir, "--gin.trian.batch_size=4")
    assert rc == 2 and "No configurable matching 'trian'" in _error_line(output)
    assert "Traceback" not in output
    assert tree_hash(model_dir) == before
