"""TFDS sources: `python -m flan_tasks prepare --check` and the trainer's all-missing check before model init.

"Prepared" datasets here are the real builders' dataset_info.json written to their version folder
in a temporary data dir (what TFDS itself checks); nothing is downloaded.
"""

from __future__ import annotations

import os

import gin
import jax
import pytest
import seqio
import tensorflow_datasets as tfds
from test_train_loop import JAX_WORK_EVENTS, TINY_GIN

from flan_tasks import __main__ as tasks_cli
from flan_tasks.flan import register_flan_collection
from flan_trainer import gin_utils
from flan_trainer.train import train

NLI_EVAL_SOURCES = {
    "anli/r1:0.1.0", "anli/r2:0.1.0", "anli/r3:0.1.0", "super_glue/cb:1.0.2", "glue/mnli:2.0.0",
    "glue/qnli:2.0.0", "super_glue/rte:1.0.2", "snli:1.1.0", "glue/wnli:2.0.0",
}
MIX = "test_prepare_sources_mix"  # three flan training tasks


def _mock_prepare(data_dir, name: str) -> None:
    builder = tfds.builder(name, data_dir=str(data_dir))
    os.makedirs(builder.data_dir)
    builder.info.write_to_directory(builder.data_dir)
    assert builder.is_prepared()


@pytest.fixture
def flan_byte():
    # The trainer's default vocabulary (byte): the same registration key, so train() keeps it.
    register_flan_collection(vocabulary=seqio.ByteVocabulary())
    if MIX not in seqio.MixtureRegistry.names():
        seqio.MixtureRegistry.add(MIX, [("flan_rte_train", 1.0), ("flan_copa_train", 1.0),
                                        ("flan_ag_news_train", 1.0)])
    yield
    seqio.set_tfds_data_dir_override(None)


def test_prepare_check_lists_exactly_the_missing(tmp_path, flan_byte, capsys):
    prepared = {"glue/qnli:2.0.0", "snli:1.1.0"}
    for name in prepared:
        _mock_prepare(tmp_path, name)
    # `flan_held_out_nli_eval` reads the nli cluster's nine TFDS datasets.
    status = tasks_cli.main(["--suite", "flan", "prepare", "--mixture", "flan_held_out_nli_eval",
                             "--data_dir", str(tmp_path), "--check"])
    out = capsys.readouterr().out
    lines = [line.split() for line in out.splitlines() if line.split() and ":" in line.split()[0]]
    assert {w[0] for w in lines} == NLI_EVAL_SOURCES, out
    assert {w[0] for w in lines if w[1] == "MISSING"} == NLI_EVAL_SOURCES - prepared, out
    assert {w[0] for w in lines if w[1] == "prepared"} == prepared, out
    assert f"2 of 9 TFDS datasets prepared in {tmp_path}" in out
    assert status == 1  # --check: a missing dataset is a failure for scripts


def test_training_names_every_missing_dataset_before_model_init(tmp_path, flan_byte):
    _mock_prepare(tmp_path, "super_glue/rte:1.0.2")
    seqio.set_tfds_data_dir_override(str(tmp_path))
    model_dir = tmp_path / "run"
    gin.clear_config()
    gin_utils.parse_gin([str(TINY_GIN)], [f"MODEL_DIR = '{model_dir}'", "TASK_SUITE = 'flan'",
                                          "HELD_OUT_CLUSTER = None", f"MIXTURE_OR_TASK_NAME = '{MIX}'"])
    jax_work = []

    def listener(event, duration_secs, **kwargs):
        if event in JAX_WORK_EVENTS:
            jax_work.append(event)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        with pytest.raises(FileNotFoundError) as err:
            train()
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
        gin.clear_config()
    msg = str(err.value)
    assert "2 TFDS dataset(s)" in msg and "super_glue/copa:1.0.2" in msg and "ag_news_subset:1.0.0" in msg, msg
    assert "super_glue/rte" not in msg, msg
    assert f"prepare --mixture {MIX}" in msg and "--tfds_data_dir=DIR" in msg
    assert jax_work == []  # no parameter shapes traced, nothing compiled
    assert not model_dir.exists()
