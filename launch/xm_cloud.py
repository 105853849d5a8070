"""GKE and Vertex AI through XManager: the specs it submits (dry run), and the submission itself.

GKE: XManager's Kubernetes client builds one Kubernetes Job per xm.Job, all under the headless
service `experiments` (so a pod is reachable at `<its job name>.experiments`). A multi-host slice is
one work unit holding an xm.JobGroup with one job per host. XManager 0.8.5 requests GPUs but
ignores TPU resources on GKE, so `tpu_slice_support` adds what a TPU slice node pool needs: the
`google.com/tpu` limit per host, and the `cloud.google.com/gke-tpu-accelerator` and
`gke-tpu-topology` node selectors; each host gets TPU_WORKER_HOSTNAMES / TPU_WORKER_ID, which jax
reads to find its peers (flan_trainer.distributed). GPU hosts get JAX_COORDINATOR_ADDRESS etc.
The dry run runs XManager's own `Client.launch` with an API client that records each request
(method, path, body) instead of sending it: what is printed is what would be POSTed.

Vertex AI: the worker pools XManager's Vertex client builds (its `get_machine_spec`, its argv
escaping), one CustomJob per work unit; XManager maps TPU v2/v3 and GPUs there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from launch.accelerators import Slice
from launch.cloud_specs import TRAINER_PYTHON
from launch.experiment import Job

COORDINATOR_PORT = 8476
SERVICE = "experiments"  # XManager's headless service for its Kubernetes jobs


@contextlib.contextmanager
def tpu_slice_support(tpu_slice: Slice) -> Iterator[None]:
    """Makes XManager's GKE executor request a TPU slice's hosts (it ignores TPUs otherwise)."""
    from xmanager.cloud import kubernetes as xm_k8s

    if tpu_slice.kind != "tpu":
        yield
        return
    original_limits, original_selector = xm_k8s.requirements_from_executor, xm_k8s.node_selector_from_executor

    def limits(executor):
        requirements = original_limits(executor)
        requirements.limits = {**(requirements.limits or {}), "google.com/tpu": str(tpu_slice.chips_per_host)}
        return requirements

    def selector(executor):
        return {**original_selector(executor), "cloud.google.com/gke-tpu-accelerator": tpu_slice.gke_accelerator,
                "cloud.google.com/gke-tpu-topology": tpu_slice.topology}

    xm_k8s.requirements_from_executor, xm_k8s.node_selector_from_executor = limits, selector
    try:
        yield
    finally:
        xm_k8s.requirements_from_executor, xm_k8s.node_selector_from_executor = original_limits, original_selector


def _host_names(full_job_name: Callable[[str], str], hosts: int) -> list[str]:
    from xmanager.cloud import kubernetes as xm_k8s

    return [xm_k8s.convert_to_valid_label(full_job_name(f"host{i}")) for i in range(hosts)]


def gke_job_group(xm, xm_local, image: str, job: Job, tpu_slice: Slice, requirements, ids_env: dict,
                  full_job_name: Callable[[str], str]):
    """One xm.Job per host of the slice, each with what its process needs to find the others."""
    from xmanager.xm_local import executables as local_executables

    executable = local_executables.GoogleContainerRegistryImage(name="flan-trainer", image_path=image)
    hosts = _host_names(full_job_name, tpu_slice.hosts)
    jobs = {}
    for pid in range(tpu_slice.hosts):
        env = dict(ids_env)
        if tpu_slice.hosts > 1 and tpu_slice.kind == "tpu":
            env.update(TPU_WORKER_HOSTNAMES=",".join(f"{h}.{SERVICE}" for h in hosts), TPU_WORKER_ID=str(pid))
        elif tpu_slice.hosts > 1:
            env.update(JAX_COORDINATOR_ADDRESS=f"{hosts[0]}.{SERVICE}:{COORDINATOR_PORT}",
                       JAX_NUM_PROCESSES=str(tpu_slice.hosts), JAX_PROCESS_ID=str(pid))
        executor = xm_local.Kubernetes(requirements=requirements)
        jobs[f"host{pid}"] = xm.Job(executable, executor, args=job.argv(TRAINER_PYTHON), env_vars=env,
                                    name=f"host{pid}")
    return xm.JobGroup(**jobs)


def _recording_api_client():
    from kubernetes import client as k8s_client

    class RecordingApiClient(k8s_client.ApiClient):
        """Records every Kubernetes API request instead of sending it (the dry run)."""

        def __init__(self) -> None:
            super().__init__(k8s_client.Configuration())
            self.requests: list[dict] = []

        def call_api(self, resource_path, method, path_params=None, query_params=None, header_params=None,
                     body=None, *args, **kwargs):
            path = resource_path.format(**(path_params or {}))
            self.requests.append({"method": method, "path": path, "body": self.sanitize_for_serialization(body)})
            return k8s_client.V1ServiceList(items=[]) if method == "GET" else None

    return RecordingApiClient()


def gke_dry_run(args, jobs: list[tuple[dict, Job]], tpu_slice: Slice, requirements_fn, ids_env_fn) -> list[dict]:
    """Per work unit: the trainer argv, the environment and the API requests XManager would make."""
    from xmanager import xm, xm_local
    from xmanager.cloud import kubernetes as xm_k8s

    specs = []
    with tpu_slice_support(tpu_slice):
        for i, (_, job) in enumerate(jobs):
            wid = i + 1
            full_name = lambda name, wid=wid: f"0_{wid}_{name}"  # noqa: E731  experiment id 0: assigned at submit
            ids = ids_env_fn("<assigned at submit>", args.name, wid, job.name)
            group = gke_job_group(xm, xm_local, args.image, job, tpu_slice, requirements_fn(xm, tpu_slice),
                                  ids, full_name)
            api = _recording_api_client()
            xm_k8s.Client(api_client=api).launch(full_name, list(group.jobs.values()))
            posted = [r for r in api.requests if r["method"] == "POST" and r["path"].endswith("/jobs")]
            container = posted[0]["body"]["spec"]["template"]["spec"]["containers"][0]
            specs.append({"work_unit": job.name, "command": container["args"],
                          "env": {e["name"]: e["value"] for e in container.get("env", [])},
                          "resources": {**tpu_slice.as_dict(), "limits": container["resources"].get("limits"),
                                        "node_selector": posted[0]["body"]["spec"]["template"]["spec"].get("nodeSelector")},
                          "requests": api.requests})
    return specs


def vertex_job_group(xm, xm_local, image: str, job: Job, tpu_slice: Slice, requirements_fn, ids_env: dict):
    """Vertex AI: the chief (pool 0, one replica) and, for several hosts, the workers (pool 1)."""
    from xmanager.xm_local import executables as local_executables

    executable = local_executables.GoogleContainerRegistryImage(name="flan-trainer", image_path=image)
    jobs = {"chief": xm.Job(executable, xm_local.Vertex(requirements=requirements_fn(xm, tpu_slice, 1)),
                            args=job.argv(TRAINER_PYTHON), env_vars=ids_env, name="chief")}
    if tpu_slice.hosts > 1:
        jobs["workers"] = xm.Job(executable, xm_local.Vertex(requirements=requirements_fn(xm, tpu_slice, tpu_slice.hosts - 1)),
                                 args=job.argv(TRAINER_PYTHON), env_vars=ids_env, name="workers")
    return xm.JobGroup(**jobs)


def vertex_dry_run(args, jobs: list[tuple[dict, Job]], tpu_slice: Slice, requirements_fn, ids_env_fn) -> list[dict]:
    """Per work unit: the worker pools of the CustomJob XManager's Vertex client would submit."""
    from google.cloud.aiplatform_v1.types import ContainerSpec, WorkerPoolSpec
    from xmanager import xm, xm_local
    from xmanager.cloud import vertex as xm_vertex
    from xmanager.xm import utils as xm_utils

    specs = []
    for i, (_, job) in enumerate(jobs):
        ids = ids_env_fn("<assigned at submit>", args.name, i + 1, job.name)
        group = vertex_job_group(xm, xm_local, args.image, job, tpu_slice, requirements_fn, ids)
        pools = []
        for xm_job in group.jobs.values():  # the same steps as xmanager.cloud.vertex.Client.launch
            argv = xm.merge_args(xm_job.executable.args, xm_job.args).to_list(xm_utils.ARGV_ESCAPER)
            env = [{"name": k, "value": v} for k, v in {**xm_job.executable.env_vars, **xm_job.env_vars}.items()]
            pool = WorkerPoolSpec(machine_spec=xm_vertex.get_machine_spec(xm_job),
                                  container_spec=ContainerSpec(image_uri=args.image, args=argv, env=env),
                                  replica_count=xm_job.executor.requirements.replicas)
            pools.append(WorkerPoolSpec.to_dict(pool, use_integers_for_enums=False))
        specs.append({"work_unit": job.name, "command": pools[0]["container_spec"]["args"],
                      "env": {e["name"]: e["value"] for e in pools[0]["container_spec"]["env"]},
                      "resources": {**tpu_slice.as_dict(), "machine_spec": pools[0]["machine_spec"]},
                      "custom_job": {"display_name": job.name, "location": args.region,
                                     "worker_pool_specs": pools}})
    return specs


async def submit(args, jobs: list[tuple[dict, Job]], tpu_slice: Slice, requirements_fn, ids_env_fn) -> dict[str, Any]:
    """Submits every work unit through XManager (needs cloud credentials and network)."""
    from xmanager import xm, xm_local

    with tpu_slice_support(tpu_slice):
        async with xm_local.create_experiment(experiment_title=args.name) as experiment:
            def generator(job: Job):
                async def add_work_unit(work_unit, **_):
                    ids = ids_env_fn(work_unit.experiment_id, args.name, work_unit.work_unit_id, job.name)
                    if args.executor == "gke":
                        group = gke_job_group(xm, xm_local, args.image, job, tpu_slice,
                                              requirements_fn(xm, tpu_slice), ids, work_unit.get_full_job_name)
                    else:
                        group = vertex_job_group(xm, xm_local, args.image, job, tpu_slice, requirements_fn, ids)
                    work_unit.add(group)
                return add_work_unit

            for _, job in jobs:
                experiment.add(generator(job))
            return {"experiment_id": experiment.experiment_id, "title": args.name}
