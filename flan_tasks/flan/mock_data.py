"""Offline mock TFDS data for the flan catalog (tests and benchmarks; never used in training).

Records are generated from each builder's real feature spec (tfds.builder(name).info.features,
which needs no download), then adjusted so that they are usable: label ids in range, the
right number of choices, ReCoRD answers among the entities, Sentiment140 polarities 0/2/4, and
so on. `mock_flan_tfds()` patches TFDS so that seqio's TfdsDataSource reads these records for
any split slice of any catalog dataset.

With ``realistic_lengths=True`` (benchmarks) the text fields the processors read get word counts
drawn from the real datasets' length distributions (``FIELD_WORDS``, means from each dataset's
paper), so tokenisation and packing see realistic sequence lengths.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from tensorflow_datasets.core import features as F

_WORDS = (
    "the river city council voted after a long storm while students read about ancient maps and "
    "engineers quietly repaired the old bridge before sunrise"
).split()
# A wider vocabulary for realistic_lengths: common and rarer words, so SentencePiece splits some
# of them into several pieces, as in real text (~1.3 T5 tokens per English word).
_WIDE_WORDS = _WORDS + (
    "government announced yesterday that thousands of residents would receive compensation for "
    "damage caused by unprecedented flooding across northern provinces where infrastructure "
    "remains vulnerable researchers however argue the measures are insufficient because climate "
    "projections suggest heavier rainfall in coming decades meanwhile local businesses reported "
    "significant losses and several schools closed temporarily officials said negotiations with "
    "insurers continue although no agreement has been reached spokesperson emphasised patience "
    "during reconstruction which could take years she was not happy with his decision to leave "
    "early but they agreed to meet again on Tuesday at nine o'clock in the morning"
).split()
BASE_SPLITS = ("train", "validation", "test", "dev", "validation_matched", "validation_mismatched", "train_xl")
_SEQ_LEN = 4

# (dataset, raw TFDS feature path) -> (mean, std) words per example. Means are the averages
# reported in each dataset's paper (tokens ~ words), rounded: SNLI 14/8 (Bowman et al. 2015,
# table 1), MNLI premise 22 (Williams et al. 2018), BoolQ passage 108 / question 9 (Clark et al.
# 2019), MultiRC paragraph 263 (Khashabi et al. 2018), SQuAD paragraph ~117 / question 10
# (Rajpurkar et al. 2016), CosmosQA context 70 (Huang et al. 2019), ReCoRD passage 170 (Zhang et al.
# 2018), CoQA story 271 (Reddy et al. 2019), QuAC section ~400 (Choi et al. 2018), PIQA goal 8 /
# solution 21 (Bisk et al. 2020), IMDB review ~230 (Maas et al. 2011), Yelp ~133 (Zhang et al. 2015),
# CNN/DM 781/56 (See et al. 2017), XSum 431/23 (Narayan et al. 2018), Gigaword 31/8 (Rush et al.
# 2015), Multi-News 2103/263 (Fabbri et al. 2019), Newsroom 659/27 (Grusky et al. 2018), AESLC 75/4
# (Zhang & Tetreault 2019), SAMSum 94/20 (Gliwa et al. 2019), WMT/ParaCrawl sentences ~25. Where a
# paper gives no spread the std is taken as half the mean (long-tailed: drawn from a gamma).
# Fields not listed (ids, urls, unused evidence documents) keep the short 4-24 word default.
_NLI = {"premise": (22, 11), "hypothesis": (11, 5)}
_PAIR = {"sentence1": (21, 9), "sentence2": (21, 9)}
_TRANSLATION = {lang: (25, 12) for lang in ("en", "es", "fr", "de", "tr", "cs", "fi", "ro", "ru", "da")}
FIELD_WORDS: dict[str, dict[str, tuple[float, float]]] = {
    "anli": {"context": (54, 20), "hypothesis": (12, 5)},
    "super_glue/cb": {"premise": (60, 30), "hypothesis": (8, 4)},
    "glue/mnli": _NLI, "super_glue/rte": {"premise": (43, 25), "hypothesis": (9, 4)},
    "snli": {"premise": (14, 6), "hypothesis": (8, 3)},
    "glue/qnli": {"question": (10, 4), "sentence": (28, 13)},
    "glue/wnli": {"sentence1": (21, 10), "sentence2": (11, 5)},
    "bool_q": {"question": (9, 2), "passage": (108, 50), "title": (3, 2)},
    "drop": {"passage": (210, 90), "question": (11, 4), "answer": (2, 1)},
    "super_glue/multirc": {"paragraph": (263, 100), "question": (11, 4), "answer": (5, 4)},
    "openbookqa": {"question/stem": (11, 5), "fact1": (9, 3), **{f"question/choice_{c}": (3, 2) for c in "ABCD"}},
    "squad": {"context": (117, 50), "question": (10, 4), "answers/[]/text": (3, 3)},
    "ai2_arc": {"question": (20, 10), "choices/[]/text": (4, 3)},
    "natural_questions_open": {"question": (9, 2), "answer/[]": (2, 2)},
    "trivia_qa/rc": {"question": (14, 6), "answer/value": (2, 1), "answer/aliases/[]": (2, 1)},
    "super_glue/copa": {"premise": (8, 3), "choice1": (7, 3), "choice2": (7, 3)},
    "hellaswag": {"context": (40, 20), "endings/[]": (22, 10), "activity_label": (2, 1)},
    "piqa": {"goal": (8, 4), "sol1": (21, 15), "sol2": (21, 15)},
    "story_cloze": {"context": (36, 8), "endings/[]": (9, 3)},
    "imdb_reviews": {"text": (230, 170)}, "yelp_polarity_reviews": {"text": (133, 120)},
    "sentiment140": {"text": (13, 7)}, "glue/sst2": {"sentence": (10, 8)},
    "glue/mrpc": {"sentence1": (22, 9), "sentence2": (22, 9)}, "paws_wiki": _PAIR,
    "glue/qqp": {"question1": (11, 6), "question2": (11, 6)},
    "glue/stsb": {"sentence1": (10, 6), "sentence2": (10, 6)},
    "definite_pronoun_resolution": {"sentence": (20, 7)}, "winogrande": {"sentence": (20, 5)},
    "super_glue/wsc": {"text": (20, 8)},
    "cosmos_qa": {"context": (70, 25), "question": (10, 3), **{f"answer{i}": (8, 4) for i in range(4)}},
    "super_glue/record": {"passage": (170, 60), "query": (22, 8)},
    "para_crawl": _TRANSLATION, "wmt14_translate": _TRANSLATION, "wmt16_translate": _TRANSLATION,
    "aeslc": {"email_body": (75, 60), "subject_line": (4, 2)},
    "cnn_dailymail": {"article": (781, 400), "highlights": (56, 25)},
    "gigaword": {"document": (31, 10), "summary": (8, 3)},
    "multi_news": {"document": (2103, 1500), "summary": (263, 80)},
    "newsroom": {"text": (659, 500), "summary": (27, 15), "title": (9, 3)},
    "opinion_abstracts/rotten_tomatoes": {"_critic_consensus": (22, 8), "_critics/[]/value": (24, 10)},
    "opinion_abstracts/idebate": {"_claim": (10, 4), "_argument_sentences/[]/value": (20, 10)},
    "samsum": {"dialogue": (94, 70), "summary": (20, 11)},
    "xsum": {"document": (431, 260), "summary": (23, 6)},
    "gem/wiki_lingua_english_en": {"source": (390, 250), "target": (40, 20)},
    "ag_news_subset": {"title": (7, 3), "description": (31, 12)},
    "gem/common_gen": {"concepts/[]": (1, 0), "target": (11, 4)},
    "gem/dart": {"tripleset/[]": (6, 3), "target": (21, 10)},
    "gem/e2e_nlg": {"meaning_representation": (20, 6), "target": (22, 10)},
    "gem/web_nlg_en": {"input/[]": (8, 3), "target": (23, 12)},
    "coqa": {"story": (271, 90), "questions/[]": (6, 3), "answers/[]/input_text": (3, 2)},
    "quac": {"context": (400, 150), "background": (60, 30), "question": (7, 3), "answers/[]/text": (15, 8)},
    "trec": {"text": (10, 4)}, "glue/cola": {"sentence": (9, 5)},
    "super_glue/wic": {"sentence1": (17, 7), "sentence2": (17, 7)},
}


def field_words(name: str, path: str) -> tuple[float, float] | None:
    """(mean, std) words of a raw feature of dataset `name` ("glue/mnli"), if tabulated."""
    table = FIELD_WORDS.get(name) or FIELD_WORDS.get(name.split("/")[0]) or {}
    return table.get(path)


def _text(rng: np.random.Generator, n_min: int = 4, n_max: int = 24, words: tuple[float, float] | None = None) -> str:
    if words is None:
        n = int(rng.integers(n_min, n_max))
    else:
        mean, std = words
        # Gamma with this mean and std: positive and long-tailed, like real document lengths.
        n = max(1, round(rng.gamma((mean / std) ** 2, std**2 / mean))) if std else max(1, round(mean))
    return " ".join(rng.choice(_WORDS if words is None else _WIDE_WORDS, size=n)).capitalize() + "."


def _value(feature, rng: np.random.Generator, lengths=None, path: str = ""):
    """A random value of `feature`; `lengths(path)` gives (mean, std) words of string fields."""
    if isinstance(feature, F.FeaturesDict):
        return {k: _value(v, rng, lengths, f"{path}/{k}".lstrip("/")) for k, v in feature.items()}
    if isinstance(feature, F.Sequence):
        items = [_value(feature.feature, rng, lengths, f"{path}/[]") for _ in range(_SEQ_LEN)]
        if isinstance(feature.feature, F.FeaturesDict):
            return {k: [it[k] for it in items] for k in items[0]}
        return items
    if isinstance(feature, F.ClassLabel):
        return int(rng.integers(feature.num_classes))
    dtype = tf.as_dtype(feature.dtype)
    if dtype == tf.string:
        return _text(rng, words=lengths(path) if lengths else None)
    if dtype.is_bool:
        return bool(rng.integers(2))
    if dtype.is_floating:
        return float(rng.uniform(0, 5))
    return int(rng.integers(2))


def _fix(name: str, ex: dict, rng: np.random.Generator) -> dict:
    """Make a random record usable for the dataset `name` (the TFDS name without version)."""
    base = name.split("/")[0]
    if base == "ai2_arc":
        ex["answerKey"] = int(rng.integers(4))
    elif base in ("hellaswag",):
        ex["label"] = int(rng.integers(_SEQ_LEN))
    elif base == "story_cloze":
        ex["endings"] = ex["endings"][:2]
        ex["label"] = int(rng.integers(1, 3))
    elif base == "definite_pronoun_resolution":
        ex["candidates"] = ex["candidates"][:2]
    elif name == "super_glue/record":
        ex["answers"] = [ex["entities"][int(rng.integers(_SEQ_LEN))]]
    elif base == "sentiment140":
        ex["polarity"] = int(rng.choice([0, 2, 4]))
    elif base == "snli":
        ex["label"] = int(rng.integers(-1, 3))
    elif name == "super_glue/copa":
        ex["question"] = str(rng.choice(["cause", "effect"]))
    elif base == "winogrande":
        words = ex["sentence"].split()
        words[len(words) // 2] = "_"
        ex["sentence"] = " ".join(words)
    elif base == "wsc273":
        ex["pronoun_text"] = "they"
        ex["text"] = "The council refused the marchers a permit because they feared violence."
        ex["pronoun_start"] = ex["text"].index(" they ") + 1
        ex["pronoun_end"] = ex["pronoun_start"] + len("they")
        ex["label"] = int(rng.integers(2))
    elif base == "glue" and name.endswith("stsb"):
        ex["label"] = float(rng.uniform(0, 5))
    return ex


def mock_records(
    tfds_name: str, n: int, seed: int = 0, realistic_lengths: bool = False
) -> tuple[list[dict], dict]:
    """n usable records for `tfds_name` ("name/config:version"), and the builder's tensor spec."""
    builder = tfds.builder(tfds_name)
    features = builder.info.features
    name = tfds_name.split(":")[0]
    rng = np.random.default_rng(seed)
    lengths = (lambda path: field_words(name, path)) if realistic_lengths else None
    records = [_fix(name, _value(features, rng, lengths), rng) for _ in range(n)]
    return records, features.get_tensor_spec()


