"""evals.report / evals.plots / evals.paper_scores: the results document, markdown and PNGs."""

import json

import pytest

from evals import paper_scores, report


def _templates():
    def row(dataset, k, val, rep, kind="rank", num_options=3, metrics=("accuracy",)):
        return {
            "dataset": dataset, "cluster": "nli", "template_index": k, "kind": kind,
            "metrics": list(metrics), "num_options": num_options, "validation": val, "reported": rep,
            "scores_reported": {"accuracy": rep}, "paper_score": 60.0 if dataset == "cb" else None,
        }

    return [row("cb", 0, 50.0, 40.0), row("cb", 1, 70.0, 80.0), row("rte", 0, 55.0, 52.0, num_options=2),
            row("rte", 1, 55.0, float("nan"), num_options=2)]


def test_build_results_schema_and_values():
    res = report.build_results({"suite": "flan", "cluster": "nli"}, _templates()[:3], {"nli": "held-out"})
    assert res["schema_version"] == report.SCHEMA_VERSION
    cb, rte = res["datasets"]
    assert cb["mean"] == pytest.approx(60.0) and cb["best"] == 80.0 and cb["best_template"] == 1
    assert cb["chance"] == pytest.approx(100 / 3) and rte["chance"] == 50.0
    assert cb["primary_metric"] == "accuracy" and cb["status"] == "held-out" and cb["paper_score"] == 60.0
    (nli,) = res["clusters"]
    assert nli["mean"] == pytest.approx((60.0 + 52.0) / 2)
    assert nli["best"] == pytest.approx((80.0 + 52.0) / 2)
    assert nli["paper"]["flan_137b"] == 56.2 and res["paper"]["nli"]["gpt3_175b_zero_shot"] == 42.9


def test_generation_has_no_chance_level():
    assert report.chance_level("generation", 3) is None
    assert report.chance_level("rank", 4) == 25.0


def test_write_report_files(tmp_path):
    res = report.build_results({"suite": "flan", "cluster": "nli", "step": 7}, _templates(), {})
    paths = report.write_report(res, tmp_path)
    loaded = json.loads(paths["json"].read_text())  # strict JSON despite the NaN score
    assert loaded["templates"][3]["reported"] is None
    md = paths["markdown"].read_text()
    assert "| cb | nli | unknown | rank | accuracy | 33.3 | 60.0 | 80.0 (t1) | 40.0-80.0 | 60.0 |" in md
    assert "| nli | unknown | 2 |" in md and "56.2" in md
    for key in ("clusters_png", "spread_png"):
        data = paths[key].read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000


def test_bad_template_record():
    with pytest.raises(ValueError, match="lacks"):
        report.build_results({}, [{"dataset": "x"}])


def test_paper_scores_table():
    assert paper_scores.paper_cluster_score("reading_comprehension").flan_137b == 77.4
    assert paper_scores.paper_cluster_score("closed_book_qa").gpt3_175b_few_shot == 55.7
    assert paper_scores.paper_cluster_score("sentiment") is None


def test_no_paper_numbers_for_the_embedded_suite():
    res = report.build_results({"suite": "embedded", "cluster": "nli"}, _templates()[:3])
    assert res["clusters"][0]["paper"] is None and res["paper"] == {}
