"""Zero-shot evaluation inside the training loop, bound in gin as one of `train.eval_hooks`.

Every EVAL_PERIOD steps the held-out cluster is scored (a quick pass: `periodic_max_examples`
examples per task) and logged to TensorBoard; at the last step the held-out cluster and the
held-in clusters are scored in full and written as one report (results.json, summary.md, plots)
to MODEL_DIR/eval/, and a table is printed: held-out next to chance and next to held-in.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import gin

from evals import eval_mesh, report
from evals.runner import evaluate

log = logging.getLogger(__name__)


def _scalars(results: Mapping[str, Any]) -> dict[str, float]:
    out = {}
    for c in results["clusters"]:
        for key in ("mean", "best"):
            if c.get(key) is not None:
                out[f"eval/{c['status']}/{c['cluster']}/{key}"] = float(c[key])
    return out


def _report_table(results: Mapping[str, Any]) -> str:
    """Per-dataset rows: cluster status, template mean, best template, chance."""
    lines = [f"{'dataset':<26} {'cluster':<22} {'status':<9} {'mean':>6} {'best':>6} {'chance':>6}"]
    order = {"held-out": 0, "held-in": 1}
    for d in sorted(results["datasets"], key=lambda d: (order.get(d["status"], 2), d["cluster"], d["dataset"])):
        def fmt(v):
            return f"{v:6.1f}" if v is not None else "     -"

        lines.append(f"{d['dataset']:<26} {d['cluster']:<22} {d['status']:<9} {fmt(d.get('mean'))} "
                     f"{fmt(d.get('best'))} {fmt(d.get('chance'))}")
    return "\n".join(lines)


@gin.configurable
class HeldOutEval:
    """Scores the held-out cluster during training and writes the final zero-shot report.

    held_in_clusters: clusters also scored at the end, for comparison ('all' = every cluster of
      the suite that the run trained on, () = none).
    held_in_max_templates: score only the first N templates of held-in datasets (the held-out
      cluster always gets all of them in the final pass).
    periodic_max_templates: the periodic pass scores only each held-out dataset's first N templates.

    Runs on the training mesh with the parameters in their training shardings (evals.eval_mesh),
    so it works on several processes: every host evaluates, gets the same scalars, and only
    process 0 writes the report and prints the table.
    """

    def __init__(self, batch_size: int = 32, periodic_max_examples: int | None = 50,
                 final_max_examples: int | None = None, held_in_clusters: Sequence[str] | str = "all",
                 held_in_max_templates: int | None = None, method: str = "greedy",
                 periodic_max_templates: int | None = None) -> None:
        self.batch_size = batch_size
        self.periodic_max_examples = periodic_max_examples
        self.final_max_examples = final_max_examples
        self.held_in_clusters = held_in_clusters
        self.held_in_max_templates = held_in_max_templates
        self.periodic_max_templates = periodic_max_templates
        self.method = method

    def _held_in(self, ctx) -> list[str]:
        import flan_tasks

        if self.held_in_clusters != "all":
            return list(self.held_in_clusters)
        if ctx.held_out_cluster is None:
            return list(flan_tasks.clusters(ctx.suite))
        return list(flan_tasks.held_out_training_clusters(ctx.suite, ctx.held_out_cluster))

    def __call__(self, ctx, step: int, params: Any, final: bool) -> dict[str, float] | None:
        clusters = [ctx.held_out_cluster] if ctx.held_out_cluster else []
        if final:
            clusters += [c for c in self._held_in(ctx) if c not in clusters]
        if not clusters:
            return None
        max_examples = self.final_max_examples if final else self.periodic_max_examples
        templates, status, seconds, compiles = [], {}, 0.0, 0
        mesh = eval_mesh.resolve(ctx.mesh, ctx.rules)  # shared: programs compile once per run
        for cluster in clusters:
            if cluster == ctx.held_out_cluster:
                max_templates = None if final else self.periodic_max_templates
            else:
                max_templates = self.held_in_max_templates
            res = evaluate(ctx.model, params, ctx.suite, cluster, ctx.vocabulary, self.batch_size,
                           max_examples=max_examples, training_mixture=ctx.mixture, method=self.method,
                           split="both" if final else "reported", plots=False, max_templates=max_templates,
                           mesh=mesh)
            templates += res["templates"]
            status.update({c["cluster"]: c["status"] for c in res["clusters"]})
            seconds += res["run"]["seconds"]
            compiles += res["run"]["compiled_programs"]
        run = {"suite": ctx.suite, "cluster": ctx.held_out_cluster or "all", "step": step,
               "training_mixture": ctx.mixture, "max_examples": max_examples, "seconds": round(seconds, 2),
               "batch_size": self.batch_size, "compiled_programs": compiles}
        results = report.build_results(run, templates, status)
        if final and eval_mesh.is_main_process():
            out_dir = os.path.join(ctx.model_dir, "eval")
            report.write_report(results, out_dir, plots=True)
            print(f"\nZero-shot evaluation at step {step} (scores 0-100; report in {out_dir}/summary.md)")
            print(_report_table(results))
        scalars = _scalars(results)
        log.info("eval at step %d: %s", step, scalars)
        return scalars
