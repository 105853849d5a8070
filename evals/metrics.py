"""Evaluation metrics by name, as plain python/numpy functions on lists of targets and predictions.

Every metric returns a dict of named scores on a 0-100 scale (correlations are scaled by 100 too),
so tables mix them without conversions. `compute_metrics(names, targets, predictions)` runs several
by name; `primary_score(names, scores)` picks the one number used to rank templates and average
datasets into clusters.

Conventions:
- Classification metrics take labels (ints, bools or strings). When `options` is given, string
  labels are mapped to their option index first (an unknown string becomes -1, i.e. never correct)
  and the positive class of `f1_binary` is option index 1 (the catalog orders binary options
  no/yes, negative/positive, so index 1 is the positive one). Without options the positive label
  of `f1_binary` is 1 / True / "yes".
- Text metrics (`squad`, `exact_match`, `bleu`, `rouge`) accept, per example, either one reference
  string or a sequence of references; the best reference counts.
"""

from __future__ import annotations

import collections
import math
import re
import string
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

Scores = dict[str, float]


# ---------------------------------------------------------------------------------------------
# Input checking and label handling


def _check_lengths(targets: Sequence, predictions: Sequence) -> None:
    if len(targets) != len(predictions):
        raise ValueError(f"got {len(targets)} targets but {len(predictions)} predictions")
    if len(targets) == 0:
        raise ValueError("cannot compute a metric over zero examples")


def _as_references(target: Any) -> list[str]:
    """One example's references as a non-empty list of strings."""
    if isinstance(target, bytes):
        return [target.decode("utf-8")]
    if isinstance(target, str):
        return [target]
    refs = [t.decode("utf-8") if isinstance(t, bytes) else str(t) for t in target]
    if not refs:
        raise ValueError("an example has no reference answers")
    return refs


def _as_text(prediction: Any) -> str:
    return prediction.decode("utf-8") if isinstance(prediction, bytes) else str(prediction)


def _label_indices(values: Sequence, options: Sequence[str] | None) -> list:
    """Maps string labels to option indices when options are known; other labels pass through."""
    if options is None:
        return [v.decode("utf-8") if isinstance(v, bytes) else v for v in values]
    index = {o: i for i, o in enumerate(options)}
    out = []
    for v in values:
        if isinstance(v, bytes):
            v = v.decode("utf-8")
        if isinstance(v, str):
            out.append(index.get(v.strip(), -1))
        else:
            out.append(int(v))
    return out


def _is_positive(label: Any) -> bool:
    if isinstance(label, str):
        return label.strip().lower() == "yes"
    return bool(label == 1)


# ---------------------------------------------------------------------------------------------
# Classification


def accuracy(targets: Sequence, predictions: Sequence, options: Sequence[str] | None = None) -> Scores:
    """Percentage of predictions equal to their target."""
    _check_lengths(targets, predictions)
    t, p = _label_indices(targets, options), _label_indices(predictions, options)
    return {"accuracy": 100.0 * sum(a == b for a, b in zip(t, p, strict=True)) / len(t)}


def _f1_from_counts(tp: int, fp: int, fn: int) -> float:
    # Zero when the class is never predicted nor present (sklearn's zero_division=0).
    denom = 2 * tp + fp + fn
    return 0.0 if denom == 0 else 2.0 * tp / denom


def f1_binary(targets: Sequence, predictions: Sequence, options: Sequence[str] | None = None) -> Scores:
    """F1 of the positive class (option index 1 with options; else 1/True/'yes')."""
    _check_lengths(targets, predictions)
    if options is not None:
        t = [x == 1 for x in _label_indices(targets, options)]
        p = [x == 1 for x in _label_indices(predictions, options)]
    else:
        t = [_is_positive(x) for x in _label_indices(targets, None)]
        p = [_is_positive(x) for x in _label_indices(predictions, None)]
    tp = sum(a and b for a, b in zip(t, p, strict=True))
    fp = sum((not a) and b for a, b in zip(t, p, strict=True))
    fn = sum(a and not b for a, b in zip(t, p, strict=True))
    return {"f1_binary": 100.0 * _f1_from_counts(tp, fp, fn)}


