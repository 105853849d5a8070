"""Joining a multi-process job: who the peers are (flags, environment, SLURM, TPU pod), bounded waits.

`detect` decides where the job description comes from, in this order:
  1. flags: `--coordinator_address`, `--num_processes`, `--process_id` (all three);
  2. environment: JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID (launch/ sets these);
  3. SLURM (`srun`): SLURM_JOB_ID, SLURM_NTASKS > 1, SLURM_PROCID, SLURM_STEP_NODELIST; jax derives
     the coordinator (first node) and its port (from the job id) the same way on every task;
  4. Vertex AI (several replicas): CLUSTER_SPEC; the coordinator is the first host of workerpool0;
  5. a Cloud TPU pod (TPU VM or GKE TPU slice with several workers): jax asks the TPU metadata
     (or reads TPU_WORKER_HOSTNAMES / TPU_WORKER_ID, as launch/ sets them on GKE).
Otherwise the run is single-process and nothing is initialised.

`initialize` joins with two bounds. A host that never arrives: a watchdog fails this process after
`initialization_timeout_s` with a one-line cause naming the coordinator and the process count (jax
itself would abort later, with a C++ stack trace). A peer lost during training: every survivor exits
non-zero within about `heartbeat_timeout_s`, naming it, instead of blocking in a collective forever.
When a collective with the lost peer fails first, main prints `lost_peer_message` ("lost process
N"); otherwise jax's coordination service stops the process itself, naming the task ("Task N
heartbeat timeout" / "stopped sending heartbeats: N"). Either way the checkpoints already written
stay, and relaunching every process resumes from the last one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator, Mapping

log = logging.getLogger(__name__)

DEFAULT_INITIALIZATION_TIMEOUT_S = 300
DEFAULT_HEARTBEAT_TIMEOUT_S = 100
VERTEX_COORDINATOR_PORT = 8476


# The exit status of a multi-host failure (flan_trainer.cli_errors lists the others).
EXIT_MULTIHOST = 5


class DistributedStartupError(RuntimeError):
    """The job could not be joined: a host never arrived, or the description is inconsistent."""


@dataclasses.dataclass(frozen=True)
class ClusterSpec:
    """How this process joins the job (`source` says where the description came from)."""

    source: str  # "flags" | "env" | "slurm" | "vertex" | "tpu" | "single"
    coordinator_address: str | None = None
    num_processes: int | None = None
    process_id: int | None = None
    initialization_timeout_s: int = DEFAULT_INITIALIZATION_TIMEOUT_S
    heartbeat_timeout_s: int = DEFAULT_HEARTBEAT_TIMEOUT_S

    @property
    def multi_process(self) -> bool:
        return self.source != "single"

    def describe(self) -> str:
        if self.source == "single":
            return "single process"
        who = "?" if self.process_id is None else self.process_id
        total = "?" if self.num_processes is None else self.num_processes
        where = self.coordinator_address or "(auto-detected)"
        return f"process {who} of {total} via {self.source}, coordinator {where}"


_FLAG_NAMES = ("coordinator_address", "num_processes", "process_id")
_ENV_NAMES = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")
_SLURM_NAMES = ("SLURM_JOB_ID", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_STEP_NODELIST")


def _explicit(values: Mapping[str, str | int | None], names: tuple[str, ...], what: str) -> tuple | None:
    given = [values.get(n) not in (None, "") for n in names]
    if not any(given):
        return None
    if not all(given):
        missing = [n for n, g in zip(names, given, strict=True) if not g]
        raise DistributedStartupError(f"{what} describe a multi-process job only in part: {missing} missing; "
                                      f"set all of {list(names)} (or none of them).")
    address, count, pid = (values[n] for n in names)
    try:
        count, pid = int(count), int(pid)
    except ValueError as e:
        raise DistributedStartupError(f"{what}: process count and id must be integers ({e})") from None
    if not 0 <= pid < count:
        raise DistributedStartupError(f"{what}: process id {pid} is not in [0, {count}).")
    return str(address), count, pid


def _vertex_cluster(cluster_spec: str | None) -> tuple[str, int, int] | None:
    """(coordinator, process count, process id) from Vertex AI's CLUSTER_SPEC, for several replicas."""
    if not cluster_spec:
        return None
    try:
        spec = json.loads(cluster_spec)
        pools = sorted((k, v) for k, v in spec["cluster"].items() if k.startswith("workerpool"))
        hosts = [h for _, pool in pools for h in pool]
        offset = sum(len(pool) for name, pool in pools if name < spec["task"]["type"])
        pid = offset + int(spec["task"]["index"])
    except (ValueError, KeyError, TypeError) as e:
        raise DistributedStartupError(f"CLUSTER_SPEC is not Vertex AI's cluster description ({e})") from None
    if len(hosts) < 2:
        return None
    return f"{hosts[0].rsplit(':', 1)[0]}:{VERTEX_COORDINATOR_PORT}", len(hosts), pid


