"""Command line for inspecting suites: `python -m flan_tasks [--suite S] COMMAND ...`.

Commands: clusters, datasets, mixtures, templates DATASET, render TASK -n N,
manifest MIXTURE [--json], cache (build the offline seqio cache on Apache Beam; needs the Beam
extra), prepare (list / build the TFDS datasets a mixture reads). `render` accepts few-shot task
names (`..._16shot`) and registers that variant with the default budget first.

  python -m flan_tasks --suite embedded cache --mixture embedded_held_out_nli_train \\
      --output_cache_dir=DIR [--vocabulary=byte|SPM_PATH] [--runner=DataflowRunner ...]
  python -m flan_tasks --suite flan prepare --mixture flan_held_out_nli_train --data_dir=DIR [--check]

Arguments `cache` does not know are Beam pipeline options (default --runner=DirectRunner).
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


def cmd_cache(args, names) -> None:
    from flan_tasks import cache as cache_lib

    try:
        from flan_tasks import cache_beam
    except ImportError as exc:
        raise SystemExit(
            f"error: the cache command needs Apache Beam ({exc}). Install the Beam extra with "
            "`bash scripts/setup_env.sh --beam` and run it with .venv-beam/bin/python -m flan_tasks ..."
        ) from None
    config = cache_lib.SuiteConfig(args.suite, args.vocabulary, args.extra_ids, args.tfds_data_dir)
    config.register()
    tasks = cache_lib.training_tasks(args.mixture, args.task)
    try:
        built, skipped = cache_beam.build_cache(
            config, tasks, args.output_cache_dir, splits=args.splits.split(","),
            pipeline_args=args.pipeline_args, overwrite=args.overwrite, label=(args.mixture or tasks)[0])
    except FileNotFoundError as exc:  # TFDS data not prepared: one line naming all of it
        raise SystemExit(f"error: {exc}") from None
    for name in skipped:
        print(f"already cached (use --overwrite to rebuild): {name}")
    for name in built:
        print(f"cached: {name} -> {cache_lib.task_cache_dir(args.output_cache_dir, name)}")
    print(f"read with: python -m flan_trainer ... --seqio_cache_dirs={args.output_cache_dir} "
          "--gin.USE_CACHED_TASKS=True")


def cmd_prepare(args, names) -> int:
    import seqio

    from flan_tasks import prepare

    seqio.set_tfds_data_dir_override(args.data_dir)
    statuses = prepare.mixture_status(args.mixture)
    for status in statuses:
        print(status.describe())
    missing = [s for s in statuses if not s.prepared]
    print(f"{len(statuses) - len(missing)} of {len(statuses)} TFDS datasets prepared in {args.data_dir}")
    if args.check or not missing:
        return 1 if missing else 0
    results = prepare.prepare(missing)
    for name, result in results.items():
        print(f"{name}: {result}")
    return 0 if all(r == "built" for r in results.values()) else 1


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the CLI."""
    parser = argparse.ArgumentParser(prog="python -m flan_tasks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
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
    p = sub.add_parser("cache", allow_abbrev=False,
                       help="build the offline seqio cache of training tasks on Apache Beam")
    p.add_argument("--mixture", action="append", default=[], help="cache its training tasks (repeatable)")
    p.add_argument("--task", action="append", default=[], help="a training task to cache (repeatable)")
    p.add_argument("--output_cache_dir", required=True, help="local or gs:// folder")
    p.add_argument("--vocabulary", default=None,
                   help="'byte' or a SentencePiece model path; must be what training uses (default: the suite's)")
    p.add_argument("--extra_ids", type=int, default=100, help="SentencePiece extra ids")
    p.add_argument("--tfds_data_dir", default=None, help="where the flan suite's TFDS data is prepared")
    p.add_argument("--splits", default="train", help="comma-separated seqio splits to cache")
    p.add_argument("--overwrite", action="store_true", help="rebuild tasks that are already cached")
    p.set_defaults(fn=cmd_cache)
    p = sub.add_parser("prepare", help="list (and build) the TFDS datasets a mixture reads")
    p.add_argument("--mixture", required=True)
    p.add_argument("--data_dir", required=True, help="the TFDS data dir (the trainer's --tfds_data_dir)")
    p.add_argument("--check", action="store_true", help="only report; exit status 1 if any is missing")
    p.set_defaults(fn=cmd_prepare)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "cache":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.pipeline_args = extra
    names = [] if args.command == "cache" else _register(args.suite)  # cache registers its own way
    return args.fn(args, names) or 0


if __name__ == "__main__":
    sys.exit(main())
