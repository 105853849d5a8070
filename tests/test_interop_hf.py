"""Hugging Face T5 <-> T5X: logit parity with transformers (padding included), export, .bin, errors."""

import json
import sys

import jax
import numpy as np
import pytest

# TensorFlow (via seqio) and triton each bundle LLVM; importing triton after TF aborts the process
# ("inconsistency in registered CommandLine options"). torch only probes triton, and CPU tests need
# none, so hide it unless something already loaded it.
sys.modules.setdefault("triton", None)

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from flan_trainer.interop import hf_export, hf_import, hf_names  # noqa: E402
from flan_trainer.interop.hf_names import ConversionError  # noqa: E402
from flan_trainer.models import t5  # noqa: E402

pytestmark = pytest.mark.interop

VOCAB = 100
HF_KW = dict(vocab_size=VOCAB, d_model=64, d_kv=16, d_ff=96, num_layers=2, num_decoder_layers=2, num_heads=4,
             feed_forward_proj="gated-gelu", relative_attention_num_buckets=32,
             relative_attention_max_distance=128, dropout_rate=0.0)


def _random_t5(tie: bool = False, seed: int = 0):
    """A T5.1.1-shaped transformers model with every weight random (norms too, so a mixed-up scale shows)."""
    torch.manual_seed(seed)
    model = transformers.T5ForConditionalGeneration(transformers.T5Config(**HF_KW, tie_word_embeddings=tie))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("layer_norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) * (p.shape[-1] ** -0.5 if p.dim() == 2 else 1.0))
        if not tie:  # Flan-T5 / T5.1.1: a separate, untied output projection
            model.lm_head.weight = torch.nn.Parameter(torch.randn(VOCAB, HF_KW["d_model"]) * 0.3)
    return model.eval()


@pytest.fixture(scope="module")
def hf_model():
    return _random_t5()


@pytest.fixture(scope="module")
def hf_dir(hf_model, tmp_path_factory):
    d = tmp_path_factory.mktemp("hf_st")
    hf_model.save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def bin_dir(hf_model, tmp_path_factory):
    d = tmp_path_factory.mktemp("hf_bin")
    (d / "config.json").write_text(hf_model.config.to_json_string())
    torch.save(hf_model.state_dict(), d / "pytorch_model.bin")  # both tied names share storage, as HF writes
    return d


def _inputs(seed: int = 1):
    """Right-padded random batches: encoder lengths 11/7/3, target lengths 6/2/4 (0 = padding)."""
    rng = np.random.default_rng(seed)
    enc = np.zeros((3, 12), np.int64)
    tgt = np.zeros((3, 7), np.int64)
    for row, (le, lt) in enumerate(((11, 6), (7, 2), (3, 4))):
        enc[row, :le] = rng.integers(2, VOCAB, le)
        tgt[row, :lt] = rng.integers(2, VOCAB, lt)
    dec_in = np.concatenate([np.zeros((3, 1), np.int64), tgt[:, :-1]], axis=1)
    return enc, dec_in, tgt


def _hf_outputs(model, enc, dec_in, tgt):
    with torch.no_grad():
        out = model(input_ids=torch.tensor(enc), attention_mask=torch.tensor(enc > 0),
                    decoder_input_ids=torch.tensor(dec_in), decoder_attention_mask=torch.tensor(tgt > 0),
                    output_hidden_states=False)
        enc_out = model.encoder(input_ids=torch.tensor(enc), attention_mask=torch.tensor(enc > 0)).last_hidden_state
    return enc_out.numpy(), out.logits.numpy()


def _our_outputs(params, config, enc, dec_in, tgt):
    module = t5.Transformer(config)
    variables = {"params": params}
    encoded = module.apply(variables, jax.numpy.asarray(enc, np.int32), method=module.encode)
    logits = module.apply(variables, encoded, jax.numpy.asarray(enc, np.int32), jax.numpy.asarray(dec_in, np.int32),
                          jax.numpy.asarray(tgt, np.int32), method=module.decode)
    return np.asarray(encoded), np.asarray(logits)


def _assert_rel_close(ours, ref, keep, what):
    ours, ref = ours[keep], ref[keep]  # padded positions are undefined on both sides
    err = np.max(np.abs(ours - ref)) / np.max(np.abs(ref))
    assert err < 1e-4, f"{what}: max relative error {err:.2e}"


def _assert_parity(params, config, hf_model):
    enc, dec_in, tgt = _inputs()
    hf_enc, hf_logits = _hf_outputs(hf_model, enc, dec_in, tgt)
    our_enc, our_logits = _our_outputs(params, config, enc, dec_in, tgt)
    _assert_rel_close(our_enc, hf_enc, enc > 0, "encoder output")
    _assert_rel_close(our_logits, hf_logits, tgt > 0, "decoder logits")


def test_import_safetensors_matches_transformers(hf_dir, hf_model):
    params, config = hf_import.import_hf(hf_dir, config_overrides={"dtype": "float32"})
    assert config.mlp_activations == ("gelu", "linear") and not config.logits_via_embedding
    assert (config.emb_dim, config.num_heads, config.head_dim, config.mlp_dim) == (64, 4, 16, 96)
    assert params["encoder"]["relpos_bias"]["rel_embedding"].shape == (4, 32)
    assert params["decoder"]["logits_dense"]["kernel"].shape == (64, VOCAB)
    _assert_parity(params, config, hf_model)


def test_bin_import_equals_safetensors_import(hf_dir, bin_dir):
    a, cfg_a = hf_import.import_hf(hf_dir)
    b, cfg_b = hf_import.import_hf(bin_dir)
    assert cfg_a == cfg_b
    for path, leaf in hf_names.flatten_paths(a).items():
        np.testing.assert_array_equal(np.asarray(leaf), np.asarray(hf_names.get_path(b, path)), err_msg=str(path))


def test_export_loads_in_transformers_with_same_logits(hf_dir, hf_model, tmp_path):
    params, config = hf_import.import_hf(hf_dir, config_overrides={"dtype": "float32"})
    out = hf_export.export_hf(params, config, tmp_path / "exported")
    reloaded = transformers.T5ForConditionalGeneration.from_pretrained(out).eval()
    original = hf_model.state_dict()
    for key, value in reloaded.state_dict().items():
        assert torch.equal(value, original[key]), key
    enc, dec_in, tgt = _inputs(seed=5)
    ref = _hf_outputs(hf_model, enc, dec_in, tgt)
    got = _hf_outputs(reloaded, enc, dec_in, tgt)
    np.testing.assert_array_equal(got[1], ref[1])
    # and back again: the exported directory imports to the same parameters
    again, config2 = hf_import.import_hf(out, config_overrides={"dtype": "float32"})
    assert config2 == config
    _assert_parity(again, config2, reloaded)


def test_tied_scaled_model_maps_to_logits_via_embedding(tmp_path):
    model = _random_t5(tie=True, seed=3)
    model.save_pretrained(tmp_path / "tied")
    cfg = json.loads((tmp_path / "tied" / "config.json").read_text())
    cfg["scale_decoder_outputs"] = True  # the classic tied T5 (v1.0): head = embedding, output rescaled
    (tmp_path / "tied" / "config.json").write_text(json.dumps(cfg))
    model = transformers.T5ForConditionalGeneration.from_pretrained(tmp_path / "tied").eval()
    assert model.config.scale_decoder_outputs
    params, config = hf_import.import_hf(tmp_path / "tied", config_overrides={"dtype": "float32"})
    assert config.logits_via_embedding and "logits_dense" not in params["decoder"]
    _assert_parity(params, config, model)


def test_sharded_bf16_export_imports_onto_a_mesh(hf_dir, tmp_path):
    params, config = hf_import.import_hf(hf_dir)
    out = hf_export.export_hf(params, config, tmp_path / "sharded", dtype="bfloat16", max_shard_bytes=40_000)
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:8]).reshape(4, 2), ("data", "model"))
    got, _ = hf_import.import_hf(out, mesh=mesh)
    q = got["encoder"]["layers_0"]["attention"]["query"]["kernel"]
    assert q.sharding.spec == jax.sharding.PartitionSpec(None, "model")
    assert got["token_embedder"]["embedding"].sharding.spec == jax.sharding.PartitionSpec("model", None)
    for path, leaf in hf_names.flatten_paths(params).items():
        expected = np.asarray(leaf).astype(jax.numpy.bfloat16).astype(np.float32)
        np.testing.assert_array_equal(np.asarray(hf_names.get_path(got, path)), expected, err_msg=str(path))


