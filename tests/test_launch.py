"""Launchers: command lines (gin quoting round trips), the TPU VM / GKE / Vertex dry runs through
XManager, argument checks, and the two-cluster sweep through XManager's local executor.

The XManager side runs in .venv-launch (scripts/setup_env.sh --launch): its dependencies do not fit
the training pins. Those tests are skipped with the fix when it is missing; CI creates it.
"""

import json
import os
import pathlib
import shlex
import sqlite3
import subprocess

import gin
import pytest

from launch import accelerators, cloud_specs, local
from launch.experiment import Job, Macro, Ref, gin_literal, held_out_sweep, parse_argv, sweep_jobs

REPO = pathlib.Path(__file__).resolve().parents[1]
XM_PYTHON = REPO / ".venv-launch" / "bin" / "python"
needs_xm = pytest.mark.skipif(not XM_PYTHON.exists(),
                              reason="no .venv-launch: run `bash scripts/setup_env.sh --launch`")

# Values that T5X's launcher mangled: strings with quotes and spaces, dicts, tuples, macros.
TRICKY = {
    "NAME": "it's a \"quoted\" value, with spaces",
    "TASK_FEATURE_LENGTHS": {"inputs": 64, "targets": 16},
    "ACTIVATIONS": ("gelu", "linear"),
    "ONE": ("solo",),
    "NESTED": [1, 2.5, None, True, {"k": ("a b", "c")}],
}
REFS = {"STEPS": Macro("TRAIN_STEPS"), "MODEL_REF": Ref("models.EncoderDecoderModel", call=True)}


def _gin_values(bindings: dict[str, str]) -> dict:
    """Parses `--gin.X=Y` values exactly as the trainer does (gin_utils), then reads them from gin."""
    from flan_trainer.gin_utils import split_gin_overrides

    lines, _ = split_gin_overrides([f"--gin.{k}={v}" for k, v in bindings.items() if k in TRICKY])
    gin.clear_config()
    try:
        gin.parse_config(lines)
        return {k: gin.query_parameter(f"%{k}") for k in bindings if k in TRICKY}
    finally:
        gin.clear_config()


def _assert_round_trip(argv: list[str], gin_files: list[str]) -> None:
    files, bindings, _ = parse_argv(argv)
    assert files == gin_files
    assert _gin_values(bindings) == TRICKY
    assert bindings["STEPS"] == "%TRAIN_STEPS" and bindings["MODEL_REF"] == "@models.EncoderDecoderModel()"


def test_job_argv_uses_t5x_flag_style():
    job = Job("x", ("runs/finetune.gin", "held_out/nli.gin"), {"TRAIN_STEPS": "100"}, extra_flags=("--dry_run",))
    assert job.argv("py") == ["py", "-m", "flan_trainer", "--gin_file=runs/finetune.gin",
                              "--gin_file=held_out/nli.gin", "--gin.TRAIN_STEPS=100", "--dry_run"]


def test_gin_literals_round_trip_through_argv_and_shell():
    job = Job("x", ("runs/quickstart.gin",)).with_bindings(**TRICKY, **REFS)
    _assert_round_trip(job.argv(), ["runs/quickstart.gin"])
    _assert_round_trip(shlex.split(job.command()), ["runs/quickstart.gin"])  # one shell quoting, undone once
    assert gin_literal(("a",)) == "('a',)" and gin_literal(Macro("X")) == "%X"
    with pytest.raises(TypeError):
        gin_literal(object())


def test_sweep_is_a_product_with_a_model_dir_per_point():
    jobs = sweep_jobs(Job("s", ("runs/quickstart.gin",)),
                      {"HELD_OUT_CLUSTER": ["nli", "sentiment"], "LEARNING_RATE": [0.001, 0.003]}, "/tmp/sw/")
    assert len(jobs) == 4
    dirs = [j.gin_overrides["MODEL_DIR"] for _, j in jobs]
    assert dirs[0] == "'/tmp/sw/nli_learning_rate-0.001'" and len(set(dirs)) == 4
    assert jobs[3][1].gin_overrides["LEARNING_RATE"] == "0.003"
    legacy = held_out_sweep(Job("s", ("runs/quickstart.gin",)), ["nli", "sentiment"], "/tmp/sweep/")
    assert [j.gin_overrides["HELD_OUT_CLUSTER"] for j in legacy] == ["'nli'", "'sentiment'"]
    assert [j.gin_overrides["MODEL_DIR"] for j in legacy] == ["'/tmp/sweep/nli'", "'/tmp/sweep/sentiment'"]


