"""T5X checkpoints: the legacy msgpack + TensorStore layout, Orbax import onto a mesh, format detection."""

import json

import jax
import msgpack
import numpy as np
import pytest
import tensorstore as ts
from flax import serialization

from flan_trainer import checkpoints
from flan_trainer.interop import (
    ConversionError,
    UnknownCheckpointFormatError,
    detect_checkpoint_format,
    hf_names,
    import_t5x_legacy,
    import_t5x_orbax,
    load_checkpoint,
)
from flan_trainer.interop.hf_names import T5Shape

SHAPE = T5Shape(vocab_size=96, emb_dim=32, num_heads=4, head_dim=8, mlp_dim=48, num_encoder_layers=2,
                num_decoder_layers=3, mlp_activations=("gelu", "linear"), relative_attention_num_buckets=32,
                logits_via_embedding=False)


def _random_params(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    params: dict = {}
    for rule in hf_names.tensor_rules(SHAPE):
        hf_names.set_path(params, rule.path, rng.normal(size=rule.shape).astype(np.float32))
    return params


def _adafactor_states(params: dict) -> dict:
    """T5X Adafactor slots: factored v_row / v_col for matrices, v for vectors; unused slots are (1,) zeros."""
    rng = np.random.default_rng(7)
    states: dict = {}
    for path, p in hf_names.flatten_paths(params).items():
        zero = np.zeros((1,), np.float32)
        if p.ndim == 2:
            slot = {"v_row": rng.random(p.shape[0], np.float32), "v_col": rng.random(p.shape[1], np.float32),
                    "v": zero, "m": zero}
        else:
            slot = {"v_row": zero, "v_col": zero, "v": rng.random(p.shape, np.float32), "m": zero}
        hf_names.set_path(states, path, slot)
    return states


def _write_zarr(ckpt_dir, dotted: str, value: np.ndarray, dtype: str) -> dict:
    """One leaf as T5X writes it: a gzip zarr array in a dir named by the dotted path; returns the spec."""
    chunks = [max(1, d // 2) for d in value.shape]
    spec = {"driver": "zarr", "kvstore": {"driver": "file", "path": dotted},
            "metadata": {"compressor": {"id": "gzip"}, "shape": list(value.shape), "chunks": chunks,
                         "dtype": dtype}}
    absolute = {**spec, "kvstore": {"driver": "file", "path": str(ckpt_dir / dotted)}}
    store = ts.open(absolute, create=True, open=True).result()
    store.write(value.astype(store.dtype.numpy_dtype)).result()
    return spec  # the msgpack keeps the path relative to the checkpoint directory


def write_legacy_checkpoint(ckpt_dir, params: dict, step: int, param_states: dict | None = None,
                            bf16_paths: tuple = ()) -> None:
    """Write T5X's pre-Orbax layout: msgpack 'checkpoint' + one TensorStore zarr array per leaf."""
    ckpt_dir.mkdir(parents=True)

    def convert(tree: dict, prefix: str) -> dict:
        out = {}
        for key, value in tree.items():
            dotted = f"{prefix}.{key}"
            if isinstance(value, dict):
                out[key] = convert(value, dotted)
            elif value.shape == (1,):  # T5X keeps tiny placeholders inline in the msgpack
                out[key] = value
            else:
                dtype = "bfloat16" if dotted in bf16_paths else "<f4"
                out[key] = _write_zarr(ckpt_dir, dotted, value, dtype)
        return out

    state = {"target": convert(params, "target"), "state": {"step": np.asarray(step, np.int32)}}
    if param_states is not None:
        state["state"]["param_states"] = convert(param_states, "state.param_states")
    (ckpt_dir / "checkpoint").write_bytes(serialization.msgpack_serialize({"version": 3, "optimizer": state}))


def _mesh():
    return jax.sharding.Mesh(np.array(jax.devices()[:8]).reshape(4, 2), ("data", "model"))


def _assert_params_equal(got: dict, want: dict, cast=None) -> None:
    flat_got = hf_names.flatten_paths(got)
    assert set(flat_got) == set(hf_names.flatten_paths(want))
    for path, value in hf_names.flatten_paths(want).items():
        expected = value if cast is None or "/".join(path) not in cast else cast["/".join(path)]
        np.testing.assert_array_equal(np.asarray(flat_got[path]), expected, err_msg="/".join(path))


def test_legacy_params_only_imports_onto_a_mesh(tmp_path):
    params = _random_params()
    write_legacy_checkpoint(tmp_path / "checkpoint_1100", params, step=1100,
                            bf16_paths=("target.decoder.layers_2.mlp.wo.kernel",))
    layout = json.loads((tmp_path / "checkpoint_1100" / "target.encoder.layers_0.attention.query.kernel" / ".zarray")
                        .read_text())
    assert layout["compressor"]["id"] == "gzip" and layout["shape"] == [32, 32]
    got = import_t5x_legacy(tmp_path, mesh=_mesh())  # a model dir: its latest step is used
    assert got.step == 1100 and got.param_states is None
    cfg = got.config
    assert (cfg.vocab_size, cfg.emb_dim, cfg.num_heads, cfg.head_dim, cfg.mlp_dim) == (96, 32, 4, 8, 48)
    assert (cfg.num_encoder_layers, cfg.num_decoder_layers, cfg.mlp_activations) == (2, 3, ("gelu", "linear"))
    assert not cfg.logits_via_embedding
    wo = params["decoder"]["layers_2"]["mlp"]["wo"]["kernel"]
    bf16 = wo.astype(jax.numpy.bfloat16).astype(np.float32)
    assert not np.array_equal(bf16, wo)
    _assert_params_equal(got.params, params, cast={"decoder/layers_2/mlp/wo/kernel": bf16})
    kernel = got.params["encoder"]["layers_1"]["mlp"]["wi_0"]["kernel"]
    assert kernel.sharding.spec == jax.sharding.PartitionSpec(None, "model")


def test_legacy_with_adafactor_state(tmp_path):
    params = _random_params(1)
    states = _adafactor_states(params)
    write_legacy_checkpoint(tmp_path / "checkpoint_5", params, step=5, param_states=states)
    raw = msgpack.unpackb((tmp_path / "checkpoint_5" / "checkpoint").read_bytes(), strict_map_key=False)
    spec = raw["optimizer"]["state"]["param_states"]["encoder"]["layers_0"]["mlp"]["wo"]["kernel"]["v_row"]
    assert spec["kvstore"]["path"] == "state.param_states.encoder.layers_0.mlp.wo.kernel.v_row"
    got = import_t5x_legacy(tmp_path / "checkpoint_5")
    assert got.step == 5
    _assert_params_equal(got.params, params)
    for path, value in hf_names.flatten_paths(states).items():
        np.testing.assert_array_equal(hf_names.get_path(got.param_states, path), value, err_msg=str(path))


def test_legacy_mismatch_names_the_parameter(tmp_path):
    params = _random_params()
    params["decoder"]["layers_1"]["encoder_decoder_attention"]["key"]["kernel"] = np.zeros((32, 24), np.float32)
    write_legacy_checkpoint(tmp_path / "checkpoint_1", params, step=1)
    with pytest.raises(ConversionError, match=r"decoder/layers_1/encoder_decoder_attention/key/kernel.*"
                                              r"expected T5X shape \(32, 32\), found \(32, 24\)"):
        import_t5x_legacy(tmp_path / "checkpoint_1")
    del params["decoder"]["layers_1"]["encoder_decoder_attention"]
    write_legacy_checkpoint(tmp_path / "checkpoint_2", params, step=2)
    with pytest.raises(ConversionError, match=r"missing \[.*decoder/layers_1/encoder_decoder_attention/key/kernel"):
        import_t5x_legacy(tmp_path / "checkpoint_2")


def test_orbax_import_reshards(tmp_path):
    params = _random_params(2)
    one_device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    state = {"step": np.asarray(300, np.int32), "params": jax.device_put(params, one_device)}
    with checkpoints.CheckpointManager(tmp_path, period=100) as mgr:
        assert mgr.save(300, state)
    got = import_t5x_orbax(tmp_path, mesh=_mesh())
    assert got.step == 300 and got.config.num_decoder_layers == 3
    _assert_params_equal(got.params, params)
    emb = got.params["token_embedder"]["embedding"]
    assert emb.sharding.spec == jax.sharding.PartitionSpec("model", None)


def test_detect_each_format(tmp_path):
    params = _random_params()
    write_legacy_checkpoint(tmp_path / "legacy" / "checkpoint_10", params, step=10)
    with checkpoints.CheckpointManager(tmp_path / "orbax", period=1) as mgr:
        mgr.save(1, {"params": params})
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text("{}")
    (hf / "model.safetensors").write_bytes(b"")
    assert detect_checkpoint_format(tmp_path / "legacy") == "t5x_legacy"
    assert detect_checkpoint_format(tmp_path / "legacy" / "checkpoint_10") == "t5x_legacy"
    assert detect_checkpoint_format(tmp_path / "orbax") == "orbax"
    assert detect_checkpoint_format(tmp_path / "orbax" / "checkpoint_1") == "orbax"
    assert detect_checkpoint_format(hf) == "hf"
    (tmp_path / "empty").mkdir()
    with pytest.raises(UnknownCheckpointFormatError, match=r"config\.json.*msgpack file named 'checkpoint'.*"
                                                           r"_CHECKPOINT_METADATA"):
        detect_checkpoint_format(tmp_path / "empty")


def test_load_checkpoint_dispatches(tmp_path):
    params = _random_params(3)
    write_legacy_checkpoint(tmp_path / "checkpoint_7", params, step=7, param_states=_adafactor_states(params))
    got = load_checkpoint(tmp_path)
    assert got.step == 7 and got.param_states is None  # finetuning restarts the optimizer
    _assert_params_equal(got.params, params)


def test_legacy_three_path_forms_and_params_only_skips_optimizer_files(tmp_path, capsys):
    """T5X accepts the model dir, the step dir or the msgpack file; so do we (library and CLI).

    One optimizer-state array is made unreadable: a parameters-only import never opens it, and a
    full import names it.
    """
    from flan_trainer.interop import __main__ as cli  # noqa: PLC0415

    params = _random_params(4)
    model_dir = tmp_path / "t5x_run"
    step_dir = model_dir / "checkpoint_30"
    write_legacy_checkpoint(step_dir, params, step=30, param_states=_adafactor_states(params))
    bad = step_dir / "state.param_states.encoder.layers_0.mlp.wo.kernel.v_row"
    (bad / ".zarray").write_text("{ not json")
    forms = {"model dir": model_dir, "step dir": step_dir, "msgpack file": step_dir / "checkpoint"}
    for name, form in forms.items():
        assert detect_checkpoint_format(form) == "t5x_legacy", name
        got = load_checkpoint(form)  # what INITIAL_CHECKPOINT_PATH uses: parameters only
        assert got.step == 30 and got.param_states is None, name
        _assert_params_equal(got.params, params)
        dst = tmp_path / f"imported_{name.replace(' ', '_')}"
        assert cli.main(["import-t5x", str(form), str(dst)]) == 0, name
        _assert_params_equal(import_t5x_orbax(dst / "checkpoint_30").params, params)
    with pytest.raises(ConversionError, match=r"state\.param_states\.encoder\.layers_0\.mlp\.wo\.kernel\.v_row"):
        import_t5x_legacy(step_dir / "checkpoint", with_optimizer_state=True)
    capsys.readouterr()
    assert cli.main(["import-t5x", str(tmp_path / "nowhere" / "checkpoint"), str(tmp_path / "x")]) == 2
    assert "error: " in capsys.readouterr().err
