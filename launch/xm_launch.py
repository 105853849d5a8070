"""Launch a sweep with XManager: one experiment per sweep, one work unit per sweep point.

    # held-out sweep of the embedded suite on this machine (XManager's local executor), then the
    # sweep report (one table and one plot of held-out score per cluster):
    .venv-launch/bin/python -m launch.xm_launch --executor=local --suite=embedded \\
        --clusters=nli,sentiment --model_dir_root=runs/sweep --gin_file=runs/quickstart.gin

    # the same on TPU VM slices / GKE / Vertex AI; --dry_run prints and validates what would be
    # submitted (command line, environment, resources) without network access:
    .venv-launch/bin/python -m launch.xm_launch --executor=tpu_vm --accelerator_type=v4-32 \\
        --zone=us-central2-b --model_dir_root=gs://BUCKET/sweep --suite=flan --clusters=nli \\
        --gin_file=models/base.gin --gin_file=runs/finetune.gin --dry_run

Every work unit runs `python -m flan_trainer` with the gin files, `--gin.X=Y` bindings (the sweep
point's values written as gin literals) and MODEL_DIR = MODEL_DIR_ROOT/<point>; its environment
carries XM_EXPERIMENT_ID / XM_WORK_UNIT_ID (logged by the trainer and written at the top of
config.gin). Sweep any gin parameter with --sweep 'NAME=[v1, v2]' (repeatable: the product).
--num_processes=N runs each local work unit as N processes joined by jax.distributed (a multi-host
rehearsal). Arguments not listed here go to the trainer. This runs in .venv-launch (XManager's
dependencies do not fit the training pins); the work units run the training python (--python).
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import json
import os
import pathlib
import shlex
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from launch import accelerators, cloud_specs
from launch.experiment import Job, job_from_args, sweep_jobs
from launch.local import free_port, process_env

REPO = pathlib.Path(__file__).resolve().parents[1]
EXECUTORS = ("local", "tpu_vm", "gke", "vertex")


def _default_python() -> str:
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def _parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str], list[str]]:
    parser = argparse.ArgumentParser(prog="python -m launch.xm_launch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executor", choices=EXECUTORS, default="local")
    parser.add_argument("--name", default=None, help="experiment title (default: flan-<suite>-sweep)")
    parser.add_argument("--suite", choices=["embedded", "flan"], default=None,
                        help="sets TASK_SUITE and checks --clusters against it")
    parser.add_argument("--clusters", default=None, help="held-out clusters, comma-separated, or 'all'")
    parser.add_argument("--sweep", action="append", default=[], metavar="NAME=[V1, V2]",
                        help="a gin parameter and a Python list of its values (repeatable: product)")
    parser.add_argument("--model_dir_root", required=True)
    parser.add_argument("--dry_run", action="store_true", help="print and validate the specs; submit nothing")
    parser.add_argument("--no_report", action="store_true", help="skip the sweep report after local runs")
    parser.add_argument("--python", default=None, help="training python for local work units")
    parser.add_argument("--num_processes", type=int, default=1, help="local: processes per work unit")
    parser.add_argument("--devices_per_process", type=int, default=None, help="local: CPU devices each")
    parser.add_argument("--accelerator_type", default="cpu", help="v4-32, v5litepod-16, a100x8, ...")
    parser.add_argument("--topology", default=None, help="TPU chip topology, e.g. 2x2x4 (checked)")
    parser.add_argument("--zone", default=None)
    parser.add_argument("--region", default="us-central1", help="Vertex AI region")
    parser.add_argument("--project", default=None)
    parser.add_argument("--tpu_name", default=None, help="tpu_vm: name prefix of the slices")
    parser.add_argument("--tpu_runtime_version", default="tpu-ubuntu2204-base")
    parser.add_argument("--repo_dir", default="~/flan-jax", help="tpu_vm: checkout on every host")
    parser.add_argument("--image", default=None, help="gke/vertex: container image with this repo and .venv")
    args, rest = parser.parse_known_args(argv)
    xm_flags = [a for a in rest if a.startswith("--xm_")]  # XManager's own absl flags
    return args, [a for a in rest if not a.startswith("--xm_")], xm_flags


def sweep_params(args: argparse.Namespace) -> dict[str, list[Any]]:
    """The sweep's parameters: held-out clusters (checked against the suite) and any --sweep."""
    import flan_tasks  # cluster names only: flan_tasks.clustering is pure Python

    params: dict[str, list[Any]] = {}
    if args.clusters:
        suite = args.suite or "embedded"
        valid = flan_tasks.clusters(suite)
        clusters = list(valid) if args.clusters == "all" else args.clusters.split(",")
        unknown = [c for c in clusters if c not in valid]
        if unknown:
            raise SystemExit(f"error: unknown cluster(s) {unknown} for suite {suite!r}; valid: {', '.join(valid)}")
        params["HELD_OUT_CLUSTER"] = clusters
    for spec in args.sweep:
        name, sep, values = spec.partition("=")
        try:
            parsed = ast.literal_eval(values) if sep else None
        except (ValueError, SyntaxError):
            parsed = None
        if not name or not isinstance(parsed, list | tuple) or not parsed:
            raise SystemExit(f"error: --sweep takes NAME=[V1, V2, ...] (a Python list), got {spec!r}")
        params[name] = list(parsed)
    if not params:
        raise SystemExit("error: nothing to sweep: give --clusters and/or --sweep NAME=[...]")
    return params


