"""Label-order tests: the option a processor picks for each TFDS label id matches the meaning of
that id in the real TFDS builder (`tfds.builder(name).info.features[...].names`)."""

from __future__ import annotations

import functools

import pytest
import tensorflow as tf

tfds = pytest.importorskip("tensorflow_datasets")

from flan_tasks.flan import flan_specs  # noqa: E402
from flan_tasks.flan.mock_data import mock_records  # noqa: E402

# Fixed-option datasets: TFDS label name -> the option string that means it.
ENTAIL_3 = {"entailment": "yes", "neutral": "it is not possible to tell", "contradiction": "no"}
FIXED: dict[str, tuple[str, dict[str, str]]] = {
    "anli_r1": ("label", {"e": "Yes", "n": "It's impossible to say", "c": "No"}),
    "anli_r2": ("label", {"e": "Yes", "n": "It's impossible to say", "c": "No"}),
    "anli_r3": ("label", {"e": "Yes", "n": "It's impossible to say", "c": "No"}),
    "cb": ("label", {"entailment": "Yes", "contradiction": "No", "neutral": "It's impossible to say"}),
    "mnli_matched": ("label", ENTAIL_3),
    "mnli_mismatched": ("label", ENTAIL_3),
    "snli": ("label", ENTAIL_3),
    "qnli": ("label", {"entailment": "yes", "not_entailment": "no"}),
    "rte": ("label", {"entailment": "yes", "not_entailment": "no"}),
    "wnli": ("label", {"entailment": "yes", "not_entailment": "no"}),
    "multirc": ("label", {"True": "yes", "False": "no"}),
    "imdb": ("label", {"neg": "negative", "pos": "positive"}),
    "sst2": ("label", {"negative": "negative", "positive": "positive"}),
    "yelp": ("label", {"1": "negative", "2": "positive"}),
    "mrpc": ("label", {"equivalent": "yes", "not_equivalent": "no"}),
    "qqp": ("label", {"duplicate": "yes", "not_duplicate": "no"}),
    "paws": ("label", {"paraphrase": "yes", "different_meaning": "no"}),
    "wsc": ("label", {"True": "yes", "False": "no"}),
    "ag_news": ("label", {"World": "World", "Sports": "Sports", "Business": "Business", "Sci/Tech": "Science/Tech"}),
    "trec": ("label-coarse", {"DESC": "description", "ENTY": "entity", "ABBR": "abbreviation", "HUM": "human",
                              "NUM": "numeric", "LOC": "location"}),
    "cola": ("label", {"acceptable": "acceptable", "unacceptable": "unacceptable"}),
    "wic": ("label", {"True": "the same meaning", "False": "different meanings"}),
}

# Per-record choices: label field -> for TFDS label name, the record field (or list entry) it picks.
CHOICE: dict[str, tuple[str, dict[str, str]]] = {
    "openbookqa": ("answerKey", {k: f"question.choice_{k}" for k in "ABCD"}),
    "arc_easy": ("answerKey", {k: f"choices.text.{i}" for i, k in enumerate("ABCD")}),
    "arc_challenge": ("answerKey", {k: f"choices.text.{i}" for i, k in enumerate("ABCD")}),
    "copa": ("label", {"choice1": "choice1", "choice2": "choice2"}),
    "piqa": ("label", {"0": "sol1", "1": "sol2"}),
    "dpr": ("label", {"0": "candidates.0", "1": "candidates.1"}),
    "cosmos_qa": ("label", {str(i): f"answer{i}" for i in range(4)}),
}

# Integer labels without ClassLabel names: label value -> index into the record's choice list.
INT_LABELS = {"hellaswag": ("endings", {0: 0, 1: 1, 2: 2, 3: 3}), "story_cloze": ("endings", {1: 0, 2: 1})}

SPECS = {s.name: s for s in flan_specs()}


@functools.cache
def _info(tfds_name: str):
    return tfds.builder(tfds_name).info


def _get(record: dict, path: str):
    value = record
    for part in path.split("."):
        value = value[int(part)] if part.isdigit() else value[part]
    return value


def _tensors(record):
    if isinstance(record, dict):
        return {k: _tensors(v) for k, v in record.items()}
    return tf.constant(record)


