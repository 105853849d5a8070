"""Import a Hugging Face T5 checkpoint (safetensors or PyTorch .bin, sharded or not) as T5X params.

Tensors are streamed one at a time: read from disk, converted (transpose / dtype) and placed on
their target sharding before the next one is read, so host memory beyond the placed parameters is
bounded by about two copies of the largest tensor (the read and its transpose).

- safetensors is parsed here (8-byte header length, JSON header, raw little-endian data) and each
  tensor is read with a plain ``readinto``: no file-wide mmap stays resident, and bfloat16 works
  without torch.
- ``.bin`` goes through ``torch.load(mmap=True, weights_only=True)``: torch's restricted unpickler
  refuses arbitrary objects and mmap keeps tensors on disk until touched.
"""

from __future__ import annotations

import json
import os
import pathlib
import struct
from collections.abc import Iterator
from typing import Any

import jax
import ml_dtypes
import numpy as np
from jax.sharding import Mesh

from flan_trainer.interop import hf_names, placement
from flan_trainer.interop.hf_names import ConversionError, T5Shape, TensorRule

SAFETENSORS_DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "BF16": np.dtype(ml_dtypes.bfloat16), "I64": np.dtype("<i8"), "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"), "I8": np.dtype("i1"), "U8": np.dtype("u1"), "BOOL": np.dtype("?"),
}
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")


# ----------------------------------------------------------------------------- readers


class SafetensorsFile:
    """Header of one .safetensors file; reads single tensors on demand."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = pathlib.Path(path)
        with open(self.path, "rb") as f:
            (header_len,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(header_len))
        header.pop("__metadata__", None)
        self.entries: dict[str, dict[str, Any]] = header
        self.data_start = 8 + header_len

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self.entries[key]["shape"])

    def dtype(self, key: str) -> str:
        return self.entries[key]["dtype"]

    def read(self, key: str) -> np.ndarray:
        entry = self.entries[key]
        if entry["dtype"] not in SAFETENSORS_DTYPES:
            raise ConversionError(f"{key}: unsupported safetensors dtype {entry['dtype']} in {self.path}")
        begin, end = entry["data_offsets"]
        out = np.empty(entry["shape"], SAFETENSORS_DTYPES[entry["dtype"]])
        if out.nbytes != end - begin:
            raise ConversionError(f"{key}: header says {end - begin} bytes but shape {entry['shape']} needs "
                                  f"{out.nbytes} ({self.path})")
        with open(self.path, "rb") as f:
            f.seek(self.data_start + begin)
            f.readinto(memoryview(out.reshape(-1).view(np.uint8)))
        return out


class TorchBinFile:
    """One pytorch_model.bin (zip format) opened lazily with torch's safe unpickler."""

    def __init__(self, path: str | os.PathLike) -> None:
        import torch  # noqa: PLC0415 - only .bin checkpoints need torch

        self.path = pathlib.Path(path)
        self._torch = torch
        self.tensors = torch.load(self.path, map_location="cpu", mmap=True, weights_only=True)
        if not isinstance(self.tensors, dict):
            raise ConversionError(f"{self.path} holds a {type(self.tensors).__name__}, not a state dict")
        self.entries = self.tensors

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self.tensors[key].shape)

    def dtype(self, key: str) -> str:
        return str(self.tensors[key].dtype).removeprefix("torch.")

    def read(self, key: str) -> np.ndarray:
        t = self.tensors[key].detach()
        if t.dtype == self._torch.bfloat16:  # numpy has no bfloat16: reinterpret the bits
            return t.contiguous().view(self._torch.int16).numpy().view(ml_dtypes.bfloat16).copy()
        return t.contiguous().numpy().copy()


class HFCheckpoint:
    """All tensors of an HF model directory, across shards, by state-dict key."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = pathlib.Path(directory)
        self._files: dict[str, SafetensorsFile | TorchBinFile] = {}
        self.key_to_file = self._index()

    def _index(self) -> dict[str, str]:
        d = self.directory
        for single, index, kind in (("model.safetensors", "model.safetensors.index.json", "st"),
                                    ("pytorch_model.bin", "pytorch_model.bin.index.json", "bin")):
            self.kind = kind
            if (d / index).exists():
                return dict(json.loads((d / index).read_text())["weight_map"])
            if (d / single).exists():
                return dict.fromkeys(self._file(single).entries, single)
        raise FileNotFoundError(f"no Hugging Face weights in {d}: looked for {', '.join(WEIGHT_FILES)}")

    def _file(self, name: str) -> SafetensorsFile | TorchBinFile:
        if name not in self._files:
            if self.kind == "bin":
                self._files.clear()  # keep one shard's mmap open at a time
            path = self.directory / name
            self._files[name] = SafetensorsFile(path) if self.kind == "st" else TorchBinFile(path)
        return self._files[name]

    def keys(self) -> list[str]:
        return list(self.key_to_file)

    def shape(self, key: str) -> tuple[int, ...]:
        return self._file(self.key_to_file[key]).shape(key)

    def dtype(self, key: str) -> str:
        return self._file(self.key_to_file[key]).dtype(key)

    def read(self, key: str) -> np.ndarray:
        return self._file(self.key_to_file[key]).read(key)

    def keys_by_file(self, keys: list[str]) -> Iterator[str]:
        """``keys`` grouped by the shard that holds them (one shard open at a time for .bin)."""
        order = {name: i for i, name in enumerate(dict.fromkeys(self.key_to_file.values()))}
        yield from sorted(keys, key=lambda k: order[self.key_to_file[k]])


# ----------------------------------------------------------------------------- conversion


def read_hf_config(directory: str | os.PathLike) -> dict[str, Any]:
    """The model's config.json as a dict."""
    path = pathlib.Path(directory) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: an HF model directory needs config.json next to its weights")
    return json.loads(path.read_text())


