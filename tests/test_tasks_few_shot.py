"""Few-shot variants of the eval tasks: exemplars from train, budget, determinism, row layout."""

import collections

import numpy as np
import pytest
import seqio
import tensorflow as tf

import flan_tasks
from flan_tasks import few_shot, registry
from flan_tasks.clustering import ClusterRules
from flan_tasks.embedded import embedded_specs
from flan_tasks.rendering import render_tf

SUITE = "embedded"
RANK = ("fact_nli", 0)  # (dataset, template index) of a rank task
GEN = ("addition", 2)  # ... and of a generation task
N_ROWS = 24  # rows read per task: enough for several examples, cheap on 2 cores


@pytest.fixture(scope="module")
def names():
    flan_tasks.register_embedded_suite()
    return flan_tasks.register_few_shot(SUITE, num_shots=16)


def _spec(dataset):
    return {s.name: s for s in embedded_specs()}[dataset]


def _rows(name, n=N_ROWS):
    ds = seqio.get_mixture_or_task(name).get_dataset(sequence_length=None, split="test", shuffle=False)
    return list(ds.take(n).as_numpy_iterator())


def _zero_shot_name(dataset, k, kind):
    return registry.eval_task_name(SUITE, dataset, k, "test", kind)


def _few_shot_name(dataset, k, kind, n):
    return flan_tasks.few_shot_task_name(SUITE, dataset, k, "test", kind, n)


def _rendered_split(dataset, k, split, limit=few_shot.DEFAULT_POOL_SIZE):
    """Exemplar strings of a split, rendered here straight from the generator's records."""
    spec = _spec(dataset)
    template = spec.templates[k]
    records = spec.generator(split, 0)[:limit]
    columns = {key: np.asarray([r[key] for r in records]) for key in records[0]}

    def render(raw):
        ex = spec.processor(raw)
        return tf.strings.join([render_tf(template.inputs, ex), "\n", render_tf(template.targets, ex)])

    return {t.decode() for t in tf.data.Dataset.from_tensor_slices(columns).map(render).as_numpy_iterator()}


def _exemplars(inputs: str, prompt: str, pool: set[str]) -> list[str]:
    """Split a few-shot input into its exemplars (each must be a pool string) before `prompt`."""
    assert inputs.endswith(prompt)
    prefix, found = inputs[: len(inputs) - len(prompt)], []
    while prefix:
        matches = [s for s in pool if prefix.startswith(s + "\n\n")]
        assert matches, f"prefix does not start with a training exemplar: {prefix[:200]!r}"
        best = max(matches, key=len)
        found.append(best)
        prefix = prefix[len(best) + 2 :]
    return found


def test_names_info_plan_and_mixtures(names):
    assert flan_tasks.register_few_shot(SUITE, num_shots=16) == names  # idempotent
    assert _few_shot_name(*RANK, "rank", 16) in names
    assert _few_shot_name(*GEN, "generation", 16) in names
    assert "embedded_fact_nli_t9_test_rank_16shot" not in names  # turned around: never scored
    info = flan_tasks.task_info(_few_shot_name(*RANK, "rank", 16))
    assert (info.num_shots, info.kind, info.split, info.template_index) == (16, "rank", "test", 0)
    assert flan_tasks.task_info(_zero_shot_name(*RANK, "rank")).num_shots == 0
    for cluster in flan_tasks.clusters(SUITE):
        mixture = flan_tasks.few_shot_eval_mixture_name(SUITE, cluster, 16)
        assert mixture in seqio.MixtureRegistry.names()
        plan = flan_tasks.eval_plan(SUITE, cluster, few_shot=16)
        zero = flan_tasks.eval_plan(SUITE, cluster)
        assert [(e.dataset, e.template_index, e.kind) for e in plan] == [
            (e.dataset, e.template_index, e.kind) for e in zero
        ]
        for entry in plan:
            assert entry.validation_task.endswith("_val_" + entry.reported_task.split("_test_")[1])
            assert entry.reported_task in names and entry.validation_task in names
        members = {t.name for t in seqio.get_mixture_or_task(mixture).tasks}
        assert members == {e.reported_task for e in plan}
    assert 16 in flan_tasks.registered_few_shot(SUITE)
    with pytest.raises(ValueError, match="register_few_shot"):
        flan_tasks.eval_plan(SUITE, "nli", few_shot=3)


