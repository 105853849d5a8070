"""evals.aggregation on a hand-built table whose answers are worked out by hand."""

import pytest

from evals.aggregation import (
    TemplateScore,
    aggregate_clusters,
    aggregate_dataset,
    aggregate_datasets,
    choose_best_template,
)


def _rows():
    # dataset a (cluster x): best validation is t1 (tie with t2 -> lowest index t1), reported 50.
    # t3 is turned around with huge scores: must be ignored everywhere.
    a = [
        TemplateScore("a", "x", 0, validation=60.0, reported=40.0),
        TemplateScore("a", "x", 1, validation=80.0, reported=50.0),
        TemplateScore("a", "x", 2, validation=80.0, reported=90.0),
        TemplateScore("a", "x", 3, validation=99.0, reported=99.0, turned_around=True),
    ]
    # dataset b (cluster x): best validation t0 although its reported score is the lowest.
    b = [
        TemplateScore("b", "x", 0, validation=70.0, reported=10.0),
        TemplateScore("b", "x", 1, validation=20.0, reported=30.0),
    ]
    c = [TemplateScore("c", "y", 4, validation=1.0, reported=2.0)]
    return a + b + c


def test_dataset_aggregation_known_answers():
    by_name = {d.dataset: d for d in aggregate_datasets(_rows())}
    a, b, c = by_name["a"], by_name["b"], by_name["c"]
    assert a.num_templates == 3
    assert a.mean == pytest.approx(60.0)  # (40 + 50 + 90) / 3
    assert a.best_template == 1 and a.best == 50.0  # tie on validation -> lowest index
    assert a.validation_mean == pytest.approx(220 / 3)
    assert (a.min_template, a.max_template) == (40.0, 90.0)
    assert b.mean == pytest.approx(20.0) and b.best_template == 0 and b.best == 10.0
    assert c.mean == 2.0 and c.best_template == 4


def test_cluster_averages_over_datasets():
    clusters = {c.cluster: c for c in aggregate_clusters(aggregate_datasets(_rows()))}
    assert clusters["x"].datasets == ("a", "b")
    assert clusters["x"].mean == pytest.approx((60.0 + 20.0) / 2)
    assert clusters["x"].best == pytest.approx((50.0 + 10.0) / 2)
    assert clusters["y"].mean == 2.0 and clusters["y"].best == 2.0


def test_order_of_rows_does_not_matter():
    rows = _rows()
    assert aggregate_datasets(rows[::-1])[0] == [d for d in aggregate_datasets(rows) if d.dataset == "c"][0]
    assert choose_best_template(rows[2::-1]).template_index == 1


def test_missing_splits_give_none():
    rows = [TemplateScore("a", "x", 0, None, 5.0), TemplateScore("a", "x", 1, None, 7.0)]
    d = aggregate_dataset(rows)
    assert d.mean == 6.0 and d.best is None and d.best_template is None
    rows = [TemplateScore("a", "x", 0, 3.0, None)]
    d = aggregate_dataset(rows)
    assert d.mean is None and d.best_template == 0 and d.best is None
    assert aggregate_clusters([d])[0].mean is None


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="no scored"):
        aggregate_dataset([TemplateScore("a", "x", 0, 1.0, 1.0, turned_around=True)])
    with pytest.raises(ValueError, match="duplicate template"):
        aggregate_dataset([TemplateScore("a", "x", 0, 1.0, 1.0), TemplateScore("a", "x", 0, 2.0, 2.0)])
    with pytest.raises(ValueError, match="mix datasets"):
        aggregate_dataset([TemplateScore("a", "x", 0, 1.0, 1.0), TemplateScore("b", "x", 1, 2.0, 2.0)])