def f1_macro(targets: Sequence, predictions: Sequence, options: Sequence[str] | None = None) -> Scores:
    """Unweighted mean of per-class F1 over the labels seen in targets or predictions."""
    _check_lengths(targets, predictions)
    t, p = _label_indices(targets, options), _label_indices(predictions, options)
    labels = sorted(set(t) | set(p), key=repr)
    per_class = []
    for label in labels:
        tp = sum(a == label and b == label for a, b in zip(t, p, strict=True))
        fp = sum(a != label and b == label for a, b in zip(t, p, strict=True))
        fn = sum(a == label and b != label for a, b in zip(t, p, strict=True))
        per_class.append(_f1_from_counts(tp, fp, fn))
    return {"f1_macro": 100.0 * float(np.mean(per_class))}


def matthews_corr(targets: Sequence, predictions: Sequence, options: Sequence[str] | None = None) -> Scores:
    """Matthews correlation (multi-class form, Gorodkin 2004), x100; 0 when undefined."""
    _check_lengths(targets, predictions)
    t, p = _label_indices(targets, options), _label_indices(predictions, options)
    labels = sorted(set(t) | set(p), key=repr)
    pos = {label: i for i, label in enumerate(labels)}
    conf = np.zeros((len(labels), len(labels)), dtype=np.float64)
    for a, b in zip(t, p, strict=True):
        conf[pos[a], pos[b]] += 1
    n = conf.sum()
    correct = np.trace(conf)
    true_counts, pred_counts = conf.sum(axis=1), conf.sum(axis=0)
    cov_tp = correct * n - true_counts @ pred_counts
    cov_pp = n * n - pred_counts @ pred_counts
    cov_tt = n * n - true_counts @ true_counts
    denom = math.sqrt(cov_pp * cov_tt)
    return {"matthews_corr": 0.0 if denom == 0 else 100.0 * cov_tp / denom}


# ---------------------------------------------------------------------------------------------
# Regression-style (STS-B): correlations of parsed numbers


def _to_float(value: Any, default: float = -1.0) -> float:
    # A prediction that is not a number gets -1 (outside STS-B's 0..5 range), as T5 does.
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    try:
        out = float(value)
    except (TypeError, ValueError):
        return default
    return out if math.isfinite(out) else default


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    xc, yc = x - x.mean(), y - y.mean()
    denom = math.sqrt(float(xc @ xc) * float(yc @ yc))
    return 0.0 if denom == 0 else float(xc @ yc) / denom


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties sharing their mean rank."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    sorted_x = x[order]
    start = 0
    while start < len(x):
        end = start
        while end + 1 < len(x) and sorted_x[end + 1] == sorted_x[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2.0 + 1.0
        start = end + 1
    return ranks


def pearson(targets: Sequence, predictions: Sequence, options: Sequence[str] | None = None) -> Scores:
    """Pearson correlation x100 of numeric targets and predictions (unparseable -> -1)."""
    _check_lengths(targets, predictions)
    x = np.array([_to_float(v) for v in targets])
    y = np.array([_to_float(v) for v in predictions])
    return {"pearson": 100.0 * _pearson(x, y)}


def spearman(targets: Sequence, predictions: Sequence, options: Sequence[str] | None = None) -> Scores:
    """Spearman rank correlation x100 (average ranks for ties)."""
    _check_lengths(targets, predictions)
    x = _average_ranks(np.array([_to_float(v) for v in targets]))
    y = _average_ranks(np.array([_to_float(v) for v in predictions]))
    return {"spearman": 100.0 * _pearson(x, y)}


# ---------------------------------------------------------------------------------------------
# QA: SQuAD-normalised exact match and token F1


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, drop punctuation and articles, collapse whitespace."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _token_f1(reference: str, prediction: str) -> float:
    ref_tokens = normalize_answer(reference).split()
    pred_tokens = normalize_answer(prediction).split()
    if not ref_tokens or not pred_tokens:
        # Both empty (e.g. SQuAD v2 no-answer) is a match; one empty is a miss.
        return float(ref_tokens == pred_tokens)
    common = collections.Counter(ref_tokens) & collections.Counter(pred_tokens)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred_tokens), overlap / len(ref_tokens)
    return 2 * precision * recall / (precision + recall)


