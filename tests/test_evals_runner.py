"""evals.runner and `python -m evals`: the embedded suite end to end with a tiny random T5."""

import json

import jax
import pytest
import seqio

import flan_tasks
from evals import __main__ as cli
from evals import runner
from flan_trainer.models import model_api
from flan_trainer.models.config import TransformerConfig


def test_unknown_cluster_is_a_clear_error():
    with pytest.raises(flan_tasks.UnknownClusterError, match="nli"):
        runner.evaluate(None, None, "embedded", "no_such_cluster")


def test_cli_unknown_cluster_exits_2(capsys):
    assert cli.main(["--checkpoint", "/nonexistent", "--cluster", "bogus", "--suite", "embedded"]) == 2
    err = capsys.readouterr().err
    assert "bogus" in err and "sentiment" in err  # lists the valid clusters


def test_bad_split():
    with pytest.raises(ValueError, match="split"):
        runner.evaluate(None, None, "embedded", "nli", split="train")


def test_cluster_status():
    assert runner.cluster_status("embedded", "nli", None) == "unknown"
    assert runner.cluster_status("embedded", "nli", "embedded_all_train") == "held-in"
    assert runner.cluster_status("embedded", "nli", "embedded_held_out_nli_train") == "held-out"
    # paraphrase overlaps nli: holding out paraphrase also removes nli from training
    assert runner.cluster_status("embedded", "nli", "embedded_held_out_paraphrase_train") == "held-out"
    assert runner.cluster_status("embedded", "nli", "embedded_held_out_sentiment_train") == "held-in"


@pytest.mark.slow
@pytest.mark.parametrize("cluster", ["reading_comprehension"])  # one rank and one generation dataset
def test_evaluate_embedded_cluster_end_to_end(tmp_path, cluster):
    vocab = seqio.ByteVocabulary()
    cfg = TransformerConfig(vocab_size=vocab.vocab_size, emb_dim=32, num_heads=2, head_dim=8, mlp_dim=64,
                            num_encoder_layers=1, num_decoder_layers=1, dtype="float32")
    model = model_api.EncoderDecoderModel(cfg)
    params = model.get_initial_variables(
        jax.random.PRNGKey(0), {"encoder_input_tokens": (1, 8), "decoder_input_tokens": (1, 4)})["params"]
    res = runner.evaluate(model, params, "embedded", cluster, batch_size=4, output_dir=str(tmp_path),
                          max_examples=3, training_mixture=f"embedded_held_out_{cluster}_train")
    plan = flan_tasks.eval_plan("embedded", cluster)
    assert len(res["templates"]) == len(plan)
    kinds = {t["kind"] for t in res["templates"]}
    assert kinds == {"rank", "generation"}
    for t in res["templates"]:
        assert t["num_examples_validation"] == 3 and t["num_examples_reported"] == 3
        assert 0.0 <= t["reported"] <= 100.0 and 0.0 <= t["validation"] <= 100.0
        if t["kind"] == "rank":
            assert "accuracy_length_normalized" in t["scores_reported"]
    (c,) = res["clusters"]
    assert c["status"] == "held-out" and c["mean"] is not None and c["best"] is not None
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["clusters"][0]["mean"] == pytest.approx(c["mean"])
    assert (tmp_path / "summary.md").exists() and (tmp_path / "clusters.png").exists()


@pytest.mark.slow
def test_cli_restores_a_checkpoint_and_writes_a_report(tmp_path):
    import flax.linen as nn
    import gin

    from flan_trainer import checkpoints

    vocab_size = seqio.ByteVocabulary().vocab_size
    bindings = [f"--gin.NUM_EMBEDDINGS={vocab_size}", "--gin.ACTIVATION_DTYPE='float32'",
                "--gin.network.T5Config.num_encoder_layers=1", "--gin.network.T5Config.num_decoder_layers=1",
                "--gin.network.T5Config.emb_dim=32", "--gin.network.T5Config.mlp_dim=64"]
    cfg = TransformerConfig(vocab_size=vocab_size, emb_dim=32, num_heads=4, head_dim=32, mlp_dim=64,
                            num_encoder_layers=1, num_decoder_layers=1, dtype="float32", dropout_rate=0.1)
    model = model_api.EncoderDecoderModel(cfg)
    params = nn.meta.unbox(model.get_initial_variables(
        jax.random.PRNGKey(0), {"encoder_input_tokens": (1, 8), "decoder_input_tokens": (1, 4)})["params"])
    with checkpoints.CheckpointManager(tmp_path / "model") as mgr:
        mgr.save(10, {"params": params}, checkpoints.data_state_dict(10, 80, 0, "embedded_all_train"), force=True)
    out = tmp_path / "eval"
    try:
        rc = cli.main(["--checkpoint", str(tmp_path / "model"), "--cluster", "sentiment", "--suite", "embedded",
                       "--gin_file", "models/tiny.gin", *bindings, "--output_dir", str(out),
                       "--max_examples", "2", "--batch_size", "4", "--split", "reported"])
    finally:
        gin.clear_config()
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert res["run"]["checkpoint"].endswith("checkpoint_10")
    assert res["clusters"][0]["status"] == "held-in"  # read from the checkpoint's data position
    assert res["clusters"][0]["mean"] is not None and res["clusters"][0]["best"] is None  # no validation run


def test_rank_scores_use_labels_numbers_and_texts():
    import numpy as np
    from scipy import stats

    from evals import rank_classification as rc

    def entry(metrics, options=()):
        return flan_tasks.EvalEntry("d", "c", 0, "rank", "v", "t", metrics, options)

    opts = ("0", "1", "2", "3")
    result = rc.RankResult([0, 1, 2], [np.zeros(4)] * 3, [np.zeros(4)] * 3, predictions=[1, 3, 2],
                           normalized_predictions=[1, 0, 1], gold=[(1,), (2,), (0,)])
    got = runner._rank_scores(entry(("pearson", "spearman"), opts), result, [opts] * 3)
    assert got["pearson"] == pytest.approx(100 * stats.pearsonr([1, 2, 0], [1, 3, 2]).statistic)
    assert got["accuracy_length_normalized"] == pytest.approx(100 / 3)
    texts = [("Paris", "the paris", "Rome"), ("a", "b"), ("x", "y")]
    multi = rc.RankResult([0, 1, 2], [np.zeros(3)] * 3, [np.zeros(3)] * 3, predictions=[1, 0, 1],
                          normalized_predictions=[1, 0, 1], gold=[(0, 1), (1,), (1,)])
    got = runner._rank_scores(entry(("accuracy", "squad")), multi, texts)
    assert got["accuracy"] == pytest.approx(200 / 3)  # the prediction is one of several golds
    assert got["squad_em"] == pytest.approx(200 / 3)
