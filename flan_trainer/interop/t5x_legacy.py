"""Read T5X checkpoints: the older msgpack + TensorStore layout, and Orbax ones via our checkpoints.

Legacy layout (T5X's ``checkpoints.Checkpointer`` before Orbax) of a ``checkpoint_<step>/`` dir:
- ``checkpoint``: a flax msgpack of ``{'version': int, 'optimizer': {'target': params,
  'state': {'step': ..., 'param_states': {...}}}}``. Leaves written to TensorStore are replaced by
  their TensorStore spec (a dict with ``driver`` and ``kvstore``), whose file path is relative to
  the checkpoint directory; small leaves (the step, empty Adafactor slots) are stored inline.
- one zarr array per TensorStore leaf, in a directory named by the dotted path, e.g.
  ``target.encoder.layers_0.attention.query.kernel`` or
  ``state.param_states.encoder.layers_0.attention.query.kernel.v_row``.

Each parameter is read slice by slice straight into its target sharding, so a device only reads
its own part of each array.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
import tensorstore as ts
from flax import serialization
from jax.sharding import Mesh

from flan_trainer import layer_stacking
from flan_trainer.interop import hf_names, placement
from flan_trainer.interop.hf_names import ConversionError, Path, T5Shape

CHECKPOINT_FILE = "checkpoint"
_LAYER_RE = re.compile(r"^layers_(\d+)$")


@dataclasses.dataclass
class T5XCheckpoint:
    """What a T5X checkpoint import yields.

    ``param_states`` is the Adafactor state in T5X's own layout (per parameter: ``v_row``,
    ``v_col``, ``v``, ``m``), host numpy arrays, or None for a params-only checkpoint.
    """

    params: dict[str, Any]
    config: Any
    step: int | None
    param_states: dict[str, Any] | None = None


# ----------------------------------------------------------------------------- config from shapes


def infer_config_kwargs(shapes: Mapping[Path, tuple[int, ...]]) -> dict[str, Any]:
    """TransformerConfig keyword arguments implied by a T5X parameter tree's shapes.

    Recovers everything structural; fields the tree cannot show (relative_attention_max_distance,
    layer_norm_epsilon, dropout_rate, dtype) keep their defaults.
    """
    def need(path: Path) -> tuple[int, ...]:
        if path not in shapes:
            raise ConversionError(f"parameter {'/'.join(path)} is missing; cannot infer the model shape")
        return tuple(shapes[path])

    vocab, emb = need(("token_embedder", "embedding"))
    heads, buckets = need(("encoder", "relpos_bias", "rel_embedding"))
    joined = need(("encoder", "layers_0", "attention", "query", "kernel"))[1]
    mlp_names = sorted({p[3] for p in shapes if p[:3] == ("encoder", "layers_0", "mlp") and p[3] != "wo"})
    mlp_dim = need(("encoder", "layers_0", "mlp", mlp_names[0], "kernel"))[1]

    def count(stack: str) -> int:
        return len({p[1] for p in shapes if p[0] == stack and _LAYER_RE.match(p[1])})

    if joined % heads:
        raise ConversionError(f"query kernel width {joined} is not a multiple of {heads} heads")
    # T5X names activations only by position; T5.1.1's gated GELU is the only 2-way one in use.
    activations = ("relu",) if mlp_names == ["wi"] else ("gelu", "linear")
    return {
        "vocab_size": vocab, "emb_dim": emb, "num_heads": heads, "head_dim": joined // heads,
        "mlp_dim": mlp_dim, "num_encoder_layers": count("encoder"), "num_decoder_layers": count("decoder"),
        "mlp_activations": activations, "relative_attention_num_buckets": buckets,
        "logits_via_embedding": ("decoder", "logits_dense", "kernel") not in shapes,
    }


def _config_and_rules(shapes: Mapping[Path, tuple[int, ...]], overrides: Mapping[str, Any] | None):
    from flan_trainer.models.config import TransformerConfig  # noqa: PLC0415 - built alongside

    kwargs = infer_config_kwargs(shapes)
    kwargs.update(overrides or {})
    config = TransformerConfig(**kwargs)
    rules = hf_names.tensor_rules(T5Shape.from_config(config))
    expected = {r.path for r in rules}
    missing = sorted("/".join(p) for p in expected - set(shapes))
    extra = sorted("/".join(p) for p in set(shapes) - expected)
    if missing or extra:
        raise ConversionError(f"T5X parameter tree does not match a T5 model: missing {missing or 'nothing'}; "
                              f"unexpected {extra or 'nothing'}")
    for rule in rules:
        hf_names.check_shape(rule, tuple(shapes[rule.path]), "?", side="T5X")
    return config, rules


# ----------------------------------------------------------------------------- legacy reader


def _is_ts_spec(node: Any) -> bool:
    return isinstance(node, Mapping) and "driver" in node and ("kvstore" in node or "path" in node)


def _absolute_spec(spec: Mapping[str, Any], ckpt_dir: pathlib.Path, dotted: str) -> dict[str, Any]:
    """The spec with its file path resolved against the checkpoint directory.

    Relative paths are joined to ``ckpt_dir``; absolute or remote (gs://) paths that do not
    exist here fall back to the dotted name inside ``ckpt_dir`` (a checkpoint copied elsewhere).
    """
    spec = dict(spec)
    kv = spec.get("kvstore")
    rel = kv.get("path", "") if isinstance(kv, Mapping) else spec.get("path", "")
    if isinstance(kv, str):
        rel = kv.split("://", 1)[-1]
    candidate = pathlib.Path(rel) if os.path.isabs(rel) else ckpt_dir / rel
    if not candidate.exists():
        candidate = ckpt_dir / dotted
    spec.pop("path", None)
    spec["kvstore"] = {"driver": "file", "path": str(candidate)}
    return spec


def _flatten_msgpack(tree: Mapping[str, Any], prefix: Path = ()) -> dict[Path, Any]:
    out: dict[Path, Any] = {}
    for key, value in tree.items():
        path = (*prefix, str(key))
        if isinstance(value, Mapping) and not _is_ts_spec(value):
            out.update(_flatten_msgpack(value, path))
        else:
            out[path] = value
    return out


class _Leaf:
    """One checkpoint leaf: an inline numpy value, or a TensorStore array opened on first use.

    Opening on first use means a parameters-only import never touches optimizer-state files (an
    unreadable one cannot block it).
    """

    def __init__(self, value: Any, ckpt_dir: pathlib.Path, dotted: str) -> None:
        self.dotted = dotted
        self.inline = None if _is_ts_spec(value) else np.asarray(value)
        self._spec = None if self.inline is not None else _absolute_spec(value, ckpt_dir, dotted)
        self._store = None

    @property
    def store(self) -> Any:
        if self._store is None and self._spec is not None:
            try:
                self._store = ts.open(self._spec, open=True, read=True).result()
            except Exception as e:  # noqa: BLE001 - re-raised with the parameter's name
                raise ConversionError(f"cannot open TensorStore array for {self.dotted} at "
                                      f"{self._spec['kvstore']['path']}: {e}") from e
        return self._store

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.inline.shape if self.inline is not None else self.store.shape)

    def read(self, index: tuple[slice, ...] = ()) -> np.ndarray:
        if self.inline is not None:
            return np.asarray(self.inline[index])
        try:
            return np.asarray(self.store[index].read().result())
        except ConversionError:
            raise
        except Exception as e:  # noqa: BLE001 - re-raised with the parameter's name
            raise ConversionError(f"cannot read TensorStore array for {self.dotted} at "
                                  f"{self._spec['kvstore']['path']}: {e}") from e


def _resolve_dir(path: pathlib.Path) -> pathlib.Path:
    """The checkpoint dir of any form T5X accepts: the msgpack file, a step dir, or a model dir.

    A step dir is one holding the ``checkpoint`` file; a model dir resolves to its latest
    checkpoint_<step> child that holds one.
    """
    if path.is_file() and path.name == CHECKPOINT_FILE:
        return path.parent
    if (path / CHECKPOINT_FILE).is_file():
        return path
    steps = sorted(
        (int(m.group(1)), child) for child in path.glob("checkpoint_*")
        if (m := re.fullmatch(r"checkpoint_(\d+)", child.name)) and (child / CHECKPOINT_FILE).is_file()
    )
    if not steps:
        raise FileNotFoundError(f"no T5X '{CHECKPOINT_FILE}' msgpack file in {path} or its checkpoint_<step> dirs")
    return steps[-1][1]


def read_legacy_tree(path: str | os.PathLike) -> tuple[dict[Path, Any], int | None, pathlib.Path]:
    """(flat {path: leaf} of the whole state, step, resolved checkpoint dir); arrays stay on disk."""
    ckpt_dir = _resolve_dir(pathlib.Path(path))
    contents = serialization.msgpack_restore((ckpt_dir / CHECKPOINT_FILE).read_bytes())
    state = contents.get("optimizer", contents)  # T5X wraps the state dict under 'optimizer'
    if "target" not in state:
        raise ConversionError(f"{ckpt_dir / CHECKPOINT_FILE} has no 'target' (parameters); keys: {sorted(state)}")
    flat = {p: _Leaf(v, ckpt_dir, ".".join(p)) for p, v in _flatten_msgpack(state).items()}
    step_leaf = flat.pop(("state", "step"), None)
    step = int(step_leaf.read()) if step_leaf is not None else None
    return flat, step, ckpt_dir


def import_t5x_legacy(
    path: str | os.PathLike,
    *,
    mesh: Mesh | None = None,
    sharding_fn: placement.ShardingFn | None = None,
    param_dtype: Any = np.float32,
    config_overrides: Mapping[str, Any] | None = None,
    with_optimizer_state: bool = True,
) -> T5XCheckpoint:
    """Import a legacy T5X checkpoint: its msgpack file, its step dir, or a model dir (latest step).

    Only the arrays that are imported are opened: with ``with_optimizer_state=False`` no
    optimizer-state file is touched. Parameters are placed like :func:`flan_trainer.interop.hf_import.import_hf` places them.
    """
    flat, step, _ = read_legacy_tree(path)
    param_leaves = {p[1:]: leaf for p, leaf in flat.items() if p[0] == "target"}
    config, rules = _config_and_rules({p: leaf.shape for p, leaf in param_leaves.items()}, config_overrides)
    if sharding_fn is None:
        sharding_fn = placement.mesh_sharding_fn(mesh) if mesh is not None else placement.single_device_sharding_fn()
    dtype = np.dtype(param_dtype)
    params: dict[str, Any] = {}
    for rule in rules:
        leaf = param_leaves[rule.path]
        sharding = sharding_fn(rule.path, rule.shape, rule.logical_axes)
        value = placement.place_lazy(rule.shape, lambda idx, leaf=leaf: leaf.read(idx).astype(dtype), sharding)
        hf_names.set_path(params, rule.path, value)
    states = None
    if with_optimizer_state:
        prefix = ("state", "param_states")
        found = {p[2:]: leaf for p, leaf in flat.items() if p[:2] == prefix}
        if found:
            states = {}
            for p, leaf in found.items():
                hf_names.set_path(states, p, leaf.read())
    jax.block_until_ready(params)
    params = layer_stacking.to_layout(params, config.scan_layers)
    return T5XCheckpoint(params=params, config=config, step=step, param_states=states)


# ----------------------------------------------------------------------------- orbax


def import_t5x_orbax(
    path: str | os.PathLike,
    *,
    mesh: Mesh | None = None,
    sharding_fn: placement.ShardingFn | None = None,
    config_overrides: Mapping[str, Any] | None = None,
) -> T5XCheckpoint:
    """Parameters of an Orbax checkpoint written by flan_trainer.checkpoints, onto any mesh.

    The model shape is read from the checkpoint's metadata, so no config is needed.
    """
    from flan_trainer import checkpoints  # noqa: PLC0415 - keeps interop importable alone

    ckpt_dir = checkpoints.resolve_checkpoint_dir(path)
    meta = checkpoints._state_metadata(ckpt_dir)  # noqa: SLF001 - the shapes, without reading arrays
    found = checkpoints._params_of(meta)  # noqa: SLF001
    meta_params = found[1] if found is not None else meta
    # A scanned run's checkpoint holds stacked 'layers'; shapes are read in the per-layer layout.
    meta_params = jax.tree.map(lambda m: jax.ShapeDtypeStruct(tuple(m.shape), m.dtype), _to_dict(meta_params))
    flat = hf_names.flatten_paths(layer_stacking.unstack_layers(meta_params))
    shapes = {p[1:] if p[0] == "params" else p: tuple(m.shape) for p, m in flat.items()}
    config, rules = _config_and_rules(shapes, config_overrides)
    if sharding_fn is None:
        sharding_fn = placement.mesh_sharding_fn(mesh) if mesh is not None else placement.single_device_sharding_fn()
    abstract: dict[str, Any] = {}
    for rule in rules:
        sds = jax.ShapeDtypeStruct(rule.shape, np.float32, sharding=sharding_fn(rule.path, rule.shape,
                                                                                 rule.logical_axes))
        hf_names.set_path(abstract, rule.path, sds)
    wrapped = ("params" in {p[0] for p in flat}) and len({p[0] for p in flat}) == 1
    params = checkpoints.restore_params_only(ckpt_dir, {"params": abstract} if wrapped else abstract)
    params = params["params"] if wrapped else params
    step = int(ckpt_dir.name.rsplit("_", 1)[-1]) if re.fullmatch(r"checkpoint_\d+", ckpt_dir.name) else None
    params = layer_stacking.to_layout(_to_dict(params), config.scan_layers)
    return T5XCheckpoint(params=params, config=config, step=step)


def _to_dict(tree: Any) -> dict[str, Any]:
    if isinstance(tree, Mapping):
        return {str(k): _to_dict(v) for k, v in tree.items()}
    return tree
