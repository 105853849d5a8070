"""Export T5X params to a Hugging Face T5ForConditionalGeneration directory.

Writes config.json and safetensors weights (one file, or shards plus
``model.safetensors.index.json``), and optionally the SentencePiece tokenizer (spiece.model +
tokenizer_config.json), so ``from_pretrained`` loads the directory. The safetensors writer streams:
the header is computed from shapes alone, then tensors are fetched from the devices and written
one at a time, so host memory holds one tensor beyond the parameters.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
import struct
from collections.abc import Mapping
from typing import Any

import jax
import ml_dtypes
import numpy as np

from flan_trainer import layer_stacking
from flan_trainer.interop import hf_names
from flan_trainer.interop.hf_names import ConversionError, T5Shape, TensorRule

_DTYPE_NAMES = {np.dtype("float32"): "F32", np.dtype(ml_dtypes.bfloat16): "BF16", np.dtype("float16"): "F16"}


def _unwrap(params: Mapping[str, Any]) -> Mapping[str, Any]:
    # Accept the variables dict ({'params': tree}) as well as the tree itself.
    if set(params) == {"params"}:
        return params["params"]
    return params


def _fetch(leaf: Any) -> np.ndarray:
    """The full value of a (possibly sharded, possibly multi-host) array on this host."""
    if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
        from jax.experimental import multihost_utils  # noqa: PLC0415 - multi-host only

        return np.asarray(multihost_utils.process_allgather(leaf, tiled=True))
    return np.asarray(leaf)


def _check_tree(params: Mapping[str, Any], rules: list[TensorRule]) -> None:
    found = hf_names.flatten_paths(params)
    expected = {r.path for r in rules}
    extra = sorted("/".join(p) for p in set(found) - expected)
    if extra:
        raise ConversionError(f"parameters with no Hugging Face name: {extra}")
    for rule in rules:
        leaf = hf_names.get_path(params, rule.path)
        hf_names.check_shape(rule, tuple(leaf.shape), str(leaf.dtype), side="T5X")


def t5x_to_hf_value(rule: TensorRule, leaf: Any, dtype: np.dtype) -> np.ndarray:
    """One T5X leaf as its HF tensor (torch [out, in] layout) in ``dtype``."""
    value = _fetch(leaf)
    if rule.transpose:
        value = value.T
    return np.ascontiguousarray(value, dtype=dtype)


def _plan_shards(rules: list[TensorRule], itemsize: int, max_shard_bytes: int | None) -> list[list[TensorRule]]:
    shards: list[list[TensorRule]] = [[]]
    size = 0
    for rule in rules:
        nbytes = int(np.prod(rule.shape)) * itemsize
        if max_shard_bytes and shards[-1] and size + nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(rule)
        size += nbytes
    return shards


def write_safetensors(path: str | os.PathLike, rules: list[TensorRule], params: Mapping[str, Any],
                      dtype: np.dtype) -> int:
    """Stream the tensors of ``rules`` into one safetensors file; returns the bytes of data written."""
    dtype = np.dtype(dtype)
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for rule in rules:
        nbytes = int(np.prod(rule.hf_shape)) * dtype.itemsize
        header[rule.hf_key] = {"dtype": _DTYPE_NAMES[dtype], "shape": list(rule.hf_shape),
                               "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # the format recommends 8-byte aligned data
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for rule in rules:
            value = t5x_to_hf_value(rule, hf_names.get_path(params, rule.path), dtype)
            f.write(memoryview(value.reshape(-1).view(np.uint8)))
            del value
    return offset


def _config_dict(config: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(config):
        return dataclasses.asdict(config)
    return dict(config)


def write_tokenizer(out_dir: str | os.PathLike, spm_path: str | os.PathLike, *, extra_ids: int = 100,
                    model_max_length: int = 512) -> None:
    """Copy a SentencePiece model as spiece.model and describe it for ``T5Tokenizer``."""
    out = pathlib.Path(out_dir)
    shutil.copyfile(spm_path, out / "spiece.model")
    tok_config = {
        "tokenizer_class": "T5Tokenizer",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": "<pad>",
        "extra_ids": extra_ids,
        "additional_special_tokens": [f"<extra_id_{i}>" for i in range(extra_ids)],
        "model_max_length": model_max_length,
        "legacy": False,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(tok_config, indent=2) + "\n")


def export_hf(
    params: Mapping[str, Any],
    config: Any,
    out_dir: str | os.PathLike,
    *,
    spm_path: str | os.PathLike | None = None,
    dtype: Any = np.float32,
    max_shard_bytes: int | None = None,
) -> pathlib.Path:
    """Write ``params`` (T5X tree) and ``config`` (TransformerConfig) as an HF T5 directory.

    Only process 0 writes in a multi-host job (all processes must call it: gathering is
    collective). ``max_shard_bytes`` splits the weights into ``model-0000k-of-0000n.safetensors``
    with an index. Returns ``out_dir``.
    """
    # HF names layers one by one: a scanned run's stacked 'layers' are split first.
    params = layer_stacking.unstack_layers(_unwrap(params))
    cfg = _config_dict(config)
    hf_config = hf_names.t5x_config_to_hf(cfg)
    rules = hf_names.tensor_rules(T5Shape.from_config(cfg))
    _check_tree(params, rules)
    dtype = np.dtype(dtype)
    if dtype not in _DTYPE_NAMES:
        raise ConversionError(f"export dtype {dtype} unsupported; use one of {sorted(map(str, _DTYPE_NAMES))}")
    hf_config["dtype"] = str(dtype)
    out = pathlib.Path(out_dir)
    write = jax.process_index() == 0
    if write:
        out.mkdir(parents=True, exist_ok=True)
    shards = _plan_shards(rules, dtype.itemsize, max_shard_bytes)
    weight_map: dict[str, str] = {}
    total = 0
    for i, shard in enumerate(shards):
        name = "model.safetensors" if len(shards) == 1 else f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        if write:
            total += write_safetensors(out / name, shard, params, dtype)
        else:  # still take part in the collective gathers
            for rule in shard:
                _fetch(hf_names.get_path(params, rule.path))
        weight_map.update({rule.hf_key: name for rule in shard})
    if not write:
        return out
    if len(shards) > 1:
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    (out / "config.json").write_text(json.dumps(hf_config, indent=2, sort_keys=True) + "\n")
    if spm_path is not None:
        write_tokenizer(out, spm_path)
    return out