def squad(targets: Sequence, predictions: Sequence, options: Sequence[str] | None = None) -> Scores:
    """SQuAD EM and token F1, each the max over an example's references, averaged x100."""
    _check_lengths(targets, predictions)
    em_total = f1_total = 0.0
    for target, prediction in zip(targets, predictions, strict=True):
        refs, pred = _as_references(target), _as_text(prediction)
        em_total += max(float(normalize_answer(r) == normalize_answer(pred)) for r in refs)
        f1_total += max(_token_f1(r, pred) for r in refs)
    n = len(targets)
    return {"squad_em": 100.0 * em_total / n, "squad_f1": 100.0 * f1_total / n}


def exact_match(targets: Sequence, predictions: Sequence, options: Sequence[str] | None = None) -> Scores:
    """Percentage of predictions whose normalised text equals any normalised reference."""
    _check_lengths(targets, predictions)
    hits = 0
    for target, prediction in zip(targets, predictions, strict=True):
        pred = normalize_answer(_as_text(prediction))
        hits += any(normalize_answer(r) == pred for r in _as_references(target))
    return {"exact_match": 100.0 * hits / len(targets)}


# ---------------------------------------------------------------------------------------------
# Generation: BLEU, ROUGE, edit distance


def bleu(targets: Sequence, predictions: Sequence, options: Sequence[str] | None = None) -> Scores:
    """Corpus BLEU from sacrebleu with T5's settings (intl tokenizer, exp smoothing).

    Multiple references per example are allowed; examples with fewer references are padded with
    None, which sacrebleu treats as a missing reference.
    """
    import sacrebleu

    _check_lengths(targets, predictions)
    refs = [_as_references(t) for t in targets]
    width = max(len(r) for r in refs)
    streams = [[r[i] if i < len(r) else None for r in refs] for i in range(width)]
    result = sacrebleu.corpus_bleu(
        [_as_text(p) for p in predictions],
        streams,
        smooth_method="exp",
        lowercase=False,
        tokenize="intl",
        use_effective_order=False,
    )
    return {"bleu": float(result.score)}


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _sentences_on_lines(text: str) -> str:
    # rougeLsum treats newlines as sentence boundaries: put each sentence on its own line.
    return "\n".join(s for s in _SENTENCE_END.split(text.replace("\n", " ")) if s)


_ROUGE_TYPES = ("rouge1", "rouge2", "rougeLsum")


def rouge(targets: Sequence, predictions: Sequence, options: Sequence[str] | None = None) -> Scores:
    """ROUGE-1/2/Lsum F-measure x100 (rouge-score, Porter stemmer), best reference per type.

    Also reports `rouge_mean`, the mean of the three, used as the primary summarisation score.
    """
    from rouge_score import rouge_scorer

    _check_lengths(targets, predictions)
    scorer = rouge_scorer.RougeScorer(list(_ROUGE_TYPES), use_stemmer=True)
    totals = dict.fromkeys(_ROUGE_TYPES, 0.0)
    for target, prediction in zip(targets, predictions, strict=True):
        pred = _sentences_on_lines(_as_text(prediction))
        per_ref = [scorer.score(_sentences_on_lines(r), pred) for r in _as_references(target)]
        for key in _ROUGE_TYPES:
            totals[key] += max(s[key].fmeasure for s in per_ref)
    n = len(targets)
    out = {key: 100.0 * totals[key] / n for key in _ROUGE_TYPES}
    out["rouge_mean"] = float(np.mean([out[k] for k in _ROUGE_TYPES]))
    return out