def build_jobs(args: argparse.Namespace, trainer_args: Sequence[str]) -> list[tuple[dict, Job]]:
    base = job_from_args(args.name, trainer_args)
    if not base.gin_files:
        raise SystemExit("error: give at least one --gin_file (e.g. --gin_file=runs/quickstart.gin)")
    if "MODEL_DIR" in base.gin_overrides:
        raise SystemExit("error: each work unit gets MODEL_DIR = --model_dir_root/<point>; drop --gin.MODEL_DIR")
    if args.suite:
        base = base.with_bindings(TASK_SUITE=args.suite)
    return sweep_jobs(base, sweep_params(args), args.model_dir_root)


def _repo_pythonpath() -> str:
    """PYTHONPATH with this checkout first, so local work units run this code."""
    return os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))


def _ids_env(experiment_id: Any, title: str, work_unit_id: Any, name: str) -> dict[str, str]:
    return {"XM_EXPERIMENT_ID": str(experiment_id), "XM_EXPERIMENT_TITLE": title,
            "XM_WORK_UNIT_ID": str(work_unit_id), "XM_WORK_UNIT_NAME": name}


# ---------------------------------------------------------------- local executor (runs the sweep)

def _local_job_group(xm, xm_local, executable, job: Job, args, env: dict[str, str]):
    """One process, or a JobGroup of --num_processes processes joined by jax.distributed."""
    label = job.name.removeprefix(f"{args.name}-")  # XManager prefixes each output line with it
    if args.num_processes == 1:
        return xm.Job(executable, xm_local.Local(), args=job.args(), env_vars=env, name=label)
    port = free_port()
    jobs = {}
    for pid in range(args.num_processes):
        penv = {**env, **process_env(pid, args.num_processes, port, args.devices_per_process)}
        jobs[f"host{pid}"] = xm.Job(executable, xm_local.Local(), args=job.args(), env_vars=penv,
                                    name=f"{label}-host{pid}")
    return xm.JobGroup(**jobs)


async def run_local(args: argparse.Namespace, jobs: list[tuple[dict, Job]]) -> dict[str, Any]:
    """Creates the experiment, adds one work unit per job, waits for all of them."""
    from xmanager import xm, xm_local

    python = args.python or _default_python()
    units = []
    async with xm_local.create_experiment(experiment_title=args.name) as experiment:
        [executable] = experiment.package([xm.binary(executor_spec=xm_local.Local.Spec(), path=python)])

        def generator(point: dict, job: Job):
            async def add_work_unit(work_unit, **_):
                env = {**_ids_env(work_unit.experiment_id, args.name, work_unit.work_unit_id, job.name),
                       "PYTHONPATH": _repo_pythonpath()}
                units.append({"name": job.name, "point": point, "work_unit_id": work_unit.work_unit_id,
                              "model_dir": ast.literal_eval(job.gin_overrides["MODEL_DIR"]),
                              "command": job.argv(python)})
                work_unit.add(_local_job_group(xm, xm_local, executable, job, args, env))
            return add_work_unit

        for point, job in jobs:
            experiment.add(generator(point, job))
        experiment_id = experiment.experiment_id
    # Leaving the context waited for every local process; failures show as missing results.
    return {"experiment_id": experiment_id, "title": args.name, "work_units": units}


def write_sweep_report(args: argparse.Namespace, launched: dict[str, Any]) -> int:
    """Runs evals.sweep_report with the training python (it reads each run's results.json)."""
    python = args.python or _default_python()
    out = os.path.join(args.model_dir_root, "report")
    cmd = [python, "-m", "evals.sweep_report", "--output_dir", out, "--title", args.name,
           "--label", f"xm_experiment_id={launched['experiment_id']}"]
    for unit in launched["work_units"]:
        cmd += ["--run", f"{unit['name'].removeprefix(args.name + '-')}={unit['model_dir']}"]
    return subprocess.call(cmd, env={**os.environ, "PYTHONPATH": _repo_pythonpath()})


# ---------------------------------------------------------------- cloud executors (specs, submit)

def _xm_requirements(xm, tpu_slice: accelerators.Slice, replicas: int = 1):
    if tpu_slice.kind == "cpu":
        return xm.JobRequirements(replicas=replicas)
    value = tpu_slice.topology if tpu_slice.kind == "tpu" else tpu_slice.chips_per_host
    return xm.JobRequirements(**{tpu_slice.xm_resource: value}, replicas=replicas)