def test_accelerator_types_and_topologies():
    v4 = accelerators.parse("v4-32")
    assert (v4.chips, v4.hosts, v4.chips_per_host, v4.topology) == (16, 4, 4, "2x2x4")
    assert accelerators.parse("v5litepod-16", "4x4").hosts == 4 and accelerators.parse("v6e-8").hosts == 1
    assert accelerators.parse("h100x8x2").hosts == 2
    for bad, topology in (("v4-33", None), ("v9-8", None), ("v4-32", "2x2x2"), ("v4-32", "4x4")):
        with pytest.raises(accelerators.AcceleratorError):
            accelerators.parse(bad, topology)


def test_tpu_vm_spec_starts_every_worker_with_the_same_command():
    job = Job("x", ("runs/finetune.gin",)).with_bindings(**TRICKY, MODEL_DIR="gs://b/r")
    spec = cloud_specs.tpu_vm_spec(job, accelerators.parse("v4-32"), tpu_name="pod", zone="z", project=None,
                                   repo_dir="~/flan jax", runtime_version="tpu-ubuntu2204-base",
                                   env={"XM_WORK_UNIT_ID": "1"})
    assert spec["run"][:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "pod"] and "--worker=all" in spec["run"]
    assert "--accelerator-type=v4-32" in spec["create"]
    assert cloud_specs.trainer_argv_from_tpu_vm(spec["run"]) == job.argv(".venv/bin/python")
    remote = spec["run"][-1]
    assert remote.startswith("--command=cd ~/'flan jax' && env XM_WORK_UNIT_ID=1 .venv/bin/python -m flan_trainer")
    with pytest.raises(cloud_specs.SpecError):
        cloud_specs.check_model_dir("/local/dir", "tpu_vm")


def test_local_print_only(capsys):
    assert local.main(["--print_only", "--gin_file=runs/quickstart.gin", "--gin.TRAIN_STEPS=5"]) == 0
    assert "-m flan_trainer --gin_file=runs/quickstart.gin --gin.TRAIN_STEPS=5" in capsys.readouterr().out


