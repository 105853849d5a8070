"""The embedded suite's datasets: templates, determinism, sizes, prompt shape and length."""

import collections

import pytest
import tensorflow as tf

from flan_tasks import EMBEDDED_CLUSTERS, options_block, validate_spec
from flan_tasks.embedded import embedded_specs
from flan_tasks.rendering import render_tf

SPECS = embedded_specs()


def _processed(spec, record):
    return dict(spec.processor({k: tf.convert_to_tensor(v) for k, v in record.items()}))


def test_suite_shape():
    by_cluster = collections.Counter(s.cluster for s in SPECS)
    assert len(SPECS) >= 10 and len(by_cluster) >= 7
    assert set(by_cluster) <= set(EMBEDDED_CLUSTERS)
    assert sum(t.turned_around for s in SPECS for t in s.templates) >= 5
    assert any(s.is_classification for s in SPECS) and any(not s.is_classification for s in SPECS)
    assert len({s.num_train_examples for s in SPECS}) >= 5  # sizes vary, so mixing rates differ


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_templates_validate(spec):
    validate_spec(spec)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_generation_is_deterministic_and_sized(spec):
    a = spec.generator("validation", 0)
    assert a == spec.generator("validation", 0)
    assert a != spec.generator("validation", 1)
    assert len(a) == 100 and len(spec.generator("test", 0)) == 200
    assert len(spec.generator("train", 0)) == spec.num_train_examples
    assert 2000 <= spec.num_train_examples <= 5000
    with pytest.raises(ValueError, match="train/validation/test"):
        spec.generator("dev", 0)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_rendered_prompts_are_short_and_well_formed(spec):
    records = spec.generator("test", 0)[:25]
    lengths = []
    for record in records:
        ex = _processed(spec, record)
        answer = ex["answer"].numpy().decode()
        for k, t in enumerate(spec.templates):
            inputs = render_tf(t.inputs, ex).numpy().decode()
            targets = render_tf(t.targets, ex).numpy().decode()
            lengths.append(len(inputs.encode()))
            # Turned-around templates write the source text, so they may be a bit longer.
            assert len(targets.encode()) <= (80 if t.turned_around else 40), (spec.name, k, targets)
            if spec.is_classification and not t.turned_around:
                options = [o.decode() for o in ex["options"].numpy()]
                assert inputs.endswith("\n\n" + options_block(options)), (spec.name, k)
                assert targets == answer and targets in options
    lengths.sort()
    assert lengths[int(0.9 * len(lengths))] < 200, spec.name  # mostly under ~200 bytes


def test_labels_are_balanced_enough():
    for spec in SPECS:
        if not spec.is_classification:
            continue
        answers = collections.Counter(
            _processed(spec, r)["answer"].numpy() for r in spec.generator("validation", 0)
        )
        assert len(answers) >= 2 and max(answers.values()) <= 80, (spec.name, answers)


def test_eval_splits_mostly_avoid_training_examples():
    spec = next(s for s in SPECS if s.name == "addition")
    train = {tuple(sorted(r.items())) for r in spec.generator("train", 0)}
    test = [tuple(sorted(r.items())) for r in spec.generator("test", 0)]
    assert sum(t in train for t in test) < 20