def _check_cloud(args: argparse.Namespace) -> accelerators.Slice:
    tpu_slice = accelerators.parse(args.accelerator_type, args.topology)
    cloud_specs.check_model_dir(args.model_dir_root, args.executor)
    if args.executor in ("gke", "vertex") and not args.image:
        raise cloud_specs.SpecError(f"--executor={args.executor} runs a container: give --image=REGISTRY/IMAGE:TAG "
                                    "(this repo with its .venv, python on PATH)")
    if args.executor == "tpu_vm" and not args.zone:
        raise cloud_specs.SpecError("--executor=tpu_vm needs --zone (e.g. us-central2-b for v4)")
    if args.executor == "vertex" and tpu_slice.kind == "tpu" and tpu_slice.generation not in ("v2", "v3"):
        raise cloud_specs.SpecError(f"XManager's Vertex AI executor maps only TPU v2/v3 (got {tpu_slice.accelerator_type}); "
                                    "use --executor=tpu_vm or --executor=gke for newer TPU slices")
    return tpu_slice


def gke_specs(args, jobs, tpu_slice) -> list[dict]:
    from launch import xm_cloud

    return xm_cloud.gke_dry_run(args, jobs, tpu_slice, _xm_requirements, _ids_env)


def vertex_specs(args, jobs, tpu_slice) -> list[dict]:
    from launch import xm_cloud

    return xm_cloud.vertex_dry_run(args, jobs, tpu_slice, _xm_requirements, _ids_env)


def tpu_vm_specs(args, jobs, tpu_slice, experiment_id: Any = "<assigned at submit>") -> list[dict]:
    """One TPU VM slice per work unit (XManager has no TPU VM executor: gcloud starts the hosts)."""
    prefix = args.tpu_name or args.name
    out = []
    for i, (_, job) in enumerate(jobs):
        name = f"{prefix}-{i}".replace("_", "-").lower()
        env = _ids_env(experiment_id, args.name, i + 1, job.name)
        out.append({"work_unit": job.name, **cloud_specs.tpu_vm_spec(
            job, tpu_slice, tpu_name=name, zone=args.zone, project=args.project, repo_dir=args.repo_dir,
            runtime_version=args.tpu_runtime_version, env=env)})
    return out


def _print_specs(args, tpu_slice, specs: list[dict]) -> None:
    doc = {"experiment": args.name, "executor": args.executor, "slice": tpu_slice.as_dict(), "work_units": specs}
    print(json.dumps(doc, indent=2, default=str))
    for spec in specs:
        if "run" in spec:
            remote = spec["run"][-1].removeprefix("--command=")
            print(f"\n# {spec['work_unit']}: create the slice, then start on every host: {remote}")
            print(f"{shlex.join(spec['create'])}\n{shlex.join(spec['run'])}")


def submit_tpu_vm(specs: list[dict]) -> int:
    worst = 0
    for spec in specs:
        for cmd in (spec["create"], spec["run"]):
            worst = max(worst, subprocess.call(cmd))
    return worst


def main(argv: Sequence[str] | None = None) -> int:
    args, trainer_args, xm_flags = _parse_args(sys.argv[1:] if argv is None else argv)
    args.name = args.name or f"flan-{args.suite or 'embedded'}-sweep"
    from absl import flags

    flags.FLAGS([sys.argv[0], *xm_flags], known_only=True)  # XManager reads its absl flags
    if args.executor == "local":  # work units and the report agree on MODEL_DIR whatever their cwd
        args.model_dir_root = os.path.abspath(args.model_dir_root)
    jobs = build_jobs(args, trainer_args)
    if args.executor == "local":
        if args.dry_run:
            for _, job in jobs:
                print(job.command(args.python or _default_python()))
            return 0
        launched = asyncio.run(run_local(args, jobs))
        print(f"XManager experiment {launched['experiment_id']} ({args.name}): {len(launched['work_units'])} work units")
        return 0 if args.no_report else write_sweep_report(args, launched)
    try:
        tpu_slice = _check_cloud(args)
    except (accelerators.AcceleratorError, cloud_specs.SpecError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    builder = {"tpu_vm": tpu_vm_specs, "gke": gke_specs, "vertex": vertex_specs}[args.executor]
    specs = builder(args, jobs, tpu_slice)
    if args.dry_run:
        _print_specs(args, tpu_slice, specs)
        return 0
    if args.executor == "tpu_vm":
        from xmanager import xm_local

        # The experiment is recorded in XManager's store for its id; gcloud starts the hosts.
        experiment = xm_local.create_experiment(experiment_title=args.name)
        return submit_tpu_vm(tpu_vm_specs(args, jobs, tpu_slice, experiment.experiment_id))
    from launch import xm_cloud

    launched = asyncio.run(xm_cloud.submit(args, jobs, tpu_slice, _xm_requirements, _ids_env))
    print(f"XManager experiment {launched['experiment_id']} ({args.name}) submitted to {args.executor}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
