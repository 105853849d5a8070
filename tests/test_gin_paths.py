"""Regression: gin files and MODEL_DIR given as relative paths, from a folder that has a runs/ directory."""

import os

import gin

from flan_trainer import gin_utils
from flan_trainer.train import _absolute


def test_relative_gin_files_parse_next_to_a_runs_folder(tmp_path, monkeypatch):
    # A plain runs/ folder in the working directory used to be taken by gin for a Python package
    # named `runs` (the quickstart writes its output there), crashing the parse with a TypeError.
    (tmp_path / "runs").mkdir()
    (tmp_path / "models").mkdir()
    monkeypatch.chdir(tmp_path)
    gin.clear_config()
    try:
        gin_utils.parse_gin(["runs/quickstart.gin"], ["MODEL_DIR = 'runs/x'"])
        assert gin.query_parameter("%MODEL_DIR") == "runs/x"
    finally:
        gin.clear_config()


def test_model_dir_is_made_absolute_but_urls_are_kept(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _absolute("runs/quickstart") == os.path.join(str(tmp_path), "runs", "quickstart")
    assert _absolute("gs://bucket/run") == "gs://bucket/run"
