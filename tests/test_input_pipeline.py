"""seqio input pipeline: exact resume, host sharding, global arrays, clear errors."""

import functools

import gin
import jax
import numpy as np
import pytest
import seqio
import tensorflow as tf
from jax.sharding import Mesh

from flan_trainer import data_checkpoint
from flan_trainer import input_pipeline as ip

NUM_EXAMPLES = 40
VOCAB = seqio.ByteVocabulary()
LENGTHS = {"inputs": 24, "targets": 8}


def _examples(split, shuffle_files, seed=None):
    del split, shuffle_files, seed
    ids = tf.range(NUM_EXAMPLES)
    return tf.data.Dataset.from_tensor_slices({
        "inputs": tf.strings.join(["question ", tf.strings.as_string(ids), " ", tf.strings.as_string(ids * 7)]),
        "targets": tf.strings.join(["a", tf.strings.as_string(ids % 3)]),
    })


def _register(name: str, cacheable: bool = False) -> str:
    if name not in seqio.TaskRegistry.names():
        cache = [seqio.CacheDatasetPlaceholder()] if cacheable else []
        seqio.TaskRegistry.add(
            name,
            source=seqio.FunctionDataSource(_examples, splits=("train", "validation")),
            preprocessors=[seqio.preprocessors.tokenize, *cache, seqio.preprocessors.append_eos],
            output_features={k: seqio.Feature(VOCAB, add_eos=True) for k in ("inputs", "targets")},
        )
    return name


@pytest.fixture(scope="module")
def task() -> str:
    return _register("pipeline_test_tiny_task")


@pytest.fixture(scope="module")
def mixture(task) -> str:
    other = _register("pipeline_test_tiny_task_b")
    name = "pipeline_test_tiny_mix"
    if name not in seqio.MixtureRegistry.names():
        seqio.MixtureRegistry.add(name, [(task, 1.0), (other, 2.0)])
    return name


def _mesh(data: int, model: int) -> Mesh:
    return Mesh(np.array(jax.devices()[: data * model]).reshape(data, model), ("data", "model"))


def _batches(it, n):
    return [{k: np.asarray(v) for k, v in next(it).items()} for _ in range(n)]


def _assert_same(expected, got):
    for a, b in zip(expected, got, strict=True):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])


@pytest.fixture(params=["seqio", "index"])
def loader(request):
    """Each training loader in turn, chosen as a run chooses it (gin: input_loader.kind)."""
    with gin.unlock_config():
        gin.bind_parameter("input_loader.kind", request.param)
    yield request.param
    gin.clear_config()


def test_global_batches_and_exact_resume(mixture, loader, tmp_path, caplog):
    mesh = _mesh(4, 2)
    make = functools.partial(
        ip.get_train_iterator, mixture, LENGTHS, 8, seqio.EncDecFeatureConverter, mesh, seed=17)
    full_it = make()
    assert full_it.fingerprint["pipeline"] == {"seqio": "fast-v1", "index": "index-v1"}[loader]
    full = _batches(full_it, 4)
    # The iterator state after 4 batches, as a checkpoint saves it: first pending, then moved into
    # the finished step directory (a resume finds it in either place).
    ckpt = tmp_path / "checkpoint_4"
    # What a process killed before this checkpoint completed left for the same step (a complete
    # state of another position, and a half-written one): the new save replaces both.
    assert make().save_state(data_checkpoint.pending_dir(ckpt))
    (data_checkpoint.pending_dir(ckpt) / "tmp-host_0.index").write_bytes(b"half-written")
    assert full_it.save_state(data_checkpoint.pending_dir(ckpt))
    assert data_checkpoint.read_fingerprint(ckpt, 0)["steps"] == 4
    data_checkpoint.publish(ckpt, 0)
    assert sorted(p.name for p in (ckpt / "data").iterdir())[-1] == "host_0.json"
    assert not (tmp_path / data_checkpoint.PENDING_DIR).exists()
    full += _batches(full_it, 3)
    first = full[0]
    assert set(first) >= {"encoder_input_tokens", "decoder_target_tokens", "encoder_segment_ids"}
    assert first["encoder_input_tokens"].shape == (8, 24)
    arr = next(make())["encoder_input_tokens"]
    assert arr.sharding.spec == jax.sharding.PartitionSpec("data")
    assert arr.shape == (8, 24)
    # O(1) resume from the saved state, and the replay fallback (no state in the dir, or a state
    # saved by another pipeline): all three give the batches the uninterrupted run saw next.
    restored = make(start_step=4, resume_dir=tmp_path / "checkpoint_4")
    replayed = make(start_step=4, resume_dir=tmp_path / "elsewhere")
    with caplog.at_level("WARNING"):
        changed = make(start_step=4, resume_dir=tmp_path / "checkpoint_4", shuffle=False)
    assert "input pipeline changed since the checkpoint (" in caplog.text
    assert "shuffle: saved True, now False" in caplog.text
    assert "replaying 4 batches" in caplog.text
    assert (restored.resumed_by, replayed.resumed_by) == ("iterator state", "replay")
    for it in (restored, replayed):
        _assert_same(full[4:], _batches(it, 3))
        assert it.data_state() == {"steps": 7, "examples": 56, "seed": 17, "mixture": mixture}
    assert changed.resumed_by == "replay"
    # Another seed gives another order (the test can tell batches apart).
    other = _batches(make(seed=18), 2)
    assert any(not np.array_equal(a["encoder_input_tokens"], b["encoder_input_tokens"])
               for a, b in zip(full[:2], other, strict=True))


