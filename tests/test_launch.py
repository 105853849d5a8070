"""Launch scripts: commands they build, the held-out sweep, and their argument checks (nothing is run remotely)."""

import shlex

import pytest

from launch import local, sweep_held_out, tpu_vm
from launch.experiment import Job, held_out_sweep


def test_job_argv_uses_t5x_flag_style():
    job = Job("x", ("runs/finetune.gin", "held_out/nli.gin"), {"TRAIN_STEPS": "100"}, extra_flags=("--dry_run",))
    assert job.argv("py") == ["py", "-m", "flan_trainer", "--gin_file=runs/finetune.gin",
                              "--gin_file=held_out/nli.gin", "--gin.TRAIN_STEPS=100", "--dry_run"]


def test_held_out_sweep_gives_each_cluster_its_own_model_dir():
    jobs = held_out_sweep(Job("s", ("runs/quickstart.gin",)), ["nli", "sentiment"], "/tmp/sweep/")
    assert [j.gin_overrides["HELD_OUT_CLUSTER"] for j in jobs] == ["'nli'", "'sentiment'"]
    assert [j.gin_overrides["MODEL_DIR"] for j in jobs] == ["'/tmp/sweep/nli'", "'/tmp/sweep/sentiment'"]
    assert len({j.name for j in jobs}) == 2


def test_tpu_vm_command_starts_every_worker(capsys):
    assert tpu_vm.main(["--tpu=pod", "--zone=z", "--gin_file=runs/finetune.gin", "--gin.MODEL_DIR='gs://b/r'"]) == 0
    cmd = shlex.split(capsys.readouterr().out)
    assert cmd[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "pod"]
    assert "--worker=all" in cmd
    remote = next(a for a in cmd if a.startswith("--command="))
    assert "-m flan_trainer --gin_file=runs/finetune.gin" in remote and "gs://b/r" in remote


def test_tpu_vm_refuses_a_job_without_model_dir():
    with pytest.raises(SystemExit):
        tpu_vm.main(["--tpu=pod", "--zone=z", "--gin_file=runs/finetune.gin"])


def test_sweep_lists_valid_clusters_for_an_unknown_one(capsys):
    with pytest.raises(SystemExit):
        sweep_held_out.main(["--suite=embedded", "--clusters=nli,bogus", "--model_dir_root=/tmp/x",
                             "--platform=print", "--gin_file=runs/quickstart.gin"])
    err = capsys.readouterr().err
    assert "bogus" in err and "sentiment" in err and "coreference" in err


def test_sweep_print_platform_prints_one_command_per_cluster(capsys):
    assert sweep_held_out.main(["--suite=embedded", "--clusters=nli,sentiment", "--model_dir_root=/tmp/x",
                                "--platform=print", "--gin_file=runs/quickstart.gin"]) == 0
    lines = [shlex.split(line) for line in capsys.readouterr().out.splitlines() if "flan_trainer" in line]
    assert len(lines) == 2
    assert "--gin.HELD_OUT_CLUSTER='nli'" in lines[0] and "--gin.MODEL_DIR='/tmp/x/sentiment'" in lines[1]


def test_local_print_only(capsys):
    assert local.main(["--print_only", "--gin_file=runs/quickstart.gin", "--gin.TRAIN_STEPS=5"]) == 0
    out = capsys.readouterr().out
    assert "-m flan_trainer --gin_file=runs/quickstart.gin --gin.TRAIN_STEPS=5" in out
