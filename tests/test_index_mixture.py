"""The index loader: seqio's conversion and packing per group, exact rates, full per-epoch shuffles."""

import numpy as np
import pytest
import seqio
import tensorflow as tf

from flan_trainer import index_mixture

VOCAB = seqio.ByteVocabulary()
LENGTHS = {"inputs": 24, "targets": 8}
MIX = "index_mixture_test_mix"


def _examples(split, shuffle_files, seed=None):
    del split, shuffle_files, seed
    ids = tf.range(30)
    # Lengths from 2 to ~30 bytes, so that some examples are trimmed and rows hold 1 to several.
    return tf.data.Dataset.from_tensor_slices({
        "inputs": tf.strings.substr(tf.strings.join(["q", tf.strings.as_string(ids * 7919)] * 3), tf.zeros_like(ids), 2 + ids),
        "targets": tf.strings.substr(tf.strings.join(["a", tf.strings.as_string(ids)] * 4), tf.zeros_like(ids), ids % 9),
    })


@pytest.fixture(scope="module")
def mixture() -> str:
    for name in ("index_test_a", "index_test_b"):
        if name not in seqio.TaskRegistry.names():
            seqio.TaskRegistry.add(
                name, source=seqio.FunctionDataSource(_examples, splits=("train",)),
                preprocessors=[seqio.preprocessors.tokenize, seqio.CacheDatasetPlaceholder(),
                               seqio.preprocessors.append_eos_after_trim],
                output_features={k: seqio.Feature(VOCAB, add_eos=True) for k in LENGTHS})
    if MIX not in seqio.MixtureRegistry.names():
        seqio.MixtureRegistry.add(MIX, [("index_test_a", 1.0), ("index_test_b", 3.0)])
    return MIX


@pytest.fixture(scope="module")
def rows(mixture) -> index_mixture.TaskRows:
    return index_mixture.read_rows(mixture, LENGTHS)


def _group(rows: index_mixture.TaskRows, row_ids: np.ndarray) -> dict[str, tf.RaggedTensor]:
    return {k: tf.gather(tf.RaggedTensor.from_row_splits(rows.values[k], rows.row_splits[k]), row_ids)
            for k in rows.values}


@pytest.mark.parametrize("converter,lengths", [
    (seqio.EncDecFeatureConverter(pack=True), LENGTHS),
    (seqio.LMFeatureConverter(pack=True), {"targets": 8}),
    (seqio.EncDecFeatureConverter(pack=False), LENGTHS),
    (seqio.DecoderFeatureConverter(pack=True), LENGTHS),  # prefix LM: its own pipeline per group
])
def test_groups_convert_exactly_as_seqio_converts_them(mixture, converter, lengths):
    rows = index_mixture.read_rows(mixture, lengths)
    assert rows.names == ["index_test_a", "index_test_b"]
    np.testing.assert_allclose(rows.rates, [0.25, 0.75])
    assert list(rows.counts) == [30, 30]
    group_size = max(lengths.values())
    for g, row_ids in enumerate(np.split(index_mixture.stream_rows(rows, 5, 3, group_size), 3)):
        group = _group(rows, row_ids)
        # seqio's own converter on the same examples, as a stream (its packing loop, unchanged).
        want = list(converter(tf.data.Dataset.from_tensor_slices(group), lengths).as_numpy_iterator())
        got = index_mixture.convert_group(group, converter, lengths)
        assert set(got) == set(want[0]), g
        for k, v in got.items():
            np.testing.assert_array_equal(v.numpy(), np.stack([w[k] for w in want]), err_msg=f"group {g} {k}")
            assert v.dtype == tf.as_dtype(want[0][k].dtype), k
        if converter.pack:
            assert len(want) < group_size  # the test packs several examples per row


def test_rates_full_epochs_and_seeds(rows):
    stream = index_mixture.stream_rows(rows, seed=3, num_groups=400, group_size=24)
    task = (stream >= rows.starts[1]).astype(int)
    # Mixing: the share of task b is its rate 0.75 (9,600 draws: 4 standard deviations ~ 0.018).
    assert abs(task.mean() - 0.75) < 0.018
    # Per task, every run of n consecutive examples is one epoch: each row once, a new order each time.
    for t in (0, 1):
        ids = stream[task == t] - rows.starts[t]
        epochs = ids[: len(ids) // 30 * 30].reshape(-1, 30)
        assert len(epochs) >= 50
        assert all(sorted(e) == list(range(30)) for e in epochs)
        assert len({tuple(e) for e in epochs}) == len(epochs)
    # Deterministic in the seed; unshuffled, each task reads its rows in order.
    np.testing.assert_array_equal(stream[:500], index_mixture.stream_rows(rows, 3, 21, 24)[:500])
    assert not np.array_equal(stream[:500], index_mixture.stream_rows(rows, 4, 21, 24)[:500])
    plain = index_mixture.stream_rows(rows, 3, 5, 24, shuffle=False)
    for t in (0, 1):
        ids = plain[(plain >= rows.starts[1]).astype(int) == t] - rows.starts[t]
        np.testing.assert_array_equal(ids, np.arange(len(ids)) % 30)


def test_settings_and_clear_errors(mixture, rows):
    assert index_mixture.loader_settings()[0] == "seqio"
    assert index_mixture.loader_settings("index", 3) == ("index", 3)
    with pytest.raises(ValueError, match="input_loader.kind='grain' is not a loader; valid: seqio, index"):
        index_mixture.loader_settings("grain")
    with pytest.raises(ValueError, match="no task with a 'validation' split"):
        index_mixture.read_rows(mixture, LENGTHS, split="validation")
    assert rows.digest() == index_mixture.read_rows(mixture, LENGTHS).digest()
    # Several reader threads (one per task here, a third idle) read the same table.
    assert rows.digest() == index_mixture.read_rows(mixture, LENGTHS, workers=3).digest()
    # With more tasks than readers, a reader's rows interleave tasks; the table is put back in order.
    parts = [(np.array([0, 0, 2]), {"x": np.array([1, 2, 3, 7, 7])}, {"x": np.array([1, 2, 2])}),
             (np.array([1, 1]), {"x": np.array([4, 5, 6])}, {"x": np.array([2, 1])})]
    task, values, lens = index_mixture._in_task_order(parts, {"x": 4})
    assert task.tolist() == [0, 0, 1, 1, 2]
    assert values["x"].tolist() == [1, 2, 3, 4, 5, 6, 7, 7] and lens["x"].tolist() == [1, 2, 2, 1, 2]
    assert rows.digest() != index_mixture.read_rows(mixture, {"inputs": 16, "targets": 8}).digest()  # trimmed


def test_hosts_read_disjoint_shards(mixture, rows):
    def texts(rows):
        splits = rows.row_splits["inputs"]
        return {tuple(rows.values["inputs"][a:b]) for a, b in zip(splits[:-1], splits[1:], strict=True)}

    whole = rows
    halves = [index_mixture.read_rows(mixture, LENGTHS, shard_info=seqio.ShardInfo(i, 2)) for i in (0, 1)]
    assert [list(h.counts) for h in halves] == [[15, 15], [15, 15]]
    assert not texts(halves[0]) & texts(halves[1])
    assert texts(halves[0]) | texts(halves[1]) == texts(whole)
