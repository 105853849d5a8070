"""Train step with the real tiny T5: mesh equivalence, exact microbatching, checks, FLOPs."""

import jax
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec as P

from flan_trainer import flops, optimizers, partitioning, train_step
from flan_trainer.partitioning import PartitioningError

model_api = pytest.importorskip("flan_trainer.models.model_api")
config_lib = pytest.importorskip("flan_trainer.models.config")

B, LIN, LT = 8, 12, 8
VOCAB = 64


def tiny_config(**overrides):
    return config_lib.TransformerConfig(
        vocab_size=VOCAB, emb_dim=16, num_heads=2, num_encoder_layers=1, num_decoder_layers=1,
        head_dim=8, mlp_dim=32, dropout_rate=0.0, dtype="float32", **overrides,
    )


def tiny_model(loss_normalizing_factor="NUM_REAL_TARGET_TOKENS", **config_overrides):
    return model_api.EncoderDecoderModel(
        config=tiny_config(**config_overrides), loss_normalizing_factor=loss_normalizing_factor
    )


INPUT_SHAPES = {
    "encoder_input_tokens": (B, LIN),
    "decoder_input_tokens": (B, LT),
    "decoder_target_tokens": (B, LT),
    "decoder_loss_weights": (B, LT),
}


def _pack_row(rng, length, lengths):
    tokens = np.zeros(length, np.int32)
    seg = np.zeros(length, np.int32)
    pos = np.zeros(length, np.int32)
    start = 0
    for s, n in enumerate(lengths, start=1):
        tokens[start:start + n] = rng.integers(2, VOCAB, size=n)
        tokens[start + n - 1] = 1  # EOS
        seg[start:start + n] = s
        pos[start:start + n] = np.arange(n)
        start += n
    return tokens, seg, pos