@pytest.mark.parametrize("dataset,k,kind", [(*RANK, "rank"), (*GEN, "generation")])
def test_prompts_end_with_zero_shot_and_exemplars_come_from_train(names, dataset, k, kind):
    few = _rows(_few_shot_name(dataset, k, kind, 16))
    zero = _rows(_zero_shot_name(dataset, k, kind))
    train = _rendered_split(dataset, k, "train")
    test = _rendered_split(dataset, k, "test")
    counts = []
    for f, z in zip(few, zero, strict=True):
        assert f["targets_pretokenized"] == z["targets_pretokenized"]
        for key in ("idx", "is_correct", "num_options", "answers"):
            if key in z:
                np.testing.assert_array_equal(f[key], z[key])
        exemplars = _exemplars(f["inputs_pretokenized"].decode(), z["inputs_pretokenized"].decode(), train)
        assert not set(exemplars) - train
        counts.append(len(exemplars))
    assert min(counts) >= 1 and max(counts) <= 16
    assert train - test, "the train and test splits must differ for this check to mean anything"


def test_token_budget_holds_and_pruning_drops_oldest_first(names):
    vocab = seqio.ByteVocabulary()
    train = _rendered_split(*RANK, "train")
    zero = [r["inputs_pretokenized"].decode() for r in _rows(_zero_shot_name(*RANK, "rank"))]

    def check(budget):
        rows = _rows(_few_shot_name(*RANK, "rank", 8))
        counts = []
        for row, prompt in zip(rows, zero, strict=True):
            text = row["inputs_pretokenized"].decode()
            assert len(vocab.encode(text)) + 1 == len(row["inputs"])  # tokens + EOS
            assert len(row["inputs"]) <= budget or text == prompt  # the prompt alone is never cut
            counts.append(len(_exemplars(text, prompt, train)))
        return rows, counts

    flan_tasks.register_few_shot(SUITE, num_shots=8, token_budget=100_000)
    wide_rows, wide = check(100_000)
    assert wide == [8] * len(wide)
    flan_tasks.register_few_shot(SUITE, num_shots=8, token_budget=500)
    narrow_rows, narrow = check(500)
    assert 0 < max(narrow) < 8
    for w, n, c in zip(wide_rows, narrow_rows, narrow, strict=True):
        # Pruning keeps the newest exemplars: the narrow input is a suffix of the wide one.
        assert w["inputs_pretokenized"].endswith(n["inputs_pretokenized"]), c
    flan_tasks.register_few_shot(SUITE, num_shots=8, token_budget=5)  # below any prompt alone
    tiny_rows, tiny = check(5)
    assert tiny == [0] * len(tiny)
    assert [r["inputs_pretokenized"].decode() for r in tiny_rows] == zero
    # The default registration (16 shots, 960 tokens) prunes on this byte vocabulary.
    default = _rows(_few_shot_name(*RANK, "rank", 16))
    assert all(len(r["inputs"]) <= 960 for r in default)


def test_draw_is_deterministic_per_seed(names):
    name = _few_shot_name(*GEN, "generation", 4)

    def inputs():
        return [r["inputs_pretokenized"] for r in _rows(name)]

    flan_tasks.register_few_shot(SUITE, num_shots=4, seed=0)
    first = inputs()
    assert inputs() == first
    flan_tasks.register_few_shot(SUITE, num_shots=4, seed=1)
    other = inputs()
    assert other != first
    flan_tasks.register_few_shot(SUITE, num_shots=4, seed=0)
    assert inputs() == first
    # Different records get different exemplar sets (the draw is per record, not per task).
    zero = [r["inputs_pretokenized"].decode() for r in _rows(_zero_shot_name(*GEN, "generation"))]
    prefixes = {f.decode()[: -len(z)] for f, z in zip(first, zero, strict=True)}
    assert len(prefixes) > 1


