"""What each executor would submit for one work unit: command line, environment, resources.

Every spec carries the trainer's argv (`python -m flan_trainer ...`) unchanged, so
`launch.experiment.parse_argv` reads the same gin files and bindings back from any of them.

- TPU VM (`tpu_vm_spec`, pure Python): the `gcloud compute tpus tpu-vm create` command for the slice
  and the `ssh --worker=all` command that starts the same trainer command on every host at once
  (jax finds its peers from the TPU metadata; flan_trainer.distributed).
- GKE and Vertex AI (`xm_launch.py`): built by XManager's own code (its Kubernetes client with the
  API calls recorded instead of sent, its Vertex machine-spec mapping).

`check_model_dir` is the validation all multi-host cloud runs share: every host must write the same
MODEL_DIR, so it has to be a bucket (gs://...), not a path on one machine.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence

from launch.accelerators import Slice
from launch.experiment import Job

TRAINER_PYTHON = "python"  # in a container image: the image's python (no ENTRYPOINT needed)


class SpecError(ValueError):
    """A launch that cannot work as specified (one-line cause and fix)."""


def check_model_dir(model_dir_root: str, executor: str) -> None:
    if "://" not in model_dir_root:
        raise SpecError(f"--model_dir_root={model_dir_root!r} is a local path, but {executor} hosts do not share "
                        "a disk: give a bucket every host can write, e.g. --model_dir_root=gs://BUCKET/sweeps/NAME")


def tpu_vm_spec(job: Job, tpu_slice: Slice, *, tpu_name: str, zone: str, project: str | None,
                repo_dir: str, runtime_version: str, env: Mapping[str, str]) -> dict:
    """The create and run commands for one work unit on its own TPU VM slice `tpu_name`."""
    if tpu_slice.kind != "tpu":
        raise SpecError(f"--executor=tpu_vm needs a TPU accelerator type (e.g. v4-32), got {tpu_slice.accelerator_type}")
    where = [f"--zone={zone}"] + ([f"--project={project}"] if project else [])
    create = ["gcloud", "compute", "tpus", "tpu-vm", "create", tpu_name, *where,
              f"--accelerator-type={tpu_slice.accelerator_type}", f"--version={runtime_version}"]
    argv = job.argv(".venv/bin/python")
    env_words = [f"{k}={v}" for k, v in env.items()]
    # `cd` first (the repo holds the gin files and the venv); `env` so values need no shell syntax.
    remote = f"cd {_shell_path(repo_dir)} && " + shlex.join(["env", *env_words, *argv] if env_words else argv)
    run = ["gcloud", "compute", "tpus", "tpu-vm", "ssh", tpu_name, *where, "--worker=all", f"--command={remote}"]
    return {"create": create, "run": run, "command": argv, "env": dict(env),
            "resources": {**tpu_slice.as_dict(), "tpu_name": tpu_name, "zone": zone, "runtime_version": runtime_version}}


def _shell_path(path: str) -> str:
    """Quotes a path for the remote shell, leaving a leading ~/ unquoted so that it expands."""
    if path == "~" or path.startswith("~/"):
        rest = path[2:]
        return "~/" + shlex.quote(rest) if rest else "~"
    return shlex.quote(path)


def trainer_argv_from_tpu_vm(run: Sequence[str]) -> list[str]:
    """The trainer argv inside a `gcloud ... ssh --command=...` command (what every host runs)."""
    remote = next(a for a in run if a.startswith("--command="))[len("--command="):]
    words = shlex.split(remote)
    words = words[words.index("&&") + 1:]
    if words and words[0] == "env":
        words = words[1:]
        while words and "=" in words[0] and not words[0].startswith("-"):
            words = words[1:]
    return words
