"""The decoder-only model trains through the same loop (causal and prefix-LM), and its gin file builds it."""

import gin
import pytest

from flan_trainer import gin_utils
from flan_trainer.models.config import TransformerConfig
from flan_trainer.models.model_api import DecoderOnlyModel
from flan_trainer.train import train

CONFIG = TransformerConfig(vocab_size=384, emb_dim=32, num_heads=2, num_encoder_layers=0, num_decoder_layers=2,
                           head_dim=16, mlp_dim=64, dtype="float32", decoder_only=True, logits_via_embedding=True)


@pytest.mark.slow
@pytest.mark.parametrize("prefix_lm", [False, True])
def test_decoder_only_loss_falls(tmp_path, prefix_lm):
    model = DecoderOnlyModel(CONFIG, inputs_bidirectional_attention=prefix_lm,
                             loss_normalizing_factor="AVERAGE_PER_SEQUENCE")
    result = train(model=model, model_dir=str(tmp_path), task_feature_lengths={"inputs": 64, "targets": 16},
                   train_steps=6, batch_size=8, held_out_cluster="nli", random_seed=0, learning_rate_schedule=3e-3,
                   checkpoint_period=100, log_every=3)
    losses = [result.losses[s] for s in sorted(result.losses)]
    assert len(losses) == 6 and losses[-1] < losses[0]
    assert (tmp_path / "checkpoint_6").exists()


def test_decoder_only_gin_builds_a_prefix_lm():
    gin.clear_config()
    try:
        gin_utils.parse_gin(["models/decoder_only_base.gin"], [])
        model = gin.query_parameter("%MODEL").scoped_configurable_fn()
        assert isinstance(model, DecoderOnlyModel) and model.inputs_bidirectional_attention
        assert model.config.decoder_only and model.config.logits_via_embedding
        assert model.config.num_decoder_layers == 12 and model.config.emb_dim == 768
    finally:
        gin.clear_config()
