"""INITIAL_CHECKPOINT_PATH accepts a Hugging Face directory (detected) and fails clearly on anything else."""

import jax
import numpy as np
import pytest

from flan_trainer import checkpoints, partitioning, train_state
from flan_trainer.interop import UnknownCheckpointFormatError, export_hf
from flan_trainer.models.config import TransformerConfig
from flan_trainer.models.model_api import EncoderDecoderModel
from flan_trainer.optimizers import adafactor
from flan_trainer.train import train

CONFIG = TransformerConfig(vocab_size=384, emb_dim=32, num_heads=2, num_encoder_layers=1, num_decoder_layers=1,
                           head_dim=16, mlp_dim=64, dtype="float32")
LENGTHS = {"inputs": 64, "targets": 16}


def _train(model_dir, initial, steps=1, lr=0.0):
    return train(model=EncoderDecoderModel(CONFIG), model_dir=str(model_dir), task_feature_lengths=LENGTHS,
                 train_steps=steps, batch_size=8, held_out_cluster="nli", random_seed=0,
                 learning_rate_schedule=lr, initial_checkpoint_path=str(initial) if initial else None,
                 checkpoint_period=100, log_every=1)


def _random_params(seed):
    model = EncoderDecoderModel(CONFIG)
    mesh = partitioning.make_mesh(num_partitions=1, devices=jax.devices()[:1])
    shapes = {"encoder_input_tokens": (1, 64), "decoder_input_tokens": (1, 16)}
    state, _ = train_state.init_sharded_state(model, adafactor(0.0), jax.random.PRNGKey(seed), shapes, mesh,
                                              partitioning.standard_logical_axis_rules())
    return jax.device_get(state.params)


@pytest.mark.slow
def test_training_starts_from_hf_checkpoint(tmp_path):
    params = _random_params(seed=123)
    export_hf(params, CONFIG, tmp_path / "hf")
    result = _train(tmp_path / "run", tmp_path / "hf", steps=1, lr=0.0)
    assert "imported from hf checkpoint" in result.restored_from
    # Learning rate 0: the saved step-1 parameters are exactly the imported ones.
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), params)
    saved = checkpoints.restore_params_only(tmp_path / "run", abstract)
    for a, b in zip(jax.tree.leaves(saved), jax.tree.leaves(params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_unknown_initial_checkpoint_layout_is_named(tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "weights.txt").write_text("not a checkpoint")
    with pytest.raises(UnknownCheckpointFormatError, match="junk"):
        _train(tmp_path / "run", tmp_path / "junk")
    assert not list((tmp_path / "run").glob("checkpoint_*"))


@pytest.mark.slow
def test_training_starts_from_t5x_msgpack_file_with_a_broken_optimizer_array(tmp_path):
    """INITIAL_CHECKPOINT_PATH may be T5X's msgpack 'checkpoint' file; parameters-only imports
    never open optimizer-state arrays, so an unreadable one does not matter."""
    from test_interop_t5x import _adafactor_states, write_legacy_checkpoint  # noqa: PLC0415

    params = _random_params(seed=5)
    step_dir = tmp_path / "t5x" / "checkpoint_7"
    write_legacy_checkpoint(step_dir, params, step=7, param_states=_adafactor_states(params))
    (step_dir / "state.param_states.encoder.layers_0.mlp.wo.kernel.v_row" / ".zarray").write_text("garbage")
    result = _train(tmp_path / "run", step_dir / "checkpoint", steps=1, lr=0.0)
    assert "imported from t5x_legacy checkpoint" in result.restored_from
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), params)
    saved = checkpoints.restore_params_only(tmp_path / "run", abstract)
    for a, b in zip(jax.tree.leaves(saved), jax.tree.leaves(params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
