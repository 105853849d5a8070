"""Command line for inspecting suites: `python -m flan_tasks [--suite S] COMMAND ...`.

Commands: clusters, datasets, mixtures, templates DATASET, render TASK -n N,
manifest MIXTURE [--json]. `render` accepts few-shot task names (`..._16shot`) and registers
that variant with the default budget first.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence

import flan_tasks


def _register(suite: str) -> list[str]:
    if suite == "embedded":
        return flan_tasks.register_embedded_suite()
    return flan_tasks.register_flan_collection()


def _spec(suite: str, name: str):
    specs = {s.name: s for s in flan_tasks.registered_specs(suite)}
    if name not in specs:
        raise SystemExit(f"unknown dataset {name!r} in suite {suite!r}; known: {', '.join(sorted(specs))}")
    return specs[name]


def cmd_clusters(args, names) -> None:
    for cluster in flan_tasks.clusters(args.suite):
        n = sum(1 for s in flan_tasks.registered_specs(args.suite) if s.cluster == cluster)
        train = flan_tasks.held_out_training_clusters(args.suite, cluster)
        print(f"{cluster:40s} datasets={n:<3d} held-out training clusters: {', '.join(train)}")


def cmd_datasets(args, names) -> None:
    for s in flan_tasks.registered_specs(args.suite):
        kind = "classification" if s.is_classification else "generation"
        turned = sum(t.turned_around for t in s.templates)
        print(
            f"{s.name:28s} {s.cluster:24s} {kind:15s} templates={len(s.templates)} "
            f"turned_around={turned} train={s.num_train_examples} metrics={','.join(s.metrics)}"
        )


def cmd_mixtures(args, names) -> None:
    import seqio

    for name in names:
        if name in seqio.MixtureRegistry.names():
            print(name)


def cmd_templates(args, names) -> None:
    spec = _spec(args.suite, args.dataset)
    for i, t in enumerate(spec.templates):
        tag = " (turned around)" if t.turned_around else ""
        print(f"--- template {i}{tag}\n[inputs]\n{t.inputs}\n[targets]\n{t.targets}")


def cmd_render(args, names) -> None:
    import seqio

    few_shot = re.search(r"_(\d+)shot$", args.task)
    if few_shot:  # few-shot variants are opt-in: register the one the name asks for
        flan_tasks.register_few_shot(args.suite, num_shots=int(few_shot.group(1)))
    task = seqio.get_mixture_or_task(args.task)
    split = "train" if args.task.endswith("_train") else "test"
    ds = task.get_dataset(sequence_length=None, split=split, shuffle=False, seed=0)
    for i, ex in enumerate(ds.take(args.n).as_numpy_iterator()):
        print(f"=== example {i}")
        print(ex["inputs_pretokenized"].decode())
        print(f"--> {ex['targets_pretokenized'].decode()}")


def cmd_manifest(args, names) -> None:
    from flan_tasks.manifest import manifest_json, manifest_table

    print(manifest_json(args.mixture) if args.json else manifest_table(args.mixture))


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the CLI."""
    parser = argparse.ArgumentParser(prog="python -m flan_tasks", description="Inspect FLAN task suites.")
    parser.add_argument("--suite", choices=("embedded", "flan"), default="embedded")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("clusters", help="clusters and their held-out training clusters").set_defaults(fn=cmd_clusters)
    sub.add_parser("datasets", help="datasets of the suite").set_defaults(fn=cmd_datasets)
    sub.add_parser("mixtures", help="registered mixtures").set_defaults(fn=cmd_mixtures)
    p = sub.add_parser("templates", help="print a dataset's templates")
    p.add_argument("dataset")
    p.set_defaults(fn=cmd_templates)
    p = sub.add_parser("render", help="print rendered prompts and targets of a task")
    p.add_argument("task")
    p.add_argument("-n", type=int, default=3)
    p.set_defaults(fn=cmd_render)
    p = sub.add_parser("manifest", help="per-task rates, shares, caps and templates of a mixture")
    p.add_argument("mixture")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_manifest)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    args = build_parser().parse_args(argv)
    names = _register(args.suite)
    args.fn(args, names)
    return 0


if __name__ == "__main__":
    sys.exit(main())