def _decoded_inputs(ds, n_batches):
    texts = []
    for batch in ds.take(n_batches).as_numpy_iterator():
        for row in batch["encoder_input_tokens"]:
            texts.append(VOCAB.decode([int(t) for t in row if t > 1]))
    return texts


def test_two_shards_split_without_overlap(task):
    def shard(i):
        ds = ip.get_host_dataset(task, LENGTHS, 4, seqio.EncDecFeatureConverter, seqio.ShardInfo(i, 2),
                                 seed=0, shuffle=False, pack=False)
        return _decoded_inputs(ds, NUM_EXAMPLES // 2 // 4)  # one epoch of the shard

    a, b = shard(0), shard(1)
    assert len(a) == len(b) == NUM_EXAMPLES // 2
    assert not set(a) & set(b)
    assert set(a) | set(b) == {f"question {i} {7 * i}" for i in range(NUM_EXAMPLES)}


def test_host_shard_info_from_mesh():
    mesh = _mesh(4, 2)
    assert ip.host_shard_info(mesh) == seqio.ShardInfo(0, 1)
    # Pretend two hosts: devices 0-3 on host 0 (data rows 0,1), 4-7 on host 1 (rows 2,3).
    by_id = {d: d.id // 4 for d in jax.devices()}
    assert ip.host_shard_info(mesh, 1, by_id.__getitem__) == seqio.ShardInfo(1, 2)
    # Hosts that differ only along 'model' read the same shard.
    mesh_t = Mesh(np.array(jax.devices()).reshape(2, 4).T, ("data", "model"))  # host = model column
    assert ip.host_shard_info(mesh_t, 1, by_id.__getitem__) == seqio.ShardInfo(0, 1)
    odd = {d: d.id % 2 for d in jax.devices()}  # host 0 holds rows 0 and 2: not contiguous
    with pytest.raises(ValueError, match="non-contiguous"):
        ip.host_shard_info(_mesh(8, 1), 0, odd.__getitem__)


def test_eval_dataset_one_epoch_in_order(task):
    ds = ip.get_eval_dataset(task, LENGTHS, 16, seqio.EncDecFeatureConverter, mesh=_mesh(8, 1))
    texts = _decoded_inputs(ds, 100)
    assert texts == [f"question {i} {7 * i}" for i in range(NUM_EXAMPLES)]
    assert "encoder_segment_ids" not in next(iter(ds))


def test_clear_errors(task):
    cacheable = _register("pipeline_test_cacheable_task", cacheable=True)
    with pytest.raises(ValueError, match=r"no offline cache.*pipeline_test_cacheable_task.*use_cached_tasks=False"):
        ip.get_train_iterator(cacheable, LENGTHS, 8, seqio.EncDecFeatureConverter, _mesh(8, 1), seed=0,
                              use_cached_tasks=True)
    with pytest.raises(ValueError, match="not divisible by the data-parallel size 8"):
        ip.get_train_iterator(task, LENGTHS, 12, seqio.EncDecFeatureConverter, _mesh(8, 1), seed=0)
    with pytest.raises(ValueError, match="needs the seed"):
        ip.get_train_iterator(task, LENGTHS, 8, seqio.EncDecFeatureConverter, _mesh(8, 1), seed=None,
                              start_step=3)
    with pytest.raises(ValueError, match="pack=False but pack=True"):
        ip.get_train_iterator(task, LENGTHS, 8, seqio.EncDecFeatureConverter(pack=False), _mesh(8, 1), 0)


def test_missing_tfds_data_names_the_fix(tmp_path):
    name = "pipeline_test_missing_tfds"
    if name not in seqio.TaskRegistry.names():
        seqio.TaskRegistry.add(
            name, source=seqio.TfdsDataSource("glue/cola:2.0.0", tfds_data_dir=str(tmp_path)),
            preprocessors=[], output_features={})
    with pytest.raises(FileNotFoundError, match=r"tfds build glue/cola --data_dir=DIR.*--tfds_data_dir"):
        ip.get_host_dataset(name, LENGTHS, 4, seqio.EncDecFeatureConverter, seqio.ShardInfo(0, 1), seed=0)


def test_fast_path_gives_the_old_paths_batches(mixture):
    # fast=True (vectorised packing, fast_options) and the old path (seqio's packing loop, default
    # tf.data options) read the same mixture into the same packed batches, bit for bit. The fast one
    # is built as training builds it, without AutoGraph (flan_tasks/graph_build.py); the old one with
    # it, as tf.data does by default.
    from flan_tasks import graph_build

    def batches(fast):
        def build():
            return ip.get_host_dataset(mixture, {"inputs": 64, "targets": 16}, 4, seqio.EncDecFeatureConverter,
                                       seqio.ShardInfo(0, 1), seed=3, fast=fast)

        ds = graph_build.build(build) if fast else build()
        return list(ds.take(6).as_numpy_iterator())

    fast = batches(True)
    assert max(int(row.max()) for b in fast for row in b["encoder_segment_ids"]) > 1  # packed
    _assert_same(batches(False), fast)


def _upper_long_targets(ds: tf.data.Dataset) -> tf.data.Dataset:
    """A user preprocessor that needs AutoGraph: an `if` on a tensor (AutoGraph makes it a tf.cond)."""

    def fn(ex):
        targets = ex["targets"]
        if tf.strings.length(targets) > 1:
            targets = tf.strings.upper(targets)
        return {**ex, "targets": targets}

    return ds.map(fn)


def test_pipelines_build_without_autograph_and_fall_back_when_a_task_needs_it():
    from flan_tasks import graph_build

    ds = tf.data.Dataset.from_tensor_slices({"targets": ["a", "bc"]})
    with graph_build.autograph_off(), pytest.raises(TypeError):  # the switch really turns it off
        _upper_long_targets(ds)
    # A task whose preprocessor needs AutoGraph still builds (and behaves as with AutoGraph).
    name = "pipeline_test_needs_autograph"
    if name not in seqio.TaskRegistry.names():
        seqio.TaskRegistry.add(
            name, source=seqio.FunctionDataSource(_examples, splits=("validation",)),
            preprocessors=[_upper_long_targets, seqio.preprocessors.tokenize, seqio.preprocessors.append_eos],
            output_features={k: seqio.Feature(VOCAB, add_eos=True) for k in ("inputs", "targets")})
    ds = ip.get_eval_dataset(name, LENGTHS, 8, seqio.EncDecFeatureConverter)
    targets = [VOCAB.decode([int(t) for t in row if t > 1]) for b in ds.as_numpy_iterator()
               for row in b["decoder_target_tokens"]]
    assert targets == [f"A{i % 3}" for i in range(NUM_EXAMPLES)]
