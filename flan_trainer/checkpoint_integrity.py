"""Integrity of restored checkpoints: per-array fingerprints, and naming what is damaged.

Orbax (0.12) writes no checksum of array data: its zarr2/zstd chunks decode a flipped bit into a
wrong weight without any error, and its zarr3 layout checksums only the shard index. So every save
also writes a small manifest (the ``integrity`` item of a checkpoint): one 64-bit fingerprint per
array of the train state, computed on device from the global array values. A restore recomputes the
fingerprints of what it read and raises :class:`CheckpointCorruptError` naming each array that
differs. The fingerprint is a sum of the array's raw bits times odd position-dependent constants,
in wrapping uint32 arithmetic: exact on any mesh and in any reduction order, and a change of any
single element always changes it.

When a read itself fails (a truncated or undecodable file), :func:`diagnose_read_failure` reads the
arrays one at a time to name those that cannot be read, so the error says which parameter is bad
instead of a bare TensorStore traceback.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from etils import epath

log = logging.getLogger(__name__)

ITEM = "integrity"  # the Orbax item of a checkpoint_<step> dir that holds the manifest
FORMAT = "flan-jax-fingerprint-v1"
_MAX_LISTED = 8  # bad arrays named on the error's first line

PyTree = Any


class CheckpointCorruptError(RuntimeError):
    """A checkpoint's contents cannot be read, or differ from what was saved.

    ``bad`` maps each damaged array (``params/...``) to the cause; ``ckpt_dir`` is the checkpoint.
    """

    def __init__(self, ckpt_dir: str, bad: Mapping[str, str], hint: str = "") -> None:
        self.ckpt_dir, self.bad, self.hint = str(ckpt_dir), dict(bad), hint
        super().__init__(self._message())

    @property
    def summary(self) -> str:
        """'checkpoint X is damaged: N array(s) ...: names (first cause).' without the fix."""
        names = list(self.bad)
        shown = ", ".join(names[:_MAX_LISTED]) + (f" and {len(names) - _MAX_LISTED} more"
                                                  if len(names) > _MAX_LISTED else "")
        first_cause = self.bad[names[0]] if names else "unknown"
        return (f"checkpoint {self.ckpt_dir} is damaged: {len(names)} array(s) unreadable or not as saved: "
                f"{shown} ({first_cause}).")

    def _message(self) -> str:
        head = self.summary
        fix = self.hint or "Fix: restore another checkpoint_<step> directory; nothing was modified."
        details = "\n".join(f"  {name}: {cause}" for name, cause in self.bad.items())
        return f"{head} {fix}\n{details}"

    def with_hint(self, hint: str) -> CheckpointCorruptError:
        """The same error with another 'Fix: ...' sentence (the restore order knows the fallback)."""
        return CheckpointCorruptError(self.ckpt_dir, self.bad, hint)


# ----------------------------------------------------------------------------- fingerprints


def _key_name(key: Any) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def flat_with_names(tree: PyTree) -> dict[str, Any]:
    """'params/encoder/.../kernel' -> leaf (the same names as checkpoints' validation messages)."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {"/".join(_key_name(k) for k in path): leaf for path, leaf in leaves}


def _as_uint32(x: jax.Array) -> jax.Array:
    """The raw bits of each element as uint32 (8/16/32-bit types; bool as 0/1)."""
    x = x.reshape(-1)
    if x.dtype == jnp.bool_:
        return x.astype(jnp.uint32)
    width = x.dtype.itemsize
    if width == 8:  # only with jax_enable_x64: fold both halves
        bits = jax.lax.bitcast_convert_type(x, jnp.uint32)
        return (bits[:, 0] * jnp.uint32(0x9E3779B1)) ^ bits[:, 1]
    unsigned = {1: jnp.uint8, 2: jnp.uint16, 4: jnp.uint32}[width]
    return jax.lax.bitcast_convert_type(x, unsigned).astype(jnp.uint32)


def _fingerprint_one(x: jax.Array) -> jax.Array:
    u = _as_uint32(jnp.asarray(x))
    i = jnp.arange(u.shape[0], dtype=jnp.uint32)
    c1 = i * jnp.uint32(2654435761) + jnp.uint32(0x7F4A7C15) | jnp.uint32(1)  # odd: any change shows
    c2 = (i ^ jnp.uint32(0x5BD1E995)) * jnp.uint32(0x85EBCA6B) | jnp.uint32(1)
    return jnp.stack([jnp.sum(u * c1, dtype=jnp.uint32), jnp.sum((u ^ (i >> 3)) * c2, dtype=jnp.uint32)])


@jax.jit
def _fingerprint_tree(tree: PyTree) -> PyTree:
    return jax.tree.map(_fingerprint_one, tree)


def _host(x: Any) -> np.ndarray:
    # Fully replicated results: every process holds the whole value in its first shard.
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        return np.asarray(x.addressable_data(0))
    return np.asarray(x)


def fingerprints(tree: PyTree) -> dict[str, str]:
    """Name -> 16 hex digits, for every array leaf of ``tree`` (computed where the arrays live)."""
    named = {k: v for k, v in flat_with_names(tree).items() if hasattr(v, "dtype") or np.isscalar(v)}
    # One jitted call per set of devices (a jit cannot mix arrays committed to different ones);
    # a train state lives on one mesh, so that is normally a single call.
    groups: dict[Any, dict[str, Any]] = {}
    for k, v in named.items():
        key = tuple(sorted(d.id for d in v.sharding.device_set)) if isinstance(v, jax.Array) else None
        groups.setdefault(key, {})[k] = v
    out = {}
    for group in groups.values():
        for k, v in _fingerprint_tree(group).items():
            out[k] = "".join(f"{int(w):08x}" for w in _host(v))
    return out


def manifest(tree: PyTree) -> dict[str, Any]:
    """The JSON document saved as a checkpoint's ``integrity`` item."""
    return {"format": FORMAT, "arrays": fingerprints(tree)}


def verify(ckpt_dir: epath.PathLike, restored: PyTree, saved: Mapping[str, Any] | None,
           prefix: str = "") -> None:
    """Raise CheckpointCorruptError if any restored array differs from its saved fingerprint.

    ``saved`` is the checkpoint's manifest (None: a checkpoint written without one, e.g. by
    another tool; nothing to compare). ``prefix`` maps names of a partial restore (the params of
    a full state: 'params/') onto the manifest's names.
    """
    if saved is None:
        log.info("checkpoint %s has no integrity manifest; restored arrays are not verified", ckpt_dir)
        return
    if saved.get("format") != FORMAT:
        log.warning("checkpoint %s: unknown integrity manifest format %r; not verified", ckpt_dir,
                    saved.get("format"))
        return
    want = saved.get("arrays", {})
    got = fingerprints(restored)
    bad = {}
    for name, value in got.items():
        expected = want.get(prefix + name)
        if expected is not None and expected != value:
            bad[prefix + name] = f"checksum mismatch: saved {expected}, read {value}"
    if bad:
        raise CheckpointCorruptError(str(ckpt_dir), bad)


def read_manifest(ckpt_dir: epath.PathLike) -> dict[str, Any] | None:
    """The manifest saved with a checkpoint, None if it has none; damaged -> CheckpointCorruptError."""
    path = epath.Path(ckpt_dir) / ITEM / "metadata"  # where Orbax's JsonCheckpointHandler writes it
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointCorruptError(str(ckpt_dir), {f"{ITEM}/metadata": f"unreadable: {e}"}) from e


# ----------------------------------------------------------------------------- read failures


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    # TensorStore appends the whole JSON spec to its messages; the status before it is the cause.
    return text.split(" [tensorstore_spec=")[0][:300]


def _array_names(state_dir: epath.Path) -> tuple[dict[str, str], bool, bool]:
    """{our name ('params/a/b'): Orbax's array name ('params.a.b')}, use_ocdbt, use_zarr3."""
    meta = json.loads((state_dir / "_METADATA").read_text())
    names = {}
    for entry in meta.get("tree_metadata", {}).values():
        value = entry.get("value_metadata", {})
        if value.get("skip_deserialize") or value.get("value_type") not in ("np.ndarray", "jax.Array"):
            continue
        keys = [str(k["key"]) for k in entry["key_metadata"]]
        names["/".join(keys)] = ".".join(keys)
    return names, bool(meta.get("use_ocdbt", True)), bool(meta.get("use_zarr3", False))


def unreadable_arrays(state_dir: epath.PathLike, only: set[str] | None = None) -> dict[str, str]:
    """Read every array of an Orbax PyTree item one by one; name -> cause for those that fail.

    Slow (one read per array) but only used after a restore failed, to say what is damaged.
    """
    import tensorstore as ts
    from orbax.checkpoint._src.serialization import tensorstore_utils as ts_utils

    state_dir = epath.Path(state_dir)
    try:
        names, use_ocdbt, use_zarr3 = _array_names(state_dir)
    except Exception as e:  # noqa: BLE001 - a damaged _METADATA is itself the finding
        return {"_METADATA": f"unreadable: {_first_line(e)}"}
    context = ts_utils.get_ts_context(use_ocdbt=use_ocdbt)
    bad = {}
    for name, stored in names.items():
        if only is not None and name not in only:
            continue
        spec = {"driver": "zarr3" if use_zarr3 else "zarr",
                "kvstore": ts_utils.build_kvstore_tspec(str(state_dir), stored, use_ocdbt=use_ocdbt)}
        try:
            ts.open(spec, open=True, read=True, context=context).result().read().result()
        except Exception as e:  # noqa: BLE001 - every cause is reported, by array
            bad[name] = _first_line(e)
    return bad


def diagnose_read_failure(ckpt_dir: epath.PathLike, state_item: str,
                          only: set[str] | None = None) -> CheckpointCorruptError | None:
    """After Orbax failed to read a checkpoint: an error naming the arrays that cannot be read.

    None when every array reads on its own: the failure was not the checkpoint's contents (e.g.
    memory, or a sharding the devices cannot hold), and the caller re-raises the original error.
    """
    bad = unreadable_arrays(epath.Path(ckpt_dir) / state_item, only)
    return CheckpointCorruptError(str(ckpt_dir), bad) if bad else None
