"""Put host tensors straight into their target shardings, one at a time.

Importers hand each converted tensor to :func:`place` as soon as it is read, so host memory holds
at most one checkpoint tensor beyond the placed parameters themselves. A tensor converted into a
:func:`host_buffer` costs nothing extra on the CPU backend: jax adopts a 64-byte-aligned,
C-contiguous host array as the device buffer instead of copying it (on an accelerator the host
buffer is freed once copied).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec, Sharding

from flan_trainer import partitioning

ShardingFn = Callable[[tuple[str, ...], tuple[int, ...], Sequence[str]], Sharding]


def logical_sharding(mesh: Mesh, shape: tuple[int, ...], logical_axes: Sequence[str],
                     rules: Sequence[tuple[str, str | None]] | None = None) -> NamedSharding:
    """NamedSharding (default rules: ``partitioning.standard_logical_axis_rules()``) for a parameter from its logical axes.

    As in T5X, the rules for a logical name are tried in order and the first mesh axis that is
    still free wins (a ``None`` rule stops the search: replicate). A mesh axis is also skipped when
    ``mesh`` lacks it or it does not divide the dimension, so any mesh can receive any checkpoint.
    """
    rules = rules if rules is not None else partitioning.standard_logical_axis_rules()
    used: set[str] = set()
    spec: list[str | None] = []
    for dim, name in zip(shape, logical_axes, strict=True):
        chosen = None
        for logical, axis in rules:
            if logical != name:
                continue
            if axis is None:
                break
            if axis in used or axis not in mesh.shape or dim % mesh.shape[axis]:
                continue
            chosen = axis
            break
        if chosen is not None:
            used.add(chosen)
        spec.append(chosen)
    return NamedSharding(mesh, PartitionSpec(*spec))


def mesh_sharding_fn(mesh: Mesh, rules: Sequence[tuple[str, str | None]] | None = None) -> ShardingFn:
    """A sharding function (path, shape, logical_axes) -> Sharding over ``mesh``."""
    return lambda _path, shape, axes: logical_sharding(mesh, shape, axes, rules)


def single_device_sharding_fn() -> ShardingFn:
    """Everything on the first local device (the default when no mesh is given)."""
    sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    return lambda _path, _shape, _axes: sharding


def host_buffer(shape: tuple[int, ...], dtype: np.dtype | type, align: int = 64) -> np.ndarray:
    """An uninitialised C-contiguous array whose data starts on an ``align``-byte boundary.

    numpy only guarantees malloc's 16 bytes; jax's CPU client aliases (zero-copy) host arrays that
    are 64-byte aligned and copies the others, so converting into this buffer saves one copy.
    """
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    raw = np.empty(nbytes + align, np.uint8)
    start = -raw.ctypes.data % align
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def place(value: np.ndarray, sharding: Sharding) -> jax.Array:
    """A global jax.Array from a host array; each device copies only its own slice."""
    return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])


def place_lazy(shape: tuple[int, ...], read_slice: Callable[[tuple[slice, ...]], np.ndarray],
               sharding: Sharding) -> jax.Array:
    """Like :func:`place`, for sources that can read a slice without reading the whole tensor."""
    return jax.make_array_from_callback(shape, sharding, read_slice)
