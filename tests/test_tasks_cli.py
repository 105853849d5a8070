"""The `python -m flan_tasks` commands, run in-process."""

import json
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

from flan_tasks.__main__ import main


@pytest.mark.parametrize(
    "argv, expect",
    [
        (["clusters"], "held-out training clusters"),
        (["datasets"], "fact_nli"),
        (["mixtures"], "embedded_held_out_nli_train"),
        (["templates", "fact_nli"], "--- template 9 (turned around)"),
        (["render", "embedded_flag_qa_t0_test_rank", "-n", "2"], "OPTIONS:\n- red"),
        (["manifest", "embedded_all_train"], "TOTAL"),
    ],
)
def test_commands(argv, expect, capsys):
    assert main(["--suite", "embedded", *argv]) == 0
    assert expect in capsys.readouterr().out


def test_manifest_json(capsys):
    main(["manifest", "embedded_held_out_sentiment_train", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert doc["mixture"] == "embedded_held_out_sentiment_train"
    assert all(t["cluster"] != "sentiment" for t in doc["tasks"])
    assert abs(sum(t["share"] for t in doc["tasks"]) - 1) < 1e-9


def test_unknown_dataset_is_a_clear_error():
    with pytest.raises(SystemExit, match="unknown dataset 'nope'"):
        main(["templates", "nope"])


@pytest.mark.slow
def test_module_entry_point():
    result = subprocess.run(
        [sys.executable, "-m", "flan_tasks", "clusters"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "coreference" in result.stdout
