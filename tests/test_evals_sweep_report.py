"""evals.sweep_report: each run's held-out row side by side, paper numbers for FLAN, missing runs named."""

import json

from evals import report, sweep_report


def _run_dir(root, name, suite, held_out, score):
    templates = [{"dataset": f"{held_out}_ds", "cluster": held_out, "template_index": k, "kind": "rank",
                  "metrics": ["accuracy"], "num_options": 2, "validation": score + k, "reported": score + 2 * k}
                 for k in range(3)]
    templates += [{"dataset": "other_ds", "cluster": "other", "template_index": 0, "kind": "rank",
                   "metrics": ["accuracy"], "num_options": 2, "validation": 90.0, "reported": 90.0}]
    results = report.build_results({"suite": suite, "cluster": held_out, "step": 7}, templates,
                                   {held_out: "held-out", "other": "held-in"})
    report.write_json(results, root / name / "eval" / "results.json")
    return root / name


def test_sweep_report_rows_paper_numbers_and_missing_runs(tmp_path, capsys):
    runs = {"nli": _run_dir(tmp_path, "nli", "flan", "nli", 40.0),
            "sentiment": _run_dir(tmp_path, "sentiment", "flan", "sentiment", 60.0),
            "paraphrase": tmp_path / "never_finished"}
    out = tmp_path / "report"
    code = sweep_report.main([*[a for n, d in runs.items() for a in ("--run", f"{n}={d}")],
                              "--output_dir", str(out), "--title", "t", "--label", "xm_experiment_id=5"])
    assert code == 1  # a run is missing: reported, and the exit code says so
    doc = json.loads((out / "sweep_results.json").read_text())
    rows = {r["run"]: r for r in doc["clusters"]}
    assert rows["nli"]["status"] == "held-out" and rows["nli"]["mean"] == 42.0 and rows["nli"]["best"] == 44.0
    assert rows["nli"]["paper"]["flan_137b"] == 56.2 and rows["sentiment"]["paper"] is None
    assert rows["paraphrase"]["status"] == "missing" and doc["missing"] == ["paraphrase"]
    md = (out / "sweep_summary.md").read_text()
    assert "| nli | held-out | 1 | 42.0 | 44.0 | 56.2 |" in md and "**Missing results**" in md
    assert "xm_experiment_id: `5`" in md and (out / "clusters.png").stat().st_size > 1000
    assert "| sentiment | held-out |" in capsys.readouterr().out
