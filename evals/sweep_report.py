"""The sweep report: each run's held-out cluster score, side by side (the paper's per-cluster figure).

A held-out sweep trains one model per cluster and scores each zero-shot on the cluster it never
saw. This collects the held-out row of every run's `eval/results.json` (written by
evals.train_hook / `python -m evals`) into one results-like document and renders it with the
per-run report's own table and bar plot (evals.report.cluster_table, evals.plots.plot_clusters):
template mean and best template per cluster, next to the paper's numbers where the suite is FLAN.

    python -m evals.sweep_report --run nli=runs/sweep/nli --run sentiment=runs/sweep/sentiment \\
        --output_dir runs/sweep/report [--title "held-out sweep"]

Writes sweep_results.json, sweep_summary.md and clusters.png; a run whose results.json is missing
(failed, or not finished) is listed as missing, never silently dropped.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from evals import report

SCHEMA_VERSION = 1


def held_out_row(name: str, model_dir: str | pathlib.Path) -> dict[str, Any]:
    """The held-out cluster entry of one run's results.json, with where it came from."""
    path = pathlib.Path(model_dir) / "eval" / "results.json"
    base = {"run": name, "model_dir": str(model_dir), "results": str(path)}
    if not path.is_file():
        return {**base, "cluster": name, "status": "missing", "datasets": [], "mean": None, "best": None,
                "paper": None, "suite": None, "step": None}
    results = json.loads(path.read_text())
    run = results.get("run", {})
    held_out = [c for c in results["clusters"] if c.get("status") == "held-out"]
    if not held_out:  # a run without a held-out cluster: report what it names, clearly marked
        wanted = run.get("cluster")
        held_out = [c for c in results["clusters"] if c["cluster"] == wanted] or results["clusters"][:1]
    row = dict(held_out[0])
    return {**base, **row, "suite": run.get("suite"), "step": run.get("step")}


def build(runs: Mapping[str, str | pathlib.Path], title: str = "held-out sweep",
          extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The sweep document: one row per run, in the order given."""
    rows = [held_out_row(name, d) for name, d in runs.items()]
    suites = sorted({r["suite"] for r in rows if r["suite"]})
    return {
        "schema_version": SCHEMA_VERSION,
        "run": {"title": title, "suite": ",".join(suites) or "?", **dict(extra or {})},
        "clusters": rows,
        "missing": [r["run"] for r in rows if r["status"] == "missing"],
    }


def render_markdown(doc: Mapping[str, Any]) -> str:
    run = doc["run"]
    lines = [f"# {run['title']}: held-out zero-shot score per cluster ({run['suite']} suite)", ""]
    lines += [f"- {k}: `{v}`" for k, v in run.items() if k not in ("title",)]
    lines += ["", "Each row is a separate run that never trained on its cluster. Scores 0-100: *template "
              "mean* over all templates, *best template* = reported score of the template best on "
              "validation. Paper columns only for the FLAN suite.", ""]
    lines += report.cluster_table(doc)
    lines += ["", "| run | cluster | step | results |", "|---|---|---|---|"]
    lines += [f"| {r['run']} | {r['cluster']} | {r['step'] if r['step'] is not None else '-'} | `{r['results']}` |"
              for r in doc["clusters"]]
    if doc["missing"]:
        lines += ["", f"**Missing results** (run failed or unfinished): {', '.join(doc['missing'])}"]
    return "\n".join(lines) + "\n"


def write(doc: Mapping[str, Any], output_dir: str | pathlib.Path) -> dict[str, pathlib.Path]:
    """sweep_results.json, sweep_summary.md and clusters.png into output_dir."""
    from evals import plots

    out = pathlib.Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": report.write_json(doc, out / "sweep_results.json")}
    paths["markdown"] = out / "sweep_summary.md"
    paths["markdown"].write_text(render_markdown(doc))
    plotted = {**doc, "clusters": [r for r in doc["clusters"] if r["status"] != "missing"]}
    if plotted["clusters"]:
        paths["clusters_png"] = plots.plot_clusters(plotted, out / "clusters.png")
    return paths


def _parse_runs(specs: Sequence[str]) -> dict[str, str]:
    runs = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"error: --run takes NAME=MODEL_DIR, got {spec!r}")
        runs[name] = path
    return runs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evals.sweep_report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="append", default=[], help="NAME=MODEL_DIR (repeatable)")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--title", default="held-out sweep")
    parser.add_argument("--label", action="append", default=[], help="KEY=VALUE shown in the report")
    args = parser.parse_args(argv)
    if not args.run:
        parser.error("give at least one --run NAME=MODEL_DIR")
    doc = build(_parse_runs(args.run), args.title, dict(lbl.partition("=")[::2] for lbl in args.label))
    paths = write(doc, args.output_dir)
    print(render_markdown(doc))
    print(f"sweep report: {', '.join(str(p) for p in paths.values())}")
    return 1 if doc["missing"] else 0


if __name__ == "__main__":
    sys.exit(main())
