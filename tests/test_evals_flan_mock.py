"""The evaluation runner on the FLAN catalog (not only the embedded suite), over offline mock TFDS data.

Random model, so the scores mean nothing; this checks that every part of the FLAN path runs: the
catalog's rank and generation tasks, the T5 SentencePiece vocabulary, aggregation, paper numbers
next to ours, and the written report.
"""

import jax
import pytest
import seqio

from evals.runner import evaluate
from flan_tasks.flan.mock_data import mock_flan_tfds
from flan_trainer.models.config import TransformerConfig
from flan_trainer.models.model_api import EncoderDecoderModel

CONFIG = TransformerConfig(vocab_size=32128, emb_dim=32, num_heads=2, num_encoder_layers=1, num_decoder_layers=1,
                           head_dim=16, mlp_dim=64, dtype="float32")


@pytest.mark.slow
def test_nli_cluster_of_the_flan_catalog_end_to_end(spm_path, tmp_path):
    model = EncoderDecoderModel(CONFIG)
    shapes = {"encoder_input_tokens": (1, 8), "decoder_input_tokens": (1, 4)}
    params = jax.tree.map(lambda x: getattr(x, "value", x),
                          model.get_initial_variables(jax.random.PRNGKey(0), shapes)["params"],
                          is_leaf=lambda x: hasattr(x, "value"))
    vocab = seqio.SentencePieceVocabulary(str(spm_path), extra_ids=100)
    with mock_flan_tfds(num_examples=6):
        results = evaluate(model, params, "flan", "nli", vocabulary=vocab, batch_size=4, output_dir=str(tmp_path),
                           max_examples=3, max_templates=1, training_mixture="flan_held_out_nli_train")
    datasets = {d["dataset"] for d in results["datasets"]}
    assert {"anli_r1", "cb", "rte", "mnli_matched", "snli", "wnli", "qnli"} <= datasets
    cluster = results["clusters"][0]
    assert cluster["status"] == "held-out" and cluster["paper"]["flan_137b"] == 56.2
    assert all(0.0 <= d["mean"] <= 100.0 for d in results["datasets"])
    assert (tmp_path / "results.json").exists() and (tmp_path / "summary.md").exists()