def test_shape_mismatch_names_the_parameter(hf_dir, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.safetensors").symlink_to(hf_dir / "model.safetensors")
    cfg = json.loads((hf_dir / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps({**cfg, "d_ff": 128}))
    with pytest.raises(ConversionError, match=r"encoder\.block\.0\.layer\.1\.DenseReluDense\.wi_0\.weight.*"
                                              r"expected HF shape \(128, 64\), found \(96, 64\) with dtype F32"):
        hf_import.import_hf(bad)


def test_missing_and_unexpected_keys_are_listed(hf_dir, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.safetensors").symlink_to(hf_dir / "model.safetensors")
    cfg = json.loads((hf_dir / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps({**cfg, "num_layers": 3, "num_decoder_layers": 1}))
    with pytest.raises(ConversionError) as err:
        hf_import.import_hf(bad)
    msg = str(err.value)
    assert "encoder.block.2.layer.0.SelfAttention.q.weight" in msg  # missing
    assert "decoder.block.1.layer.0.SelfAttention.q.weight" in msg  # unexpected


def test_export_rejects_a_wrong_tree(hf_dir, tmp_path):
    params, config = hf_import.import_hf(hf_dir)
    params["encoder"]["layers_1"]["mlp"]["wo"]["kernel"] = np.zeros((95, 64), np.float32)
    with pytest.raises(ConversionError, match=r"encoder/layers_1/mlp/wo/kernel.*expected T5X shape \(96, 64\), "
                                              r"found \(95, 64\) with dtype float32"):
        hf_export.export_hf(params, config, tmp_path / "x")


@pytest.mark.parametrize("fixture", ["hf_dir", "bin_dir"])
def test_block_streaming_matches_whole_tensor_conversion(fixture, request, monkeypatch):
    """Row blocks converted straight into the destination give bit-identical leaves (bf16 cast included)."""
    directory = request.getfixturevalue(fixture)
    whole, config = hf_import.import_hf(directory, param_dtype=jax.numpy.bfloat16)
    monkeypatch.setattr(hf_import, "BLOCK_BYTES", 200)  # one 64-wide fp32 row per block
    blocked, _ = hf_import.import_hf(directory, param_dtype=jax.numpy.bfloat16)
    ckpt = hf_import.HFCheckpoint(directory)
    rules = hf_names.tensor_rules(hf_names.T5Shape.from_config(config))
    for rule in rules:
        expected = np.ascontiguousarray(ckpt.read(rule.hf_key).T if rule.transpose else ckpt.read(rule.hf_key),
                                        dtype=jax.numpy.bfloat16)
        for tree in (whole, blocked):
            got = np.asarray(hf_names.get_path(tree, rule.path))
            assert got.dtype == expected.dtype and got.tobytes() == expected.tobytes(), rule.dotted


def test_host_buffer_is_aligned_and_contiguous():
    from flan_trainer.interop import placement  # noqa: PLC0415

    for shape in [(3,), (5, 7), (1, 2, 3)]:
        buf = placement.host_buffer(shape, np.float32)
        assert buf.shape == shape and buf.flags.c_contiguous and buf.ctypes.data % 64 == 0


def test_scanned_model_imports_matches_and_exports_per_layer(hf_dir, hf_model, tmp_path):
    """scan_layers=True: import stacks the layers, the scanned model matches transformers, export splits them."""
    params, config = hf_import.import_hf(hf_dir, config_overrides={"dtype": "float32", "scan_layers": True})
    assert config.scan_layers and "layers_0" not in params["encoder"]
    assert params["decoder"]["layers"]["self_attention"]["query"]["kernel"].shape == (2, 64, 64)
    _assert_parity(params, config, hf_model)
    out = hf_export.export_hf(params, config, tmp_path / "from_scanned")
    reloaded = transformers.T5ForConditionalGeneration.from_pretrained(out).eval()
    original = hf_model.state_dict()
    for key, value in reloaded.state_dict().items():
        assert torch.equal(value, original[key]), key