def _tpu_pod_detected() -> bool:
    """True on a Cloud TPU VM / GKE TPU slice with more than one worker (jax's own detection)."""
    hostnames = os.environ.get("TPU_WORKER_HOSTNAMES", "")
    if "," in hostnames:
        return True
    try:  # jax's cluster classes read the TPU VM metadata; private API, so tolerate its absence.
        from jax._src.clusters import cloud_tpu_cluster
    except ImportError:
        return False
    try:
        if not cloud_tpu_cluster.GceTpuCluster.is_env_present():
            return False
        return len(cloud_tpu_cluster.GceTpuCluster._get_worker_list_in_slice()) > 1
    except Exception as e:  # metadata unreachable: say so, and run single-process
        log.warning("TPU VM detected but its worker list could not be read (%s); running single-process", e)
        return False


def detect(flags: Mapping[str, str | int | None] | None = None, environ: Mapping[str, str] | None = None, *,
           initialization_timeout_s: int = DEFAULT_INITIALIZATION_TIMEOUT_S,
           heartbeat_timeout_s: int = DEFAULT_HEARTBEAT_TIMEOUT_S, detect_tpu: bool = True) -> ClusterSpec:
    """The job this process belongs to; see the module docstring for the order of sources."""
    environ = os.environ if environ is None else environ
    timeouts = {"initialization_timeout_s": int(initialization_timeout_s),
                "heartbeat_timeout_s": int(heartbeat_timeout_s)}
    for source, values, names in (("flags", flags or {}, _FLAG_NAMES), ("env", environ, _ENV_NAMES)):
        found = _explicit(values, names, "--" + "/--".join(names) if source == "flags" else "/".join(names))
        if found:
            address, count, pid = found
            if count == 1:
                return ClusterSpec("single", **timeouts)
            return ClusterSpec(source, address, count, pid, **timeouts)
    if all(environ.get(n) for n in _SLURM_NAMES) and int(environ["SLURM_NTASKS"]) > 1:
        return ClusterSpec("slurm", None, int(environ["SLURM_NTASKS"]), int(environ["SLURM_PROCID"]), **timeouts)
    vertex = _vertex_cluster(environ.get("CLUSTER_SPEC"))
    if vertex:
        return ClusterSpec("vertex", *vertex, **timeouts)
    if detect_tpu and _tpu_pod_detected():
        return ClusterSpec("tpu", **timeouts)
    return ClusterSpec("single", **timeouts)


def _startup_failure(spec: ClusterSpec, cause: str) -> str:
    return (f"{spec.describe()}: the job was not complete within {spec.initialization_timeout_s}s ({cause}). "
            "Start every host with the same coordinator address and process count, check the "
            "coordinator is reachable, or raise --initialization_timeout_s.")


def _give_up(spec: ClusterSpec, cause: str) -> None:
    """The startup bound passed: say why in one line and leave (jax holds the main thread)."""
    print(f"error: {_startup_failure(spec, cause)}", file=sys.stderr, flush=True)
    os._exit(EXIT_MULTIHOST)


