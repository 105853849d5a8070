"""Evaluation on a mesh (evals.eval_mesh): the same scores and tokens on 1 device, (8,1) and (4,2)
meshes and any eval batch size; each device of an (8,1) mesh computes 1/8 of each batch.

Uses the real EncoderDecoderModel (tiny fp32 T5 whose 2 heads, mlp and vocab split over a 2-way
'model' axis) and the conftest's 8 virtual CPU devices.
"""

import dataclasses
import re

import jax
import numpy as np
import pytest

from evals import eval_mesh, generation
from evals import rank_classification as rc
from flan_trainer import partitioning
from flan_trainer.models import model_api
from flan_trainer.models.config import TransformerConfig

TINY = TransformerConfig(vocab_size=64, emb_dim=32, num_heads=2, head_dim=8, mlp_dim=64,
                         num_encoder_layers=1, num_decoder_layers=1, dtype="float32")
DECODE_LEN = 6


@pytest.fixture(scope="module")
def setup():
    model = model_api.EncoderDecoderModel(TINY)
    shapes = {"encoder_input_tokens": (1, 8), "decoder_input_tokens": (1, 4)}
    params = model.get_initial_variables(jax.random.PRNGKey(3), shapes)["params"]
    rng = np.random.default_rng(0)
    ranks, gens = [], []
    for e in range(11):
        # One length bucket and option count per kind: one program per (kind, batch size).
        prompt = np.append(rng.integers(3, 64, rng.integers(3, 15)), 1).astype(np.int32)
        opts = tuple(np.append(rng.integers(3, 64, rng.integers(1, 9)), 1).astype(np.int32) for _ in range(3))
        ranks.append(rc.RankExample(e, prompt, opts, gold=(0,)))
        gens.append(generation.GenExample(e, prompt, ("x",), target_length=DECODE_LEN))
    ref_mesh = eval_mesh.EvalMesh.single_device()
    ref = (rc.rank_examples(model, params, ranks, 4, mesh=ref_mesh),
           generation.decode_examples(model, params, gens, 4, max_decode_length=DECODE_LEN, mesh=ref_mesh))
    return model, params, ranks, gens, ref


def _assert_same(ref, got):
    (ref_rank, ref_ids), (rank, ids) = ref, got
    assert rank.predictions == ref_rank.predictions
    assert rank.normalized_predictions == ref_rank.normalized_predictions
    for a, b in zip(ref_rank.scores, rank.scores, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)
    for a, b in zip(ref_ids, ids, strict=True):
        np.testing.assert_array_equal(b, a)


@pytest.mark.slow
@pytest.mark.parametrize("mesh_shape,batch_sizes", [((8, 1), (8, 16)), ((4, 2), (3, 12))])
def test_same_results_on_meshes_and_batch_sizes(setup, mesh_shape, batch_sizes):
    model, params, ranks, gens, ref = setup
    ev = eval_mesh.EvalMesh(partitioning.make_mesh(mesh_shape=mesh_shape))
    placed = ev.place_params(model, params)
    if mesh_shape[1] > 1:  # model-parallel: e.g. the MLP's wi kernels are split over 'model'
        wi = placed["encoder"]["layers_0"]["mlp"]["wi_0"]["kernel"]
        assert wi.sharding.spec == jax.sharding.PartitionSpec(None, "model")
        assert wi.addressable_shards[0].data.shape == (TINY.emb_dim, TINY.mlp_dim // 2)
    for bs in batch_sizes:  # 3 rounds up to 4 rows on the 4-way data axis
        got = (rc.rank_examples(model, placed, ranks, bs, mesh=ev),
               generation.decode_examples(model, placed, gens, bs, max_decode_length=DECODE_LEN, mesh=ev))
        _assert_same(ref, got)
    # Every program run was compiled once per bucketed shape: the count is what jit cached.
    cached = sum(p._cache_size() for p in ev._programs.values())
    assert ev.compiles == cached > 0


def test_each_device_of_a_data_mesh_computes_an_eighth_of_the_batch(setup):
    model, params, ranks, gens, _ = setup
    ev = eval_mesh.EvalMesh(partitioning.make_mesh(mesh_shape=(8, 1)))
    placed = ev.place_params(model, params)
    batch, lin, lt, k = 16, 32, 16, 3
    local = rc._make_option_batch(ranks[:batch], batch, lin, lt, k)
    args = ev.to_global(local)
    compiled = ev.lower(model, "score_options", placed, *args).compile()
    (_, batch_shardings), _ = compiled.input_shardings
    for sharding, shape in zip(batch_shardings, [(batch, lin), (batch, k, lt), (batch, k, lt)], strict=True):
        assert sharding.spec == jax.sharding.PartitionSpec("data")
        assert sharding.shard_shape(shape) == (batch // 8, *shape[1:])
    assert compiled.output_shardings.shard_shape((batch, k)) == (batch // 8, k)
    # The per-device program itself: its token parameters hold 2 of the 16 rows, and it has no
    # collective at all (no device ever sees, gathers or reduces another device's rows).
    hlo = compiled.as_text()
    assert re.search(rf"s32\[{batch // 8},{lin}\]", hlo) and not re.search(rf"s32\[{batch},{lin}\]", hlo)
    assert not re.search(r"all-gather|all-reduce|all-to-all|collective-permute|reduce-scatter", hlo)

    # Decoding too, beam search included (its top-k is per row, never over the whole batch).
    dec_batch = ev.to_global({"encoder_input_tokens": local[0], "decoder_input_tokens": np.zeros((batch, 8), np.int32)})
    compiled = ev.lower(model, "predict_batch", placed, dec_batch, method="beam", max_decode_length=8,
                        num_beams=2, alpha=0.6).compile()
    assert compiled.output_shardings.shard_shape((batch, 8)) == (batch // 8, 8)
    hlo = compiled.as_text()
    assert re.search(rf"s32\[{batch // 8},{lin}\]", hlo) and not re.search(rf"s32\[{batch},{lin}\]", hlo)
    assert not re.search(r"all-gather|all-reduce|all-to-all|collective-permute|reduce-scatter", hlo)


@pytest.mark.slow
def test_cross_attention_cache_gives_the_same_tokens_sharded(setup):
    """Decoding that re-projects the encoder output at every step (cache_cross_attention=False)
    gives the tokens of the cached default, here sharded over (8, 1)."""
    model, params, _, gens, (_, ref_ids) = setup
    assert model.config.cache_cross_attention  # the reference decoded with the cache (the default)
    plain = model_api.EncoderDecoderModel(dataclasses.replace(TINY, cache_cross_attention=False))
    ev = eval_mesh.EvalMesh(partitioning.make_mesh(mesh_shape=(8, 1)))
    ids = generation.decode_examples(plain, params, gens, 8, max_decode_length=DECODE_LEN, mesh=ev)
    for a, b in zip(ref_ids, ids, strict=True):
        np.testing.assert_array_equal(b, a)