def test_zero_shots_equals_zero_shot(names):
    flan_tasks.register_few_shot(SUITE, num_shots=0)
    for dataset, k, kind in ((*RANK, "rank"), (*GEN, "generation")):
        few = _rows(_few_shot_name(dataset, k, kind, 0))
        zero = _rows(_zero_shot_name(dataset, k, kind))
        assert len(few) == len(zero)
        for f, z in zip(few, zero, strict=True):
            assert f.keys() == z.keys()
            for key in z:
                np.testing.assert_array_equal(f[key], z[key])


def test_rank_rows_regroup_as_zero_shot(names):
    def groups(name):
        by_example = collections.defaultdict(list)
        for row in _rows(name, n=60):
            by_example[int(row["idx"][0])].append(row)
        return by_example

    few, zero = groups(_few_shot_name(*RANK, "rank", 16)), groups(_zero_shot_name(*RANK, "rank"))
    assert few.keys() == zero.keys()
    for example, rows in few.items():
        if len(rows) < int(rows[0]["num_options"]):
            continue  # the last example may be cut by the row limit
        assert [int(r["idx"][1]) for r in rows] == list(range(int(rows[0]["num_options"])))
        assert sum(bool(r["is_correct"]) for r in rows) == 1
        assert len({r["inputs_pretokenized"] for r in rows}) == 1  # one prompt per example
        assert [r["targets_pretokenized"] for r in rows] == [r["targets_pretokenized"] for r in zero[example]]


def _check_encdec_batch(name):
    ds = seqio.get_dataset(
        name, {"inputs": 1024, "targets": 32}, dataset_split="test", shuffle=False, num_epochs=1,
        feature_converter=seqio.EncDecFeatureConverter(pack=False),
    )
    batch = next(ds.batch(4).as_numpy_iterator())
    assert batch["encoder_input_tokens"].shape == (4, 1024)
    real = (batch["encoder_input_tokens"] > 0).sum(axis=1)
    assert (real <= 960).all() and (real > 100).all()  # within budget, and longer than a bare prompt


def test_few_shot_task_builds_through_seqio(names):
    _check_encdec_batch(_few_shot_name(*RANK, "rank", 16))


@pytest.mark.slow
def test_few_shot_mixture_builds_through_seqio(names):
    _check_encdec_batch(flan_tasks.few_shot_eval_mixture_name(SUITE, "nli", 16))


def test_variants_follow_the_suite_and_spm_budget(spm_path):
    """A small private suite with the T5 SentencePiece vocabulary: the budget counts its tokens,
    and registering the suite again with other settings removes its few-shot tasks."""
    suite = "fewshotprobe"
    specs = tuple(s for s in embedded_specs() if s.name == RANK[0])
    rules = ClusterRules.from_pairs(("nli",))
    vocab = seqio.SentencePieceVocabulary(str(spm_path))
    flan_tasks.register_suite(suite, specs, vocabulary=vocab, cluster_rules=rules)
    try:
        names = flan_tasks.register_few_shot(suite, num_shots=16, token_budget=300)
        name = flan_tasks.few_shot_task_name(suite, RANK[0], RANK[1], "test", "rank", 16)
        rows = list(
            seqio.get_mixture_or_task(name)
            .get_dataset(sequence_length=None, split="test", shuffle=False)
            .take(12)
            .as_numpy_iterator()
        )
        for row in rows:
            text = row["inputs_pretokenized"].decode()
            assert len(vocab.encode(text)) + 1 == len(row["inputs"]) <= 300
            assert text.count("OPTIONS:") > 1  # some exemplars were kept
        flan_tasks.register_suite(suite, specs, vocabulary=vocab, cluster_rules=rules, seed=1)
        assert not set(names) & (set(seqio.TaskRegistry.names()) | set(seqio.MixtureRegistry.names()))
        assert flan_tasks.registered_few_shot(suite) == ()
    finally:
        registry._unregister(suite)
