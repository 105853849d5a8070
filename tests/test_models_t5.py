"""T5.1.1 module: T5X parameter tree, logical axes, packing, sharded init, dtypes."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType
from jax.sharding import PartitionSpec as P

from flan_trainer.models import EncoderDecoderModel, TransformerConfig
from flan_trainer.models.layers import relative_position_bucket
from flan_trainer.models.t5 import Transformer

CFG = TransformerConfig(
    vocab_size=96, emb_dim=32, num_heads=2, num_encoder_layers=2, num_decoder_layers=2,
    head_dim=16, mlp_dim=48, dtype="float32",
)
SHAPES = {"encoder_input_tokens": (2, 8), "decoder_input_tokens": (2, 6)}


def _expected_tree(cfg: TransformerConfig) -> dict[str, tuple[int, ...]]:
    e, hd, m, v, h = cfg.emb_dim, cfg.num_heads * cfg.head_dim, cfg.mlp_dim, cfg.vocab_size, cfg.num_heads
    attn = {"query/kernel": (e, hd), "key/kernel": (e, hd), "value/kernel": (e, hd), "out/kernel": (hd, e)}
    mlp = {"mlp/wi_0/kernel": (e, m), "mlp/wi_1/kernel": (e, m), "mlp/wo/kernel": (m, e)}
    tree = {"token_embedder/embedding": (v, e), "encoder/relpos_bias/rel_embedding": (h, 32),
            "decoder/relpos_bias/rel_embedding": (h, 32), "encoder/encoder_norm/scale": (e,),
            "decoder/decoder_norm/scale": (e,), "decoder/logits_dense/kernel": (e, v)}
    for i in range(cfg.num_encoder_layers):
        p = f"encoder/layers_{i}/"
        tree |= {p + "pre_attention_layer_norm/scale": (e,), p + "pre_mlp_layer_norm/scale": (e,)}
        tree |= {p + "attention/" + k: s for k, s in attn.items()} | {p + k: s for k, s in mlp.items()}
    for i in range(cfg.num_decoder_layers):
        p = f"decoder/layers_{i}/"
        for norm in ("pre_self_attention_layer_norm", "pre_cross_attention_layer_norm", "pre_mlp_layer_norm"):
            tree[p + norm + "/scale"] = (e,)
        for name in ("self_attention", "encoder_decoder_attention"):
            tree |= {p + name + "/" + k: s for k, s in attn.items()}
        tree |= {p + k: s for k, s in mlp.items()}
    return tree


def _flat(tree) -> dict[str, object]:
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: isinstance(x, nn.Partitioned))[0]:
        out["/".join(str(getattr(k, "key", k)) for k in path)] = leaf
    return out


@pytest.fixture(scope="module")
def variables():
    return EncoderDecoderModel(CFG).get_initial_variables(jax.random.key(0), SHAPES)


def test_parameter_tree_is_t5x(variables):
    assert set(variables) == {"params"}
    got = {k: tuple(v.value.shape) for k, v in _flat(variables["params"]).items()}
    assert got == _expected_tree(CFG)
    assert all(v.value.dtype == jnp.float32 for v in _flat(variables["params"]).values())


def test_logical_axis_names_are_t5x(variables):
    names = {k: v.names for k, v in _flat(variables["params"]).items()}
    assert names["token_embedder/embedding"] == ("vocab", "embed")
    assert names["encoder/layers_0/attention/query/kernel"] == ("embed", "joined_kv")
    assert names["decoder/layers_1/encoder_decoder_attention/out/kernel"] == ("joined_kv", "embed")
    assert names["decoder/layers_0/mlp/wi_1/kernel"] == ("embed", "mlp")
    assert names["decoder/layers_0/mlp/wo/kernel"] == ("mlp", "embed")
    assert names["decoder/logits_dense/kernel"] == ("embed", "vocab")
    assert names["encoder/relpos_bias/rel_embedding"] == ("heads", "relpos_buckets")
    assert names["decoder/decoder_norm/scale"] == ("embed",)


def test_query_init_is_scaled_by_head_dim(variables):
    flat = _flat(variables["params"])
    q = np.std(np.asarray(flat["encoder/layers_0/attention/query/kernel"].value))
    k = np.std(np.asarray(flat["encoder/layers_0/attention/key/kernel"].value))
    assert q == pytest.approx(k / np.sqrt(CFG.head_dim), rel=0.25)


def test_relative_position_buckets_match_t5():
    rel = np.arange(-200, 201)
    bi = relative_position_bucket(rel, True, 32, 128)
    uni = relative_position_bucket(rel, False, 32, 128)
    # Exact buckets for short distances; keys after the query use the upper half.
    assert bi[rel == 0] == 0 and bi[rel == -3] == 3 and bi[rel == 3] == 16 + 3
    assert bi.max() == 31 and bi[rel == -200] == 15 and bi[rel == 200] == 31
    # Causal: every key after the query collapses into bucket 0; far past saturates at 31.
    assert np.all(uni[rel > 0] == 0) and uni[rel == -15] == 15 and uni[rel == -200] == 31
    assert np.all(np.diff(uni[rel <= 0][::-1]) >= 0)


def _rand_tokens(rng, n):
    return rng.integers(2, CFG.vocab_size, n).astype(np.int32)


def test_packed_batch_equals_each_example_alone(variables):
    module = Transformer(CFG)
    rng = np.random.default_rng(0)
    (ia, ib), (ta, tb) = (_rand_tokens(rng, 3), _rand_tokens(rng, 4)), (_rand_tokens(rng, 2), _rand_tokens(rng, 3))

    def run(enc, tgt, enc_seg=None, dec_seg=None):
        tgt = jnp.asarray([tgt])
        dec_in = jnp.pad(tgt, ((0, 0), (1, 0)))[:, :-1]
        if dec_seg is not None:  # packed: each segment starts with its own BOS
            dec_in = jnp.where(jnp.asarray([np.r_[True, np.diff(dec_seg) != 0]]), 0, dec_in)
        return module.apply(variables, jnp.asarray([enc]), dec_in, tgt,
                            None if enc_seg is None else jnp.asarray([enc_seg]),
                            None if dec_seg is None else jnp.asarray([dec_seg]), enable_dropout=False)[0]

    packed = run(np.r_[ia, ib, 0], np.r_[ta, tb, 0], np.r_[[1] * 3, [2] * 4, 0], np.r_[[1] * 2, [2] * 3, 0])
    alone_a = run(np.r_[ia, 0, 0], np.r_[ta, 0])
    alone_b = run(ib, tb)
    np.testing.assert_allclose(packed[:2], alone_a[:2], atol=1e-5)
    np.testing.assert_allclose(packed[2:5], alone_b, atol=1e-5)


@pytest.mark.slow
def test_init_under_mesh_with_logical_sharding():
    rules = [("batch", "data"), ("vocab", "model"), ("mlp", "model"), ("heads", "model"), ("kv", None),
             ("joined_kv", "model"), ("relpos_buckets", None), ("length", None), ("embed", None)]
    # The trainer's mesh (partitioning.make_mesh) uses Auto axes, as jax.sharding.Mesh does.
    mesh = jax.make_mesh((4, 2), ("data", "model"), axis_types=(AxisType.Auto, AxisType.Auto))
    model = EncoderDecoderModel(CFG)

    def init(rng):
        return model.get_initial_variables(rng, {"encoder_input_tokens": (8, 8), "decoder_input_tokens": (8, 6)})

    with nn.logical_axis_rules(rules), jax.set_mesh(mesh):
        boxed = jax.eval_shape(init, jax.random.key(0))
        shardings = nn.logical_to_mesh_sharding(nn.get_partition_spec(boxed), mesh, rules)
        variables = jax.jit(init, out_shardings=shardings)(jax.random.key(0))
        params = nn.unbox(variables["params"])
        batch = {k: jnp.ones(s, jnp.int32) for k, s in (("encoder_input_tokens", (8, 8)),
                 ("decoder_input_tokens", (8, 6)), ("decoder_target_tokens", (8, 6)))}
        loss, _ = jax.jit(lambda p, b: model.loss_fn(p, b, None))(params, batch)
    assert params["decoder"]["logits_dense"]["kernel"].sharding.spec == P(None, "model")
    assert params["encoder"]["layers_0"]["attention"]["query"]["kernel"].sharding.spec == P(None, "model")
    assert params["token_embedder"]["embedding"].sharding.spec == P("model", None)
    assert np.isfinite(float(loss))


def test_bfloat16_activations_keep_float32_params_and_logits():
    cfg = TransformerConfig(**{**CFG.__dict__, "dtype": "bfloat16"})
    model = EncoderDecoderModel(cfg)
    variables = model.get_initial_variables(jax.random.key(0), SHAPES)
    tokens = jnp.full((2, 6), 5, jnp.int32)
    logits = Transformer(cfg).apply(variables, jnp.full((2, 8), 3, jnp.int32), tokens, tokens, enable_dropout=False)
    assert logits.dtype == jnp.float32
    assert jax.tree_util.tree_leaves(nn.unbox(variables))[0].dtype == jnp.float32


def test_dropout_is_active_only_with_an_rng(variables):
    cfg = TransformerConfig(**{**CFG.__dict__, "dropout_rate": 0.3})
    model = EncoderDecoderModel(cfg)
    rng = np.random.default_rng(1)
    tgt = jnp.asarray(rng.integers(2, 96, (2, 6)), jnp.int32)
    batch = {"encoder_input_tokens": jnp.asarray(rng.integers(2, 96, (2, 8)), jnp.int32),
             "decoder_input_tokens": jnp.pad(tgt, ((0, 0), (1, 0)))[:, :-1], "decoder_target_tokens": tgt}
    params = variables["params"]
    det = [float(model.loss_fn(params, batch, None)[0]) for _ in range(2)]
    drop = [float(model.loss_fn(params, batch, jax.random.key(i))[0]) for i in range(2)]
    assert det[0] == det[1] and drop[0] != drop[1] and drop[0] != det[0]