def levenshtein(a: str, b: str) -> int:
    """Character edit distance (insertions, deletions, substitutions cost 1)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def edit_distance(targets: Sequence, predictions: Sequence, options: Sequence[str] | None = None) -> Scores:
    """Edit-distance metrics against the closest reference.

    `edit_similarity` = 100 * mean(1 - distance / max(len)) is the 0-100, higher-is-better score;
    `mean_edit_distance` is the raw mean character distance, for reference.
    """
    _check_lengths(targets, predictions)
    sims, dists = [], []
    for target, prediction in zip(targets, predictions, strict=True):
        pred = _as_text(prediction)
        best = min(_as_references(target), key=lambda r: levenshtein(r, pred))
        dist = levenshtein(best, pred)
        dists.append(dist)
        sims.append(1.0 - dist / max(len(best), len(pred), 1))
    return {"edit_similarity": 100.0 * float(np.mean(sims)), "mean_edit_distance": float(np.mean(dists))}


# ---------------------------------------------------------------------------------------------
# Registry

MetricFn = Callable[..., Scores]

METRICS: Mapping[str, MetricFn] = {
    "accuracy": accuracy,
    "f1_binary": f1_binary,
    "f1_macro": f1_macro,
    "matthews_corr": matthews_corr,
    "squad": squad,
    "exact_match": exact_match,
    "bleu": bleu,
    "rouge": rouge,
    "pearson": pearson,
    "spearman": spearman,
    "edit_distance": edit_distance,
}

# Metrics that take exactly one target per example (labels or numbers); the others take a list
# of reference strings per example.
SINGLE_TARGET_METRICS = frozenset({"accuracy", "f1_binary", "f1_macro", "matthews_corr", "pearson", "spearman"})
# Of those, the ones that compare class labels (option indices in rank classification).
LABEL_METRICS = frozenset({"accuracy", "f1_binary", "f1_macro", "matthews_corr"})

# The score key each metric contributes as the headline number of a template.
PRIMARY_KEY: Mapping[str, str] = {
    "accuracy": "accuracy",
    "f1_binary": "f1_binary",
    "f1_macro": "f1_macro",
    "matthews_corr": "matthews_corr",
    "squad": "squad_f1",
    "exact_match": "exact_match",
    "bleu": "bleu",
    "rouge": "rouge_mean",
    "pearson": "pearson",
    "spearman": "spearman",
    "edit_distance": "edit_similarity",
}


def _check_names(names: Sequence[str]) -> None:
    if isinstance(names, str):
        raise TypeError("metric names must be a sequence of names, not a single string")
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; known metrics: {sorted(METRICS)}")
    if not names:
        raise ValueError("no metric names given")


def compute_metrics(
    names: Sequence[str],
    targets: Sequence,
    predictions: Sequence,
    options: Sequence[str] | None = None,
) -> dict[str, float]:
    """Runs the named metrics and merges their scores into one dict (all on a 0-100 scale)."""
    _check_names(names)
    out: dict[str, float] = {}
    for name in names:
        out.update(METRICS[name](targets, predictions, options=options))
    return out


def primary_score(names: Sequence[str], scores: Mapping[str, float]) -> float:
    """The headline score: the primary key of the first named metric.

    FLAN ranks templates and averages clusters on one number per dataset; the first metric in a
    dataset's list is the one the paper reports (accuracy for classification, BLEU, ROUGE, ...).
    """
    _check_names(names)
    key = PRIMARY_KEY[names[0]]
    if key not in scores:
        raise KeyError(f"scores lack the primary key {key!r} of metric {names[0]!r}: {sorted(scores)}")
    return float(scores[key])