def initialize(spec: ClusterSpec) -> None:
    """Joins the job `spec` describes (no-op for a single process); a clear error instead of a hang."""
    if not spec.multi_process:
        return
    import jax

    explicit = spec.source in ("flags", "env", "vertex")
    if explicit and os.environ.get("JAX_PLATFORMS", "") == "cpu":
        # CPU processes need a cross-process collectives backend; gloo ships with jaxlib.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    # jax aborts the process (a C++ fatal error, no Python exception) when its own startup deadline
    # passes, so the configured bound is enforced by a watchdog here; jax's is a later backstop.
    kwargs = {"initialization_timeout": spec.initialization_timeout_s + 30,
              "heartbeat_timeout_seconds": spec.heartbeat_timeout_s}
    if explicit:
        kwargs.update(coordinator_address=spec.coordinator_address, num_processes=spec.num_processes,
                      process_id=spec.process_id)
    elif spec.source == "slurm":
        kwargs["cluster_detection_method"] = "slurm"
    log.info("joining the job: %s (startup timeout %ds, heartbeat timeout %ds)", spec.describe(),
             spec.initialization_timeout_s, spec.heartbeat_timeout_s)
    watchdog = threading.Timer(spec.initialization_timeout_s, _give_up, (spec, "no answer from every host"))
    watchdog.daemon = True
    watchdog.start()
    try:
        jax.distributed.initialize(**kwargs)
    except Exception as e:  # jax raises XlaRuntimeError (UNAVAILABLE, ...) for some failures
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DistributedStartupError(_startup_failure(spec, first[:300])) from e
    finally:
        watchdog.cancel()
    log.info("joined: process %d of %d, %d local / %d global devices", jax.process_index(),
             jax.process_count(), jax.local_device_count(), jax.device_count())


def lost_processes(spec: ClusterSpec, wait_s: float) -> list[int] | None:
    """The processes of the job that are gone, asked of the coordination service (None: unknown).

    The service's live-node query returns once every process it still considers alive has asked,
    i.e. at most one heartbeat timeout after a peer died; a daemon thread bounds the wait.
    """
    try:
        import jax
        from jax._src import distributed as jax_distributed
    except ImportError:
        return None
    client = jax_distributed.global_state.client
    if client is None:
        return None
    everyone = list(range(spec.num_processes or jax.process_count()))
    answer: dict = {}

    def probe() -> None:
        try:
            answer["live"] = client.get_live_nodes(everyone)
        except Exception as e:  # the service itself may be gone (the coordinator died)
            answer["error"] = e

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(wait_s)
    if "live" in answer:
        return sorted(set(everyone) - set(answer["live"]))
    if "error" in answer and spec.process_id not in (None, 0):
        return [0]  # the coordination service runs in process 0: it is the one that is gone
    return None


def lost_peer_message(spec: ClusterSpec, error: BaseException) -> str:
    """One line for a multi-process run whose collectives failed: who was lost, and what to do."""
    lost = lost_processes(spec, spec.heartbeat_timeout_s + 10)
    who = (f"lost process {', '.join(map(str, lost))}" if lost else "lost another process (which one the "
           "coordination service did not say in time)")
    first = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
    return (f"error: {spec.describe()}: {who} of the job during training ({first}). Relaunch every "
            "process: training resumes from the last checkpoint in MODEL_DIR.")


@contextlib.contextmanager
def exit_on_lost_peer(spec: ClusterSpec, report: Callable[[Exception], int] | None = None) -> Iterator[None]:
    """Around training: a collective that failed with a lost peer ends this process with exit code EXIT_MULTIHOST (5)
    and `lost_peer_message`, at once: a normal exit would wait in jax's shutdown barrier for a process
    that will never arrive. With `report` (prints the error line, returns the exit status), any other
    error of a multi-process run also ends the process at once: its peers may be waiting for it in a
    collective or a checkpoint barrier while it waits for them in the shutdown barrier, a deadlock;
    gone, it is named by their heartbeat check. Errors of a single-process run pass through."""
    try:
        yield
    except Exception as e:
        import jax

        if not spec.multi_process:
            raise
        if isinstance(e, jax.errors.JaxRuntimeError):
            log.exception("training stopped: a collective with another process failed")
            print(lost_peer_message(spec, e), file=sys.stderr, flush=True)
            os._exit(EXIT_MULTIHOST)
        if report is None:
            raise
        status = report(e)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
