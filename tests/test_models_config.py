"""Config presets, validation, gin bindings and the T5.1.1 parameter counts."""

import gin
import jax
import numpy as np
import pytest

from flan_trainer.models import EncoderDecoderModel, TransformerConfig, preset
from flan_trainer.models.config import PRESETS


def _param_count(cfg: TransformerConfig) -> int:
    model = EncoderDecoderModel(cfg)
    shapes = jax.eval_shape(
        lambda rng: model.get_initial_variables(
            rng, {"encoder_input_tokens": (1, 8), "decoder_input_tokens": (1, 8)}
        ),
        jax.random.key(0),
    )
    return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(shapes["params"]))


@pytest.mark.parametrize("name,expected_millions", [("small", 77), ("base", 248)])
def test_preset_param_counts_match_t5_1_1(name, expected_millions):
    count = _param_count(preset(name))
    assert abs(count / 1e6 - expected_millions) < 1.0, count


def test_presets_have_the_published_shapes():
    assert set(PRESETS) == {"tiny", "small", "base", "large", "xl", "xxl"}
    xxl = preset("xxl")
    assert (xxl.emb_dim, xxl.num_heads, xxl.num_encoder_layers, xxl.mlp_dim, xxl.vocab_size) == (4096, 64, 24, 10240, 32128)
    assert preset("tiny", dtype="float32").dtype == "float32"


@pytest.mark.parametrize(
    "overrides,needle",
    [
        ({"mlp_activations": ("gelu", "bogus")}, "mlp_activations"),
        ({"dtype": "float33"}, "dtype"),
        ({"num_encoder_layers": 0}, "decoder_only=True"),
        ({"dropout_rate": 1.5}, "dropout_rate"),
    ],
)
def test_bad_config_is_rejected_with_a_named_field(overrides, needle):
    with pytest.raises(ValueError, match=needle):
        preset("tiny", **overrides)
    with pytest.raises(ValueError, match="unknown model size"):
        preset("huge")


def test_model_gin_files_build_the_presets(repo_root):
    for name in ("tiny", "small", "base", "large", "xl", "xxl"):
        gin.clear_config()
        gin.parse_config_files_and_bindings(
            [str(repo_root / "gin" / "models" / f"{name}.gin")], ["DROPOUT_RATE = 0.05"], finalize_config=False
        )
        model = gin.query_parameter("%MODEL")
        built = gin.get_configurable("models.EncoderDecoderModel")  # registered by the import
        assert built is not None and model is not None
        cfg = gin.get_configurable("network.T5Config")()
        assert cfg == preset(name, dropout_rate=0.05), name
    gin.clear_config()


def test_gin_model_macro_evaluates_to_a_model(repo_root):
    gin.clear_config()
    gin.parse_config_files_and_bindings(
        [str(repo_root / "gin" / "models" / "tiny.gin")],
        ["DROPOUT_RATE = 0.1", "Z_LOSS = 0.0"],
        finalize_config=False,
    )
    model = gin.query_parameter("%MODEL").scoped_configurable_fn()
    gin.clear_config()
    assert isinstance(model, EncoderDecoderModel)
    assert model.config.dropout_rate == 0.1 and model.z_loss == 0.0 and model.config.emb_dim == 128
