"""OPTIONS block, template rendering and the seeded per-example template draw."""

import types

import pytest
import tensorflow as tf

from flan_tasks import options_block, options_block_tf
from flan_tasks.preprocessors import render_train
from flan_tasks.rendering import render_tf, split_template, template_index_tf, wrap_flan
from flan_tasks.spec import Template


def test_options_block_exact_format():
    assert options_block(["yes", "no"]) == "OPTIONS:\n- yes\n- no"
    assert options_block(("a",)) == "OPTIONS:\n- a"
    opts = ["yes", "it is not possible to tell", "no"]
    assert options_block(opts) == "OPTIONS:\n- " + "\n- ".join(opts)


def test_options_block_tf_matches_python():
    opts = ["negative", "positive", "x y"]
    assert options_block_tf(tf.constant(opts)).numpy().decode() == options_block(opts)


def test_options_block_rejects_bad_input():
    with pytest.raises(ValueError, match="non-empty sequence"):
        options_block([])
    with pytest.raises(ValueError, match="non-empty sequence"):
        options_block("yes")


def test_split_template():
    assert split_template("a {x} b {options_}") == [("a ", False), ("x", True), (" b ", False), ("options_", True)]
    assert split_template("{x}{y}") == [("x", True), ("y", True)]


def _record():
    return {
        "premise": tf.constant("P."),
        "hypothesis": tf.constant("H."),
        "options": tf.constant(["yes", "no"]),
        "label": tf.constant(1),
        "answer": tf.constant("no"),
    }


def test_render_fields_options_and_numbers():
    text = "{premise} {hypothesis} label={label}\n\n{options_}"
    out = render_tf(text, _record()).numpy().decode()
    assert out == "P. H. label=1\n\nOPTIONS:\n- yes\n- no"


def test_render_without_options_strips_block():
    out = render_tf("{premise}\n\n{options_}", _record(), include_options=False).numpy().decode()
    assert out == "P."


def test_render_missing_field_names_the_field():
    with pytest.raises(KeyError, match="nope"):
        render_tf("{nope}", _record())


def test_wrapper():
    assert wrap_flan(tf.constant("hi")).numpy().decode() == "0 hi X 1 FLAN"


def _dataset(n):
    return tf.data.Dataset.from_tensor_slices({"text": [f"example number {i}" for i in range(n)]})


def test_template_draw_depends_on_content_and_seed_only():
    rec = {"text": tf.constant("same content")}
    a = int(template_index_tf(rec, 10, seed=3))
    assert a == int(template_index_tf(rec, 10, seed=3))
    draws = {int(template_index_tf({"text": tf.constant(f"r{i}")}, 10, seed=3)) for i in range(200)}
    assert draws == set(range(10))  # every template gets used
    seeds = [[int(template_index_tf({"text": tf.constant(f"r{i}")}, 10, seed=s)) for i in range(50)] for s in (0, 1)]
    assert seeds[0] != seeds[1]


def test_training_prompts_do_not_depend_on_position():
    templates = [Template(f"T{k}: {{text}}", "{text}") for k in range(10)]
    fn = render_train(templates, seed=7)
    forward = {ex["targets"]: ex["inputs"] for ex in fn(_dataset(60)).as_numpy_iterator()}
    # The same records in another order and at other positions: each keeps its prompt.
    shifted = _dataset(60).skip(10).concatenate(_dataset(10)).shuffle(100, seed=1)
    for ex in fn(shifted).as_numpy_iterator():
        assert forward[ex["targets"]] == ex["inputs"]
    assert len(set(forward.values())) > 1


def _mixed_records(n):
    # Every field kind a processor produces: strings, ints, floats, bools, ragged 1-D options.
    return tf.data.Dataset.from_tensor_slices({
        "text": [f"record {i} with some words é" for i in range(n)],
        "num": list(range(n)),
        "score": [i / 3 for i in range(n)],
        "flag": [i % 2 == 0 for i in range(n)],
        "k": [1 + i % 4 for i in range(n)],
    }).map(lambda ex: {**ex, "options": tf.strings.as_string(tf.range(ex["k"])) + " opt"})


@pytest.mark.parametrize("vocab", ["spm", "bytes"])
def test_batched_training_rows_equal_per_example_rows(vocab, request):
    """flan_tasks.batched (what training tasks run) gives exactly the per-example path's elements:
    same strings, ids, order and element specs, for every template shape, ablation and batch tail."""
    import numpy as np
    import seqio

    from flan_tasks import batched

    vocabulary = (seqio.SentencePieceVocabulary(str(request.getfixturevalue("spm_path")))
                  if vocab == "spm" else seqio.ByteVocabulary())
    features = {k: seqio.Feature(vocabulary) for k in ("inputs", "targets")}
    templates = [
        Template("{text} n={num} s={score} f={flag}\n\n{options_}", "{options_}"),
        Template("Only literals.", "{text}"),
        Template("", "{num}"),
        Template("Q: {text}?\n{options_}\n", "{flag} {score}"),
    ]
    for seed, include_options, wrapper, batch_size in ((3, True, False, 4), (0, False, True, 64)):
        spec = types.SimpleNamespace(templates=templates)  # the render step reads only the templates
        reference = batched.per_example_train_preprocessors(spec, None, seed, include_options, wrapper)[2]
        old = reference(_mixed_records(11), features)
        new = batched.render_tokenize_train(templates, seed, include_options, wrapper, batch_size)(
            _mixed_records(11), features)
        assert old.element_spec == new.element_spec
        a, b = list(old.as_numpy_iterator()), list(new.as_numpy_iterator())
        assert len(a) == len(b) == 11
        for x, y in zip(a, b, strict=True):
            assert x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x), (x, y)
        assert len({x["inputs_pretokenized"] for x in a}) > 4  # several templates were drawn


def test_batched_rendering_rejects_list_fields():
    from flan_tasks import batched

    ds = _mixed_records(3).ragged_batch(2)
    with pytest.raises(ValueError, match="only reference scalar fields"):
        ds.map(lambda r: batched.render_batch("{options}", r))