def _xm_launch(args: list[str], home: pathlib.Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HOME": str(home)}  # XManager's store: ~/.xmanager
    env.pop("XLA_FLAGS", None)
    return subprocess.run([str(XM_PYTHON), "-m", "launch.xm_launch", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _tricky_args() -> list[str]:
    return [f"--gin.{k}={gin_literal(v)}" for k, v in {**TRICKY, **REFS}.items()]


@needs_xm
@pytest.mark.parametrize("executor,extra", [
    ("tpu_vm", ["--accelerator_type=v4-32", "--zone=us-central2-b"]),
    # XManager's cloud modules import the Kubernetes and Vertex AI clients (slow to import).
    pytest.param("gke", ["--accelerator_type=v4-32", "--topology=2x2x4", "--image=gcr.io/p/flan:1"],
                 marks=pytest.mark.slow),
    pytest.param("vertex", ["--accelerator_type=a100x8x2", "--image=gcr.io/p/flan:1"], marks=pytest.mark.slow),
])
def test_cloud_dry_runs_print_specs_that_parse_back(tmp_path, executor, extra):
    gin_files = ["models/base.gin", "runs/finetune.gin"]
    proc = _xm_launch([f"--executor={executor}", "--dry_run", "--suite=flan", "--clusters=nli,sentiment",
                       "--model_dir_root=gs://bucket/sweep", *extra, *[f"--gin_file={f}" for f in gin_files],
                       *_tricky_args()], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc, _ = json.JSONDecoder().raw_decode(proc.stdout)
    units = doc["work_units"]
    assert [u["work_unit"] for u in units] == ["flan-flan-sweep-nli", "flan-flan-sweep-sentiment"]
    for unit, cluster in zip(units, ["nli", "sentiment"], strict=True):
        argvs = [unit["command"]]
        if executor == "tpu_vm":
            argvs.append(cloud_specs.trainer_argv_from_tpu_vm(unit["run"]))
            assert unit["resources"]["hosts"] == 4
        elif executor == "gke":  # one Kubernetes Job per host, as XManager would POST them
            jobs = [r["body"] for r in unit["requests"] if r["method"] == "POST" and r["path"].endswith("/jobs")]
            assert len(jobs) == 4
            pod = jobs[0]["spec"]["template"]["spec"]
            assert pod["nodeSelector"]["cloud.google.com/gke-tpu-topology"] == "2x2x4"
            assert pod["containers"][0]["resources"]["limits"]["google.com/tpu"] == "4"
            env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
            assert env["TPU_WORKER_ID"] == "0" and len(env["TPU_WORKER_HOSTNAMES"].split(",")) == 4
            argvs += [j["spec"]["template"]["spec"]["containers"][0]["args"] for j in jobs]
        else:  # Vertex: chief pool + workers pool, A100s mapped by XManager
            pools = unit["custom_job"]["worker_pool_specs"]
            assert [int(p["replica_count"]) for p in pools] == [1, 1]
            assert pools[0]["machine_spec"]["accelerator_type"] == "NVIDIA_TESLA_A100"
            assert pools[0]["machine_spec"]["accelerator_count"] == 8
            argvs += [p["container_spec"]["args"] for p in pools]
        assert unit["env"]["XM_WORK_UNIT_NAME"] == unit["work_unit"]
        for argv in argvs:
            assert argv[1:3] == ["-m", "flan_trainer"]
            _assert_round_trip(argv, gin_files)
            _, bindings, _ = parse_argv(argv)
            assert bindings["HELD_OUT_CLUSTER"] == repr(cluster) and bindings["TASK_SUITE"] == "'flan'"
            assert bindings["MODEL_DIR"] == repr(f"gs://bucket/sweep/{cluster}")


@needs_xm
def test_cloud_dry_run_refuses_what_cannot_work(tmp_path):
    common = ["--dry_run", "--clusters=nli", "--gin_file=runs/finetune.gin"]
    cases = [(["--executor=tpu_vm", "--accelerator_type=v4-32", "--zone=z", "--model_dir_root=/local"], "bucket"),
             (["--executor=gke", "--accelerator_type=v4-32", "--model_dir_root=gs://b/s"], "--image"),
             (["--executor=tpu_vm", "--accelerator_type=v4-33", "--zone=z", "--model_dir_root=gs://b/s"], "TensorCores"),
             (["--executor=vertex", "--accelerator_type=v4-8", "--image=i", "--model_dir_root=gs://b/s"], "v2/v3")]
    for args, words in cases:
        proc = _xm_launch(args + common, tmp_path)
        assert proc.returncode == 2 and words in proc.stderr, (args, proc.stderr[-2000:])
    proc = _xm_launch(["--executor=local", "--dry_run", "--clusters=nli,bogus", "--model_dir_root=/tmp/x",
                       "--gin_file=runs/quickstart.gin"], tmp_path)
    assert proc.returncode != 0 and "bogus" in proc.stderr and "sentiment" in proc.stderr


# A tiny, fast run of the quickstart: a few steps, a small held-out evaluation, no held-in clusters.
TINY_RUN = ["--gin_file=runs/quickstart.gin", f"--gin_file={REPO / 'tests' / 'data' / 'tiny_network.gin'}",
            "--gin.TRAIN_STEPS=4", "--gin.BATCH_SIZE=8",
            "--gin.TASK_FEATURE_LENGTHS={'inputs': 96, 'targets': 16}", "--gin.CHECKPOINT_PERIOD=4",
            "--gin.EVAL_PERIOD=1000", "--gin.HeldOutEval.final_max_examples=4",
            "--gin.HeldOutEval.held_in_clusters=()", "--log_level=WARNING"]


@needs_xm
@pytest.mark.slow
def test_two_cluster_sweep_through_xmanager_local_executor(tmp_path):
    root = tmp_path / "sweep"
    proc = _xm_launch(["--executor=local", "--suite=embedded", "--clusters=nli,sentiment", "--name=qs",
                       f"--model_dir_root={root}", *TINY_RUN], tmp_path, timeout=900)
    assert proc.returncode == 0, (proc.stdout[-4000:], proc.stderr[-4000:])
    # The experiment is in XManager's local store, with its two work units.
    with sqlite3.connect(tmp_path / ".xmanager" / "experiments.sqlite3") as db:
        experiments = db.execute("SELECT experiment_id, experiment_title FROM experiment").fetchall()
        work_units = db.execute("SELECT work_unit_id FROM work_unit ORDER BY work_unit_id").fetchall()
    assert len(experiments) == 1 and experiments[0][1] == "qs" and work_units == [(1,), (2,)]
    # Both work units trained, evaluated their held-out cluster, and recorded their launch ids.
    for cluster, wid in (("nli", 1), ("sentiment", 2)):
        results = json.loads((root / cluster / "eval" / "results.json").read_text())
        assert [c["cluster"] for c in results["clusters"] if c["status"] == "held-out"] == [cluster]
        assert (root / cluster / "checkpoint_4").is_dir()
        header = (root / cluster / "config.gin").read_text().splitlines()[:4]
        assert header == [f"# XM_EXPERIMENT_ID: {experiments[0][0]}", "# XM_EXPERIMENT_TITLE: qs",
                          f"# XM_WORK_UNIT_ID: {wid}", f"# XM_WORK_UNIT_NAME: qs-{cluster}"]
    # The sweep report: one row per cluster, a table and a plot.
    report = json.loads((root / "report" / "sweep_results.json").read_text())
    assert [r["cluster"] for r in report["clusters"]] == ["nli", "sentiment"] and not report["missing"]
    assert all(r["mean"] is not None and r["best"] is not None for r in report["clusters"])
    summary = (root / "report" / "sweep_summary.md").read_text()
    assert "| nli | held-out |" in summary and "| sentiment | held-out |" in summary
    assert (root / "report" / "clusters.png").stat().st_size > 1000
