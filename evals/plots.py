"""PNG plots of a results document (see evals.report): cluster bars and per-dataset template spread.

Uses matplotlib's Agg backend through the object API only, so it never needs a display and never
touches pyplot's global state (safe inside a training loop).
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def _save(fig: Figure, path: pathlib.Path) -> pathlib.Path:
    FigureCanvasAgg(fig)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def _value(x: float | None) -> float:
    return float("nan") if x is None else float(x)


def plot_clusters(results: Mapping[str, Any], path: str | pathlib.Path) -> pathlib.Path:
    """Bars of template-mean and best-template score per cluster, with the paper's FLAN 137B mark."""
    clusters = results["clusters"]
    fig = Figure(figsize=(max(4.0, 1.6 * len(clusters) + 2), 3.6))
    ax = fig.add_subplot(1, 1, 1)
    xs = list(range(len(clusters)))
    width = 0.38
    ax.bar([x - width / 2 for x in xs], [_value(c["mean"]) for c in clusters], width, label="template mean")
    ax.bar([x + width / 2 for x in xs], [_value(c["best"]) for c in clusters], width, label="best template")
    labelled = False
    for x, c in zip(xs, clusters, strict=True):
        paper = (c.get("paper") or {}).get("flan_137b")
        if paper is not None:
            label = None if labelled else "FLAN 137B (paper)"
            ax.hlines(paper, x - width, x + width, colors="black", linestyles="--", label=label)
            labelled = True
    ax.set_xticks(xs, [f"{c['cluster']}\n({c['status']})" for c in clusters], fontsize=8)
    ax.set_ylabel("score (0-100)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{results.get('run', {}).get('suite', '')} clusters")
    ax.legend(fontsize=7)
    return _save(fig, pathlib.Path(path))


def plot_template_spread(results: Mapping[str, Any], path: str | pathlib.Path) -> pathlib.Path:
    """Each dataset's reported score per template (dots), its mean (bar), best template (star), chance."""
    datasets = results["datasets"]
    fig = Figure(figsize=(max(4.0, 0.9 * len(datasets) + 2), 3.8))
    ax = fig.add_subplot(1, 1, 1)
    for x, d in enumerate(datasets):
        rows = [t for t in results["templates"] if t["dataset"] == d["dataset"]]
        ys = [_value(t["reported"]) for t in rows]
        ax.scatter([x] * len(ys), ys, s=14, color="tab:blue", alpha=0.7, label="template" if x == 0 else None)
        ax.hlines(_value(d["mean"]), x - 0.3, x + 0.3, colors="tab:blue", label="mean" if x == 0 else None)
        if d["best"] is not None:
            ax.scatter([x], [d["best"]], marker="*", s=90, color="tab:orange",
                       label="best on validation" if x == 0 else None)
        if d["chance"] is not None:
            ax.hlines(d["chance"], x - 0.4, x + 0.4, colors="gray", linestyles=":",
                      label="chance" if x == 0 else None)
    ax.set_xticks(range(len(datasets)), [d["dataset"] for d in datasets], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("reported score (0-100)")
    ax.set_ylim(0, 100)
    ax.set_title("spread across templates")
    ax.legend(fontsize=7)
    return _save(fig, pathlib.Path(path))


def write_plots(results: Mapping[str, Any], output_dir: str | pathlib.Path) -> dict[str, pathlib.Path]:
    """Writes clusters.png and template_spread.png into output_dir."""
    out = pathlib.Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    return {
        "clusters_png": plot_clusters(results, out / "clusters.png"),
        "spread_png": plot_template_spread(results, out / "template_spread.png"),
    }