def _answer(spec, record: dict) -> str:
    if spec.keep_fn is not None:
        assert bool(spec.keep_fn(_tensors(record))), f"{spec.name}: keep_fn dropped a labelled record"
    out = spec.processor(_tensors(record))
    return out["answer"].numpy().decode()


def test_every_classification_dataset_has_a_label_check():
    covered = set(FIXED) | set(CHOICE) | set(INT_LABELS) | {"stsb", "record", "sentiment140", "winogrande", "wsc273",
                                                             "bool_q"}
    missing = {s.name for s in SPECS.values() if s.is_classification} - covered
    assert not missing, f"no label-order check for {sorted(missing)}"


@pytest.mark.parametrize("name", sorted(FIXED))
def test_fixed_option_order_matches_tfds_label_names(name):
    spec = SPECS[name]
    field, meaning = FIXED[name]
    names = _info(spec.tfds_name).features[field].names
    assert set(names) == set(meaning), f"{name}: TFDS names {names}"
    record, _ = mock_records(spec.tfds_name, 1)
    record = record[0]
    for label_id, label_name in enumerate(names):
        record[field] = label_id
        assert _answer(spec, record) == meaning[label_name], (name, label_id, label_name)


@pytest.mark.parametrize("name", sorted(CHOICE))
def test_choice_label_picks_the_named_choice(name):
    spec = SPECS[name]
    field, picks = CHOICE[name]
    names = _info(spec.tfds_name).features[field].names
    record, _ = mock_records(spec.tfds_name, 1)
    record = record[0]
    for label_id, label_name in enumerate(names):
        if label_name not in picks:  # ARC's 5th key 'E' is dropped by keep_fn
            continue
        record[field] = label_id
        assert _answer(spec, record) == _get(record, picks[label_name]), (name, label_name)


@pytest.mark.parametrize("name", sorted(INT_LABELS))
def test_integer_label_picks_the_right_ending(name):
    spec = SPECS[name]
    seq_field, index_of = INT_LABELS[name]
    record, _ = mock_records(spec.tfds_name, 1)
    record = record[0]
    record[seq_field] = [f"ending number {i}" for i in range(len(index_of))]
    for value, index in index_of.items():
        record["label"] = value
        assert _answer(spec, record) == f"ending number {index}"


def test_bool_q_false_true_map_to_no_yes():
    record = {"title": "t", "passage": "p", "question": "is it", "answer": False}
    assert _answer(SPECS["bool_q"], record) == "no"
    assert _answer(SPECS["bool_q"], {**record, "answer": True}) == "yes"


def test_sentiment140_polarity_and_neutral_drop():
    spec = SPECS["sentiment140"]
    assert _info(spec.tfds_name).features["polarity"].dtype == tf.int32
    base = {"text": "what a day", "polarity": 0, "date": "", "query": "", "user": ""}
    assert _answer(spec, base) == "negative"
    assert _answer(spec, {**base, "polarity": 4}) == "positive"
    assert not bool(spec.keep_fn(_tensors({**base, "polarity": 2}))), "neutral tweets must be dropped"


def test_stsb_scores_round_to_whole_options():
    spec = SPECS["stsb"]
    cases = {0.0: "0", 0.4: "0", 2.6: "3", 3.5: "4", 4.8: "5", 5.0: "5"}
    for score, option in cases.items():
        out = spec.processor(_tensors({"sentence1": "a", "sentence2": "b", "label": score}))
        assert out["answer"].numpy().decode() == option
        assert [o.decode() for o in out["options"].numpy()] == ["0", "1", "2", "3", "4", "5"]


def test_winogrande_label_names_pick_option1_option2():
    spec = SPECS["winogrande"]
    assert list(_info(spec.tfds_name).features["label"].names) == ["1", "2"]
    record = {"sentence": "Ann gave Beth a gift because _ was kind.", "option1": "Ann", "option2": "Beth", "label": 0}
    assert _answer(spec, record) == "Ann was kind."
    assert _answer(spec, {**record, "label": 1}) == "Beth was kind."


def test_record_label_is_a_gold_entity():
    spec = SPECS["record"]
    record = {"passage": "Paris and Rome met.", "query": "@placeholder hosted the talks.",
              "entities": ["Paris", "Rome"], "answers": ["Rome"]}
    out = spec.processor(_tensors(record))
    assert int(out["label"]) == 1 and out["answer"].numpy().decode() == "Rome"
