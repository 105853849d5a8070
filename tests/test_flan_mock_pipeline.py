"""Build flan tasks end to end on offline mock TFDS data (records generated from the builders' real
feature specs): seqio.get_dataset with packing, and the OPTIONS / target invariants."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import seqio

from flan_tasks import graph_build
from flan_tasks.flan import flan_specs, register_flan_collection
from flan_tasks.flan.mock_data import mock_flan_tfds
from flan_tasks.options import options_block

LENGTHS = {"inputs": 1024, "targets": 256}
SPECS = {s.name: s for s in flan_specs()}
# One dataset per cluster for the fast test.
FAST = ("rte", "bool_q", "arc_easy", "copa", "sentiment140", "stsb", "winogrande", "record", "wmt16_de_en",
        "ag_news", "dart", "wic")


@pytest.fixture(scope="module")
def registered(spm_path):
    vocab = seqio.SentencePieceVocabulary(str(spm_path))
    return set(register_flan_collection(vocabulary=vocab))


def _decode(x) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


def _check_train_rows(name: str, rows: list[dict]) -> None:
    spec = SPECS[name]
    assert rows, f"{name}: no training rows"
    for row in rows:
        inputs, target = _decode(row["inputs_pretokenized"]), _decode(row["targets_pretokenized"])
        assert inputs.strip() and target.strip(), name
        assert row["inputs"][-1] == 1 and row["targets"][-1] == 1, "EOS appended"
        if spec.is_classification and "\n\nOPTIONS:\n- " in inputs and not inputs.rstrip().endswith(":"):
            block = inputs.rsplit("\n\nOPTIONS:\n", 1)[1]
            options = [line[2:] for line in block.split("\n")]
            assert target in options, (name, target, options)


def _check_rank_rows(name: str, rows: list[dict]) -> None:
    assert rows, f"{name}: no rank rows"
    by_example: dict[int, list[dict]] = collections.defaultdict(list)
    for row in rows:
        by_example[int(row["idx"][0])].append(row)
    for example_rows in by_example.values():
        example_rows.sort(key=lambda r: int(r["idx"][1]))
        options = [_decode(r["targets_pretokenized"]) for r in example_rows]
        assert [int(r["idx"][1]) for r in example_rows] == list(range(len(options)))
        assert all(int(r["num_options"]) == len(options) for r in example_rows)
        prompts = {_decode(r["inputs_pretokenized"]) for r in example_rows}
        assert len(prompts) == 1
        assert prompts.pop().endswith("\n\n" + options_block(options)), name
        assert sum(bool(r["is_correct"]) for r in example_rows) >= 1, name


def _task_rows(name: str, split: str, n: int) -> list[dict]:
    task = seqio.get_mixture_or_task(name)
    # Built as the trainer and evals build a task's rows: without AutoGraph (flan_tasks/graph_build.py).
    with graph_build.autograph_off():
        ds = task.get_dataset(sequence_length=LENGTHS, split=split, shuffle=False)
    return list(ds.take(n).as_numpy_iterator())


def _packed(name: str, n: int = 2) -> list[dict]:
    ds = seqio.get_dataset(
        name,
        task_feature_lengths=LENGTHS,
        dataset_split="train",
        shuffle=False,
        feature_converter=seqio.EncDecFeatureConverter(pack=True),
    )
    batches = list(ds.take(n).as_numpy_iterator())
    for b in batches:
        assert b["encoder_input_tokens"].shape == (1024,) and b["decoder_target_tokens"].shape == (256,)
        assert b["encoder_segment_ids"].max() >= 1 and np.sum(b["decoder_loss_weights"]) > 0
    return batches


def _check_dataset(name: str, registered: set[str], packed: bool = True) -> None:
    train = f"flan_{name}_train"
    assert train in registered
    _check_train_rows(name, _task_rows(train, "train", 6))
    if packed:
        assert _packed(train)
    _check_eval_task(name)


def _check_eval_task(name: str) -> None:
    """The first scored template's test task: rank rows that regroup, or answers to generate."""
    spec = SPECS[name]
    k = spec.scored_template_indices()[0]
    kind = "rank" if spec.is_classification else "gen"
    eval_name = f"flan_{name}_t{k}_test_{kind}"
    rows = _task_rows(eval_name, "test", 24)
    if spec.is_classification:
        _check_rank_rows(name, rows)
    else:
        assert rows and all(len(r["answers"]) >= 1 for r in rows), name


@pytest.mark.slow
def test_one_dataset_per_cluster_end_to_end(registered):
    assert {SPECS[n].cluster for n in FAST} == {s.cluster for s in SPECS.values()}
    with mock_flan_tfds(num_examples=8):
        for name in FAST:
            _check_dataset(name, registered, packed=name in ("rte", "wmt16_de_en"))


def test_sentiment140_neutral_test_items_are_dropped(registered):
    with mock_flan_tfds(num_examples=12):
        rows = _task_rows("flan_sentiment140_t0_test_rank", "test", 100)
    # 12 mock tweets, polarity drawn from {0, 2, 4}: neutral ones must not appear as examples.
    from flan_tasks.flan.mock_data import mock_records

    records, _ = mock_records(SPECS["sentiment140"].tfds_name, 12)
    polar = sum(r["polarity"] in (0, 4) for r in records)
    assert 0 < polar < 12
    assert len(rows) == 2 * polar


@pytest.mark.slow
def test_every_training_task_and_the_all_train_mixture(registered):
    read = set()
    with mock_flan_tfds(num_examples=4):
        for name, spec in SPECS.items():
            if not spec.splits.train:
                continue  # eval-only (WSC273)
            _check_train_rows(name, _task_rows(f"flan_{name}_train", "train", 4))
            read.add(f"flan_{name}_train")
        for name in list(SPECS)[::7]:  # their training rows were read just above
            if SPECS[name].splits.train:
                _check_eval_task(name)
    # The all-train mixture is exactly the tasks just read, each with a positive rate. Packing it
    # would build those 75 pipelines again for what seqio's sample_from_datasets does with any
    # mixture: flan tasks are packed in test_one_dataset_per_cluster_end_to_end, and mixtures are
    # mixed and packed by both loaders in tests/test_tasks_registry.py and test_index_mixture.py.
    mixture = seqio.get_mixture_or_task("flan_all_train")
    assert {t.name for t in mixture.tasks} == read
    assert all(mixture.get_rate(t) > 0 for t in mixture.tasks)