def packed_batch(seed=0):
    """A seqio-style packed encoder-decoder batch: 1-2 segments per row, trailing padding."""
    rng = np.random.default_rng(seed)
    cols = {k: [] for k in ("enc", "enc_seg", "enc_pos", "tgt", "dec_seg", "dec_pos", "dec_in")}
    for _ in range(B):
        nseg = int(rng.integers(1, 3))
        tl = list(rng.integers(1, LT // 2 + 1, size=nseg))  # uneven target lengths per segment
        il = list(rng.integers(2, LIN // 2 + 1, size=nseg))
        enc, es, ep = _pack_row(rng, LIN, il)
        tgt, ds, dp = _pack_row(rng, LT, tl)
        # Decoder inputs: targets shifted right within each segment, 0 at segment starts.
        dec_in = np.where(dp > 0, np.roll(tgt, 1), 0).astype(np.int32)
        for k, v in zip(cols, (enc, es, ep, tgt, ds, dp, dec_in), strict=True):
            cols[k].append(v)
    c = {k: np.stack(v) for k, v in cols.items()}
    return {
        "encoder_input_tokens": c["enc"], "encoder_segment_ids": c["enc_seg"],
        "encoder_positions": c["enc_pos"], "decoder_target_tokens": c["tgt"],
        "decoder_input_tokens": c["dec_in"], "decoder_segment_ids": c["dec_seg"],
        "decoder_positions": c["dec_pos"], "decoder_loss_weights": (c["tgt"] > 0).astype(np.float32),
    }


def _setup(mesh_shape, tx, model=None):
    mesh = partitioning.make_mesh(mesh_shape=mesh_shape)
    rules = partitioning.standard_logical_axis_rules()
    model = model or tiny_model()
    state, shardings = partitioning.init_sharded_state(
        model, tx, jax.random.PRNGKey(0), INPUT_SHAPES, mesh, rules
    )
    return mesh, rules, model, state, shardings


@pytest.mark.slow
@pytest.mark.parametrize("scan", [False, True])
def test_same_losses_on_every_mesh_and_rule_shardings(scan):
    batches = [packed_batch(0)] * 3  # the same batch, so the loss must fall
    results = {}
    # Scanned stacks: parameters get a leading, replicated 'layers' axis.
    layer, lead = ("layers", (None,)) if scan else ("layers_0", ())
    for shape in [(8, 1), (4, 2)] + ([] if scan else [(2, 4)]):
        # A low factoring threshold so the tiny model has factored Adafactor statistics too.
        tx = optimizers.adafactor(1e-2, min_dim_size_to_factor=8)
        mesh, rules, model, state, shardings = _setup(shape, tx, tiny_model(scan_layers=scan))
        step = train_step.make_train_step(model, tx, mesh, shardings, rules)
        losses = []
        for b in batches:
            state, metrics = step(state, partitioning.shard_batch(b, mesh), None)
            losses.append(float(metrics["loss"]))
        results[shape] = (losses, jax.device_get(state.params))
        p = state.params
        assert p["token_embedder"]["embedding"].sharding.spec == P("model", None)
        assert p["decoder"][layer]["mlp"]["wi_0"]["kernel"].sharding.spec == P(*lead, None, "model")
        assert p["encoder"][layer]["attention"]["query"]["kernel"].sharding.spec == P(*lead, None, "model")
        assert p["encoder"][layer]["attention"]["out"]["kernel"].sharding.spec == P(*lead, "model", None)
        assert p["decoder"]["decoder_norm"]["scale"].sharding.spec == P(None)
        fs = state.opt_state.inner_state[0]
        emb = ("token_embedder", "embedding")  # [vocab 64, embed 16]: v_col keeps vocab
        assert fs.v_col[emb[0]][emb[1]].shape == (VOCAB,)
        assert fs.v_col[emb[0]][emb[1]].sharding.spec == P("model")
        wi = fs.v_col["decoder"][layer]["mlp"]["wi_0"]["kernel"]  # [embed, mlp]: keeps mlp
        assert wi.shape == (*[1] * len(lead), 32) and wi.sharding.spec == P(*lead, "model")
        if shape[1] > 1:
            assert p["token_embedder"]["embedding"].addressable_shards[0].data.shape == (VOCAB // shape[1], 16)
    ref_losses, ref_params = results[(8, 1)]
    assert ref_losses[2] < ref_losses[1] < ref_losses[0]  # it trains
    for shape, (losses, params) in results.items():
        np.testing.assert_allclose(losses, ref_losses, rtol=1e-5, err_msg=str(shape))
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), params, ref_params)


def _copy(state):
    # make_train_step donates its input state; tests that reuse an initial state copy it first.
    return jax.tree.map(lambda x: x.copy(), state)


@pytest.mark.slow
@pytest.mark.parametrize("factor", ["NUM_REAL_TARGET_TOKENS", "AVERAGE_PER_SEQUENCE"])
def test_microbatches_match_full_batch(factor):
    # SGD, not Adafactor: Adafactor's update is invariant to the gradient's scale, which would
    # hide a wrong normaliser; SGD's is not.
    tx = optax.sgd(0.5)
    batch = packed_batch(7)
    mesh, rules, model, state0, shardings = _setup((2, 4), tx, tiny_model(factor))
    sharded = partitioning.shard_batch(batch, mesh)
    out = {}
    for m in (1, 4):
        step = train_step.make_train_step(model, tx, mesh, shardings, rules, num_microbatches=m)
        new_state, metrics = step(_copy(state0), sharded, None)
        out[m] = (jax.device_get(metrics), jax.device_get(new_state.params))
    (m1, p1), (m4, p4) = out[1], out[4]
    for key in ("loss", "cross_ent_loss", "z_loss", "weight_sum", "num_sequences", "grad_norm"):
        np.testing.assert_allclose(m4[key], m1[key], rtol=2e-6, err_msg=key)
    if factor == "AVERAGE_PER_SEQUENCE":
        segments = sum(len(set(r[r > 0])) for r in batch["decoder_segment_ids"])
        assert float(m1["loss_denominator"]) == segments
    else:
        assert float(m1["loss_denominator"]) == batch["decoder_loss_weights"].sum()
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), p4, p1)


@pytest.fixture(scope="module")
def setup_4x2():
    tx = optimizers.adafactor(3e-3)
    return (tx, *_setup((4, 2), tx))


@pytest.mark.slow
def test_eval_step_matches_train_metrics_and_lr_is_logged(setup_4x2):
    tx, mesh, rules, model, state, shardings = setup_4x2
    batch = partitioning.shard_batch(packed_batch(3), mesh)
    ev = train_step.make_eval_step(model, mesh, shardings.params, rules)
    before = jax.device_get(ev(state.params, batch))
    step = train_step.make_train_step(model, tx, mesh, shardings, rules)
    new_state, metrics = step(_copy(state), batch, jax.random.PRNGKey(1))
    assert float(metrics["learning_rate"]) == pytest.approx(3e-3)
    np.testing.assert_allclose(metrics["loss"], before["loss"], rtol=1e-5)
    assert metrics["grad_norm"] > 0
    assert int(new_state.step) == 1


def test_bad_batch_size_and_microbatch_count_are_explained(setup_4x2):
    tx, mesh, rules, model, state, shardings = setup_4x2
    batch = {k: v[:6] for k, v in packed_batch(0).items()}
    step = train_step.make_train_step(model, tx, mesh, shardings, rules)
    with pytest.raises(PartitioningError, match="batch size 6 is not divisible by the mesh data axis size 4"):
        step(state, batch, None)
    step4 = train_step.make_train_step(model, tx, mesh, shardings, rules, num_microbatches=4)
    with pytest.raises(PartitioningError, match="into 4 microbatches"):
        step4(state, packed_batch(0), None)


def test_nonfinite_check():
    assert train_step.nonfinite_metrics({"loss": np.float32(1.0), "grad_norm": 2.0}) == []
    bad = {"loss": np.float32(np.nan), "grad_norm": np.inf}
    assert train_step.nonfinite_metrics(bad) == ["loss", "grad_norm"]
    with pytest.raises(train_step.NonFiniteError, match="non-finite loss, grad_norm at step 12"):
        train_step.raise_if_nonfinite(bad, step=12)


def _count(tree, names):
    return sum(
        int(np.prod(x.shape))
        for path, x in jax.tree_util.tree_leaves_with_path(tree)
        if any(n in jax.tree_util.keystr(path) for n in names)
    )


def test_flops_param_counts_match_the_model():
    cfg = tiny_config()
    variables = jax.eval_shape(
        lambda r: tiny_model().get_initial_variables(r, INPUT_SHAPES), jax.random.PRNGKey(0)
    )
    params = variables["params"]
    kernels = ("'kernel'",)
    enc = _count(params["encoder"], kernels)
    dec = _count(params["decoder"], kernels)  # includes logits_dense
    assert flops.encoder_matmul_params(cfg) == enc
    assert flops.decoder_matmul_params(cfg) == dec
    step = flops.train_flops_per_step(cfg, batch_size=2, encoder_length=LIN, decoder_length=LT)
    attn = 12 * 16 * (LIN * LIN + LT * LT + LT * LIN)  # enc self, dec self, cross; 1 layer each
    assert step == 6 * (enc * 2 * LIN + dec * 2 * LT) + 2 * attn


def test_flops_decoder_only_counts_tied_output_projection():
    cfg = config_lib.TransformerConfig(
        vocab_size=VOCAB, emb_dim=16, num_heads=2, num_encoder_layers=0, num_decoder_layers=2,
        head_dim=8, mlp_dim=32, dtype="float32", decoder_only=True, logits_via_embedding=True,
    )
    model = model_api.DecoderOnlyModel(config=cfg)
    shapes = {"decoder_input_tokens": (2, LT), "decoder_target_tokens": (2, LT)}
    params = jax.eval_shape(
        lambda r: model.get_initial_variables(r, shapes), jax.random.PRNGKey(0)
    )["params"]
    # The tied embedding is the output projection: counted once, as a matmul.
    assert flops.decoder_matmul_params(cfg) == _count(params, ("'kernel'", "'embedding'"))
    assert flops.encoder_matmul_params(cfg) == 0
    expected = 2 * LT * (6 * flops.decoder_matmul_params(cfg) + 2 * 12 * LT * 16)
    assert flops.train_flops_per_step(cfg, 2, 0, LT) == expected


def test_mfu_device_table():
    assert flops.peak_flops_per_device("NVIDIA H100 80GB HBM3") == 989e12
    assert flops.peak_flops_per_device("NVIDIA H200") == 989e12
    assert flops.peak_flops_per_device("NVIDIA A100-SXM4-40GB") == 312e12
    assert flops.peak_flops_per_device("TPU v5 lite") == 197e12
    assert flops.peak_flops_per_device("TPU v4") == 275e12
    assert flops.peak_flops_per_device("cpu") is None
    assert flops.mfu(1e15, 1.0, 8, "cpu") is None
    assert flops.mfu(989e12 * 4, 1.0, 8, "NVIDIA H100 80GB HBM3") == pytest.approx(0.5)