def _lm_head_layout(hf_config: dict[str, Any], ckpt: HFCheckpoint) -> tuple[bool, str, float]:
    """(tied, lm_head source key, scale folded into logits_dense) for this checkpoint."""
    has_head = "lm_head.weight" in ckpt.key_to_file
    tied = not has_head
    if has_head and hf_config.get("tie_word_embeddings", True) and hf_config.get("scale_decoder_outputs") is not False:
        # .bin files store tied heads as a second name for the same storage: compare to decide.
        # (Unscaled models skip this: a head equal to the embedding converts the same either way.)
        tied = bool(np.array_equal(ckpt.read("lm_head.weight"), ckpt.read("shared.weight")))
    scale = hf_names.hf_scales_decoder_output(hf_config)
    if tied and scale:
        return True, "lm_head.weight", 1.0  # T5X logits_via_embedding (rescales by itself)
    source = "shared.weight" if tied else "lm_head.weight"
    return False, source, float(hf_config["d_model"]) ** -0.5 if scale else 1.0


def hf_to_t5x_value(rule: TensorRule, value: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """One HF tensor in T5X layout and ``dtype`` (transpose to [in, out], fold any scale)."""
    if rule.transpose:
        value = value.T
    value = np.ascontiguousarray(value, dtype=np.float32 if rule.scale != 1.0 else dtype)
    if rule.scale != 1.0:
        value = (value * np.float32(rule.scale)).astype(dtype)
    return value


def _check_keys(ckpt: HFCheckpoint, rules: list[TensorRule]) -> None:
    wanted = {r.hf_key for r in rules}
    present = set(ckpt.keys())
    missing = sorted(wanted - present)
    extra = sorted(present - wanted - hf_names.IGNORABLE_HF_KEYS - {"lm_head.weight"})
    if missing or extra:
        raise ConversionError(
            f"{ckpt.directory} does not match its config.json: missing {missing or 'nothing'}; "
            f"unexpected {extra or 'nothing'}"
        )


def _make_config(kwargs: dict[str, Any]) -> Any:
    from flan_trainer.models.config import TransformerConfig  # noqa: PLC0415 - built alongside

    return TransformerConfig(**kwargs)


def import_hf(
    directory: str | os.PathLike,
    *,
    mesh: Mesh | None = None,
    sharding_fn: placement.ShardingFn | None = None,
    param_dtype: Any = np.float32,
    config_overrides: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], Any]:
    """Read an HF T5ForConditionalGeneration directory into (params, TransformerConfig).

    ``params`` is the T5X tree (``token_embedder/embedding``, ``encoder/layers_0/...``), the
    content of the model's ``'params'`` collection. Each leaf is placed on ``sharding_fn(path,
    shape, logical_axes)``, or on the logical-axis sharding over ``mesh``, or on one device.
    ``config_overrides`` replaces TransformerConfig fields that HF does not carry (e.g. ``dtype``).
    """
    directory = pathlib.Path(directory)
    hf_config = read_hf_config(directory)
    ckpt = HFCheckpoint(directory)
    tied, head_key, head_scale = _lm_head_layout(hf_config, ckpt)
    kwargs = hf_names.hf_config_to_t5x(hf_config, lm_head_tied=tied)
    kwargs.update(config_overrides or {})
    config = _make_config(kwargs)
    rules = hf_names.tensor_rules(T5Shape.from_config(config), lm_head_key=head_key, lm_head_scale=head_scale)
    _check_keys(ckpt, rules)
    for rule in rules:  # all shapes first: fail before reading gigabytes
        hf_names.check_shape(rule, ckpt.shape(rule.hf_key), ckpt.dtype(rule.hf_key))
    if sharding_fn is None:
        sharding_fn = placement.mesh_sharding_fn(mesh) if mesh is not None else placement.single_device_sharding_fn()
    by_key: dict[str, list[TensorRule]] = {}
    for rule in rules:
        by_key.setdefault(rule.hf_key, []).append(rule)
    params: dict[str, Any] = {}
    for key in ckpt.keys_by_file(list(by_key)):
        raw = ckpt.read(key)
        for rule in by_key[key]:  # shared.weight may feed both the embedding and the head
            value = hf_to_t5x_value(rule, raw, np.dtype(param_dtype))
            hf_names.set_path(params, rule.path, placement.place(value, sharding_fn(rule.path, rule.shape,
                                                                                    rule.logical_axes)))
            del value
        del raw
    jax.block_until_ready(params)
    return params, config
