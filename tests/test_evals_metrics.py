"""evals.metrics checked against independent implementations (scikit-learn, scipy, sacrebleu,
rouge-score, editdistance) and against hand-worked SQuAD examples."""

import random

import editdistance
import numpy as np
import pytest
import sacrebleu
from rouge_score import rouge_scorer
from scipy import stats
from sklearn import metrics as skm

from evals import metrics


def _random_labels(n, k, seed):
    rng = random.Random(seed)
    return [rng.randrange(k) for _ in range(n)], [rng.randrange(k) for _ in range(n)]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [2, 3, 5])
def test_classification_metrics_match_sklearn(seed, k):
    t, p = _random_labels(57, k, seed)
    got = metrics.compute_metrics(["accuracy", "f1_macro", "matthews_corr"], t, p)
    assert got["accuracy"] == pytest.approx(100 * skm.accuracy_score(t, p))
    assert got["f1_macro"] == pytest.approx(100 * skm.f1_score(t, p, average="macro"))
    assert got["matthews_corr"] == pytest.approx(100 * skm.matthews_corrcoef(t, p))
    if k == 2:
        f1 = metrics.f1_binary(t, p)["f1_binary"]
        assert f1 == pytest.approx(100 * skm.f1_score(t, p, pos_label=1, zero_division=0))


def test_string_labels_map_through_options():
    options = ["no", "yes"]
    t = ["yes", "no", "yes", "yes", "no"]
    p = ["yes", "yes", "no", "yes", "maybe"]  # "maybe" is not an option: always wrong
    got = metrics.compute_metrics(["accuracy", "f1_binary"], t, p, options=options)
    ti = [1, 0, 1, 1, 0]
    pi = [1, 1, 0, 1, -1]
    assert got["accuracy"] == pytest.approx(100 * skm.accuracy_score(ti, pi))
    # F1 of the positive class only: the -1 prediction counts as "not yes".
    per_class = skm.f1_score(ti, pi, labels=[1], average=None)
    assert got["f1_binary"] == pytest.approx(100 * per_class[0])


def test_mcc_degenerate_is_zero():
    assert metrics.matthews_corr([1, 1, 1], [1, 1, 1])["matthews_corr"] == 0.0


def test_correlations_match_scipy_with_ties_and_garbage():
    rng = np.random.default_rng(0)
    t = rng.integers(0, 6, size=40).astype(float)
    p = [str(int(v)) for v in rng.integers(0, 6, size=40)]
    p[3] = "not a number"  # parsed as -1
    p_num = [float(v) if v[0].isdigit() else -1.0 for v in p]
    got = metrics.compute_metrics(["pearson", "spearman"], list(t), p)
    assert got["pearson"] == pytest.approx(100 * stats.pearsonr(t, p_num).statistic)
    assert got["spearman"] == pytest.approx(100 * stats.spearmanr(t, p_num).statistic)


def test_squad_hand_worked():
    targets = [["The Eiffel Tower", "Eiffel tower"], ["Denver Broncos"], [""], ["a b c d"]]
    predictions = ["eiffel tower!", "the Broncos", "", "b c x"]
    got = metrics.squad(targets, predictions)
    # ex0 exact (articles and punctuation dropped); ex1 F1: p=1/1, r=1/2 -> 2/3; ex2 both empty -> 1;
    # ex3 "a" is an article: ref tokens [b c d], pred [b c x] -> p=r=2/3.
    assert got["squad_em"] == pytest.approx(100 * 2 / 4)
    assert got["squad_f1"] == pytest.approx(100 * (1 + 2 / 3 + 1 + 2 / 3) / 4)


def test_exact_match_any_reference():
    got = metrics.exact_match([["Paris", "paris, france"], "London"], ["Paris, France.", "london."])
    assert got["exact_match"] == 100.0
    assert metrics.exact_match(["Rome"], ["Roma"])["exact_match"] == 0.0


def test_bleu_matches_sacrebleu_single_and_multi_reference():
    preds = ["the cat sat on the mat", "a quick brown fox jumps", "hello there world"]
    refs = ["the cat sat on a mat", "the quick brown fox jumped", "hello world"]
    expect = sacrebleu.corpus_bleu(preds, [refs], tokenize="intl", smooth_method="exp").score
    assert metrics.bleu(refs, preds)["bleu"] == pytest.approx(expect)
    multi = [[refs[0], preds[0]], [refs[1], "quick brown fox jumps"], [refs[2]]]
    streams = [[m[0] for m in multi], [m[1] if len(m) > 1 else None for m in multi]]
    expect_multi = sacrebleu.corpus_bleu(preds, streams, tokenize="intl", smooth_method="exp").score
    assert metrics.bleu(multi, preds)["bleu"] == pytest.approx(expect_multi)
    assert expect_multi != expect  # the second stream actually mattered


def test_rouge_matches_rouge_score_best_reference():
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeLsum"], use_stemmer=True)
    preds = ["the cats were sitting. they slept", "completely unrelated words here"]
    targets = [["a cat sat on the mat.", "the cat was sitting. it slept"], ["unrelated words"]]
    got = metrics.rouge(targets, preds)
    expected = {k: 0.0 for k in ("rouge1", "rouge2", "rougeLsum")}
    for refs, pred in zip(targets, preds, strict=True):
        best = scorer.score_multi([r.replace(". ", ".\n") for r in refs], pred.replace(". ", ".\n"))
        for k in expected:
            expected[k] += 100 * best[k].fmeasure / len(preds)
    for k, v in expected.items():
        assert got[k] == pytest.approx(v)
    assert got["rouge_mean"] == pytest.approx(np.mean(list(expected.values())))


def test_edit_distance_matches_editdistance():
    rng = random.Random(0)
    for _ in range(50):
        a = "".join(rng.choice("abc ") for _ in range(rng.randrange(0, 12)))
        b = "".join(rng.choice("abc ") for _ in range(rng.randrange(0, 12)))
        assert metrics.levenshtein(a, b) == editdistance.eval(a, b)
    got = metrics.edit_distance(["Hello, world.", ["abc", "xyz"]], ["Hello world", "xyz"])
    assert got["mean_edit_distance"] == pytest.approx((2 + 0) / 2)
    assert got["edit_similarity"] == pytest.approx(100 * ((1 - 2 / 13) + 1) / 2)


def test_primary_score_and_errors():
    scores = metrics.compute_metrics(["squad", "exact_match"], [["x"]], ["x"])
    assert metrics.primary_score(["squad", "exact_match"], scores) == 100.0
    with pytest.raises(ValueError, match="unknown metric"):
        metrics.compute_metrics(["acc"], [1], [1])
    with pytest.raises(ValueError, match="2 targets but 1"):
        metrics.accuracy([1, 2], [1])
    with pytest.raises(ValueError, match="zero examples"):
        metrics.accuracy([], [])
    with pytest.raises(TypeError):
        metrics.compute_metrics("accuracy", [1], [1])
