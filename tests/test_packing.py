"""flan_trainer/packing.py gives exactly seqio's packed rows: real mixture data and corner cases."""

import numpy as np
import pytest
import seqio
import tensorflow as tf

from flan_trainer import packing

LENGTHS = {"inputs": 256, "targets": 64}  # several packing groups of 256 (320 for the prefix LM)


def _rows(ds, n=None):
    return list((ds.take(n) if n else ds).as_numpy_iterator())


def _assert_identical(expected, got):
    assert len(got) == len(expected)
    for a, b in zip(expected, got, strict=True):
        assert set(a) == set(b)
        for k in a:
            assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.fixture(scope="module")
def mixture_examples():
    """400 examples of the embedded suite's shuffled training mixture (inputs, targets)."""
    import flan_tasks

    flan_tasks.register_embedded_suite()
    mix = seqio.get_mixture_or_task("embedded_all_train")
    ds = mix.get_dataset(LENGTHS, split="train", shuffle=True, seed=5, num_epochs=None)
    return [{k: ex[k] for k in ("inputs", "targets")} for ex in _rows(ds, 400)]


@pytest.mark.parametrize("converter", [seqio.EncDecFeatureConverter, seqio.DecoderFeatureConverter])
def test_same_rows_as_seqio_on_the_embedded_mixture(mixture_examples, converter):
    # The converters our models use (encoder-decoder; decoder-only prefix LM through
    # DecoderFeatureConverter's delegate), lengths small enough for several packing groups.
    lengths = LENGTHS
    fast = packing.fast_packing(converter)(pack=True)
    assert type(fast).__name__ == f"FastPacking{converter.__name__}"
    expected = _rows(converter(pack=True)(_dataset(mixture_examples), lengths))
    assert sum(int(r["decoder_segment_ids"].max()) for r in expected) >= 1.5 * len(expected)  # really packed
    _assert_identical(expected, _rows(fast(_dataset(mixture_examples), lengths)))
    # An instance is converted too, settings kept.
    _assert_identical(expected, _rows(packing.fast_packing(converter(pack=True))(_dataset(mixture_examples),
                                                                                   lengths)))


def _dataset(examples):
    spec = {k: tf.TensorSpec([None], tf.int32) for k in ("inputs", "targets")}
    return tf.data.Dataset.from_generator(lambda: iter(examples), output_signature=spec)


def _example(rng, max_in, max_tgt):
    ex = {}
    for k, top in (("inputs", max_in), ("targets", max_tgt)):
        n = 0 if rng.random() < 0.08 else int(rng.integers(1, top))  # some empty, some over-long
        ex[k] = rng.integers(1, 100, n).astype(np.int32)
        if n > 3 and rng.random() < 0.1:
            ex[k][int(rng.integers(0, n))] = 0  # a 0 inside: seqio keeps the first nnz tokens
    return ex


@pytest.mark.parametrize("lengths", [{"inputs": 16, "targets": 8}, {"inputs": 10, "targets": 20}])
def test_corner_cases_match_seqio(lengths):
    rng = np.random.default_rng(0)
    # Several groups of max(lengths) examples, the last one partial; examples longer than the
    # lengths (trimmed), empty in one feature or both, with zeros inside.
    examples = [_example(rng, lengths["inputs"] + 8, lengths["targets"] + 4) for _ in range(97)]
    expected = _rows(seqio.utils.trim_and_pack_dataset(_dataset(examples), lengths))
    _assert_identical(expected, _rows(packing.trim_and_pack_dataset(_dataset(examples), lengths)))
    # A group of only empty examples is one all-padding row, in both.
    empty = [{"inputs": np.zeros([0], np.int32), "targets": np.zeros([0], np.int32)}] * 3
    expected = _rows(seqio.utils.trim_and_pack_dataset(_dataset(empty), lengths))
    assert len(expected) == 1
    _assert_identical(expected, _rows(packing.trim_and_pack_dataset(_dataset(empty), lengths)))


def test_unpacked_and_other_converters_pass_through():
    assert packing.fast_packing(seqio.PassThroughFeatureConverter).__name__.startswith("FastPacking")
    unpacked = packing.fast_packing(seqio.EncDecFeatureConverter(pack=False))
    ds = tf.data.Dataset.from_tensors({"inputs": tf.constant([3, 4, 1]), "targets": tf.constant([5, 1])})
    row = _rows(unpacked(ds, {"inputs": 5, "targets": 3}))[0]
    np.testing.assert_array_equal(row["encoder_input_tokens"], [3, 4, 1, 0, 0])
    assert packing.fast_packing("not a converter") == "not a converter"
    with pytest.raises(ValueError, match="one-dimensional"):
        packing.trim_and_pack_dataset(tf.data.Dataset.from_tensors({"inputs": tf.zeros([2, 2], tf.int32)}),
                                      {"inputs": 4})
