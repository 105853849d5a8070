"""Cloud accelerator slices: parse `v4-32`, `v5litepod-16`, `v5p-128`, `a100x8`; hosts, chips, topology.

Pure Python (no xmanager, no jax), shared by the dry runs of every executor. A TPU slice's
accelerator type is `<generation>-<N>`; for v2, v3, v4 and v5p N counts TensorCores (2 per chip),
for v5litepod/v5e, v6e and v7x it counts chips. One TPU VM host drives 4 chips (v2/v3: 4 chips of 2
cores, i.e. 8 cores), except the single-host 8-chip v5e/v6e shapes. A topology (`2x2x4`), when
given, must multiply out to the slice's chip count.
"""

from __future__ import annotations

import dataclasses
import math
import re

# generation -> (name in XManager's ResourceType, N counts cores?, GKE accelerator label, dims)
_TPU = {
    "v2": ("tpu_v2", True, None, 2),
    "v3": ("tpu_v3", True, None, 2),
    "v4": ("tpu_v4", True, "tpu-v4-podslice", 3),
    "v5p": ("tpu_v5p", True, "tpu-v5p-slice", 3),
    "v5litepod": ("tpu_v5e", False, "tpu-v5-lite-podslice", 2),
    "v5e": ("tpu_v5e", False, "tpu-v5-lite-podslice", 2),
    "v6e": ("tpu_v6e", False, "tpu-v6e-slice", 2),
    "v7x": ("tpu_v7x", False, "tpu7x", 3),
}
_GPU = {"a100", "h100", "h200", "l4", "v100", "t4", "p100", "p4", "a100_80gib"}


class AcceleratorError(ValueError):
    """An accelerator type or topology that does not describe a real slice."""


@dataclasses.dataclass(frozen=True)
class Slice:
    """One accelerator slice: what to ask the cloud for, and how many hosts (processes) it has."""

    accelerator_type: str  # as given: v4-32, v5litepod-16, a100x8, cpu
    kind: str  # "tpu" | "gpu" | "cpu"
    generation: str  # v4, v5litepod, a100, cpu
    chips: int  # TPU chips / GPUs in the whole slice
    hosts: int  # processes to start (one per host)
    chips_per_host: int
    topology: str | None  # TPU chip topology, e.g. 2x2x4
    xm_resource: str | None  # XManager ResourceType name: tpu_v4, a100, ...
    gke_accelerator: str | None  # cloud.google.com/gke-tpu-accelerator / gke-accelerator label

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _default_topology(chips: int, dims: int) -> str:
    """The squarest topology of `chips` chips with `dims` dimensions (what gcloud picks)."""
    shape = [1] * dims
    remaining, i = chips, dims - 1
    while remaining > 1:
        shape[i] *= 2
        remaining //= 2
        i = (i - 1) % dims
    # Ascending, with any 1s last: 2x2x1, 2x2x4, 4x4x4, 4x4 (gcloud's and GKE's spelling).
    return "x".join(map(str, sorted(shape, key=lambda d: (d == 1, d))))


def _check_topology(topology: str, chips: int, dims: int, accelerator_type: str) -> str:
    if not re.fullmatch(r"\d+(x\d+)+", topology):
        raise AcceleratorError(f"topology {topology!r} is not of the form AxB or AxBxC")
    sizes = [int(x) for x in topology.split("x")]
    if len(sizes) != dims:
        raise AcceleratorError(f"{accelerator_type} takes a {dims}-D topology, got {topology!r}")
    if math.prod(sizes) != chips:
        raise AcceleratorError(f"topology {topology} has {math.prod(sizes)} chips but {accelerator_type} "
                               f"has {chips}; give a topology whose product is {chips}")
    return topology


def parse(accelerator_type: str, topology: str | None = None) -> Slice:
    """The slice `accelerator_type` names; raises AcceleratorError with the valid forms."""
    text = accelerator_type.strip().lower()
    if text == "cpu":
        return Slice("cpu", "cpu", "cpu", 0, 1, 0, None, None, None)
    gpu = re.fullmatch(r"([a-z]+\d*(?:_80gib)?)x(\d+)(?:x(\d+))?", text)
    if gpu and gpu.group(1) in _GPU:
        per_host, hosts = int(gpu.group(2)), int(gpu.group(3) or 1)
        return Slice(accelerator_type, "gpu", gpu.group(1), per_host * hosts, hosts, per_host, None,
                     gpu.group(1), f"nvidia-tesla-{gpu.group(1)}")  # XManager's GKE label
    tpu = re.fullmatch(r"(v\d+[a-z]*)-(\d+)", text)
    if not tpu or tpu.group(1) not in _TPU:
        raise AcceleratorError(
            f"unknown accelerator type {accelerator_type!r}: give a TPU slice (e.g. v4-32, v5p-64, "
            f"v5litepod-16, v6e-8; generations {', '.join(_TPU)}), GPUs per host and hosts (a100x8, "
            f"h100x8x2; {', '.join(sorted(_GPU))}) or cpu")
    generation, n = tpu.group(1), int(tpu.group(2))
    xm_name, counts_cores, gke, dims = _TPU[generation]
    if counts_cores and n % 2:
        raise AcceleratorError(f"{accelerator_type}: {generation} sizes count TensorCores (2 per chip), "
                               "so the number must be even (e.g. v4-8, v4-32)")
    chips = n // 2 if counts_cores else n
    single_host_8 = not counts_cores and chips <= 8
    chips_per_host = min(chips, 8 if single_host_8 else 4)
    hosts = max(1, chips // chips_per_host)
    topology = _check_topology(topology, chips, dims, accelerator_type) if topology else (
        _default_topology(chips, dims))
    return Slice(accelerator_type, "tpu", generation, chips, hosts, chips_per_host, topology, xm_name, gke)