def _columns(records: list[dict], spec) -> dict | None:
    """The records as one array per feature (for from_tensor_slices), or None if ragged."""

    def column(sub_spec, values):
        if isinstance(sub_spec, dict):
            return {k: column(v, [x[k] for x in values]) for k, v in sub_spec.items()}
        array = np.array(values, dtype=object if sub_spec.dtype == tf.string else None)
        if array.dtype == object and sub_spec.dtype != tf.string or array.shape[1:] != tuple(
                d if d is not None else array.shape[1 + i] for i, d in enumerate(sub_spec.shape)):
            raise ValueError("ragged")
        return tf.constant(array.tolist() if array.dtype == object else array, dtype=sub_spec.dtype)

    try:
        return column(spec, records)
    except (ValueError, TypeError, IndexError):
        return None


def _as_dataset(records: list[dict], spec) -> tf.data.Dataset:
    # A tensor-backed source where the records allow it: no python (GIL) in the input pipeline,
    # like TFDS's own tfrecord readers, and tf.data can checkpoint it.
    columns = _columns(records, spec)
    if columns is not None:
        return tf.data.Dataset.from_tensor_slices(columns)
    return tf.data.Dataset.from_generator(lambda: iter(records), output_signature=spec)


@contextlib.contextmanager
def mock_flan_tfds(num_examples: int = 8, seed: int = 0, realistic_lengths: bool = False) -> Iterator[None]:
    """Patch TFDS so every catalog dataset yields `num_examples` mock records for any split.

    realistic_lengths: text fields follow FIELD_WORDS (benchmarks) instead of 4-24 words (tests).
    """
    cache: dict[str, tuple[list[dict], dict]] = {}

    def as_dataset_fn(builder, *args, **kwargs):
        del args, kwargs
        key = f"{builder.info.full_name}"
        if key not in cache:
            name = builder.info.full_name.rsplit("/", 1)[0]
            cache[key] = mock_records(f"{name}:{builder.info.version}", num_examples, seed, realistic_lengths)
        return _as_dataset(*cache[key])

    def splits(self):
        return tfds.core.SplitDict(
            [
                tfds.core.SplitInfo(
                    name=s,
                    shard_lengths=[100_000],
                    num_bytes=0,
                    filename_template=tfds.core.ShardedFileTemplate(
                        data_dir="/nonexistent/mock_tfds", dataset_name="mock", split=s, filetype_suffix="tfrecord"
                    ),
                )
                for s in BASE_SPLITS
            ]
        )

    with (
        tfds.testing.mock_data(num_examples=num_examples, as_dataset_fn=as_dataset_fn),
        _patch_splits(splits),
    ):
        yield


@contextlib.contextmanager
def _patch_splits(splits_fn) -> Iterator[None]:
    original = tfds.core.DatasetInfo.splits
    original_prepared = tfds.core.DatasetBuilder.is_prepared
    tfds.core.DatasetInfo.splits = property(splits_fn)
    tfds.core.DatasetBuilder.is_prepared = lambda self: True  # the mock serves every split
    try:
        yield
    finally:
        tfds.core.DatasetInfo.splits = original
        tfds.core.DatasetBuilder.is_prepared = original_prepared
