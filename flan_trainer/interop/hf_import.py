"""Import a Hugging Face T5 checkpoint (safetensors or PyTorch .bin, sharded or not) as T5X params.

Tensors are streamed one at a time and never held whole on the host more than once: each one is
read in blocks of leading-axis rows (at most ``BLOCK_BYTES``) into one reused staging buffer, and
each block is converted (transpose / dtype / scale) straight into its place in the T5X-layout
destination, which is then handed to its sharding. The destination is 64-byte aligned, so jax's
CPU backend adopts it as the device buffer without a copy. Host memory beyond the placed
parameters is therefore about one staging block (one more copy of the tensor being placed where
jax has to copy, e.g. into shards over several devices).

- safetensors is parsed here (8-byte header length, JSON header, raw little-endian data) and read
  with plain ``readinto`` calls: no mmap, so no file-backed pages are counted in the process's
  RSS, and bfloat16 works without torch.
- ``.bin`` goes through ``torch.load(mmap=True, weights_only=True)``: torch's restricted unpickler
  refuses arbitrary objects and mmap keeps tensors on disk until touched. Blocks are views of that
  mmap (no anonymous copy), but the pages read stay mapped, and so in RSS, until the shard is
  closed; the kernel may drop them (clean, file-backed) under memory pressure.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import struct
from collections.abc import Iterable, Iterator
from typing import Any

import jax
import ml_dtypes
import numpy as np
from jax.sharding import Mesh

from flan_trainer import layer_stacking
from flan_trainer.interop import hf_names, placement
from flan_trainer.interop.hf_names import ConversionError, T5Shape, TensorRule

SAFETENSORS_DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "BF16": np.dtype(ml_dtypes.bfloat16), "I64": np.dtype("<i8"), "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"), "I8": np.dtype("i1"), "U8": np.dtype("u1"), "BOOL": np.dtype("?"),
}
BLOCK_BYTES = 8 * 2**20  # one staging read: the host transient beyond the placed parameters
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

    def itemsize(self, key: str) -> int:
        return self._locate(key)[0].itemsize

    def _locate(self, key: str) -> tuple[np.dtype, tuple[int, ...], int]:
        """(numpy dtype, shape, absolute file offset) of ``key``, checked against its byte range."""
        entry = self.entries[key]
        if entry["dtype"] not in SAFETENSORS_DTYPES:
            raise ConversionError(f"{key}: unsupported safetensors dtype {entry['dtype']} in {self.path}")
        dtype, shape = SAFETENSORS_DTYPES[entry["dtype"]], tuple(entry["shape"])
        begin, end = entry["data_offsets"]
        if math.prod(shape) * dtype.itemsize != end - begin:
            raise ConversionError(f"{key}: header says {end - begin} bytes but shape {list(shape)} needs "
                                  f"{math.prod(shape) * dtype.itemsize} ({self.path})")
        return dtype, shape, self.data_start + begin

    def read(self, key: str) -> np.ndarray:
        """The whole tensor (one fresh array)."""
        dtype, shape, start = self._locate(key)
        out = np.empty(shape, dtype)
        with open(self.path, "rb", buffering=0) as f:
            f.seek(start)
            _read_exact(f, out, key)
        return out

    def blocks(self, key: str, rows: int) -> Iterator[np.ndarray]:
        """The tensor's leading-axis rows, ``rows`` at a time, read into one reused buffer.

        Each block is overwritten by the next: consume (copy out of) it before advancing.
        """
        dtype, shape, start = self._locate(key)
        if not shape:
            yield self.read(key)
            return
        buf = np.empty((max(1, min(rows, shape[0])), *shape[1:]), dtype)
        with open(self.path, "rb", buffering=0) as f:
            f.seek(start)
            for r0 in range(0, shape[0], rows):
                block = buf[:min(rows, shape[0] - r0)]
                _read_exact(f, block, key)
                yield block


def _read_exact(f: Any, out: np.ndarray, key: str) -> None:
    """Fill the C-contiguous ``out`` from ``f``'s current position."""
    view = memoryview(out.reshape(-1).view(np.uint8))
    done = 0
    while done < len(view):
        n = f.readinto(view[done:])
        if not n:
            raise ConversionError(f"{key}: file ends {len(view) - done} bytes early ({f.name})")
        done += n


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

    def itemsize(self, key: str) -> int:
        return self.tensors[key].element_size()

    def _numpy(self, t: Any) -> np.ndarray:
        """A numpy view of a contiguous tensor (bfloat16: reinterpret the bits, numpy has none)."""
        if t.dtype == self._torch.bfloat16:
            return t.view(self._torch.int16).numpy().view(ml_dtypes.bfloat16)
        return t.numpy()

    def read(self, key: str) -> np.ndarray:
        return self._numpy(self.tensors[key].detach().contiguous()).copy()

    def blocks(self, key: str, rows: int) -> Iterator[np.ndarray]:
        """Leading-axis rows, ``rows`` at a time, as views of the mmap (no copy when contiguous)."""
        t = self.tensors[key].detach().contiguous()
        if t.dim() == 0:
            yield self.read(key)
            return
        for r0 in range(0, t.shape[0], rows):
            yield self._numpy(t[r0:r0 + rows])


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

    def itemsize(self, key: str) -> int:
        return self._file(self.key_to_file[key]).itemsize(key)

    def read(self, key: str) -> np.ndarray:
        return self._file(self.key_to_file[key]).read(key)

    def blocks(self, key: str, rows: int | None = None) -> Iterator[np.ndarray]:
        """``key`` in blocks of leading-axis rows (default: as many as fit in ``BLOCK_BYTES``)."""
        rows = rows or rows_per_block(self.shape(key), self.itemsize(key))
        return self._file(self.key_to_file[key]).blocks(key, rows)

    def keys_by_file(self, keys: list[str]) -> Iterator[str]:
        """``keys`` grouped by the shard that holds them (one shard open at a time for .bin)."""
        order = {name: i for i, name in enumerate(dict.fromkeys(self.key_to_file.values()))}
        yield from sorted(keys, key=lambda k: order[self.key_to_file[k]])


# ----------------------------------------------------------------------------- conversion


def rows_per_block(shape: tuple[int, ...], itemsize: int) -> int:
    """How many leading-axis rows of a tensor fit in ``BLOCK_BYTES`` (at least one)."""
    return max(1, BLOCK_BYTES // max(1, itemsize * math.prod(shape[1:])))


def _tensors_equal(ckpt: HFCheckpoint, a: str, b: str) -> bool:
    """``np.array_equal`` of two checkpoint tensors, compared block by block."""
    if ckpt.shape(a) != ckpt.shape(b):
        return False
    rows = rows_per_block(ckpt.shape(a), max(ckpt.itemsize(a), ckpt.itemsize(b)))
    return all(np.array_equal(x, y) for x, y in zip(ckpt.blocks(a, rows), ckpt.blocks(b, rows), strict=True))


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
        tied = _tensors_equal(ckpt, "lm_head.weight", "shared.weight")
    scale = hf_names.hf_scales_decoder_output(hf_config)
    if tied and scale:
        return True, "lm_head.weight", 1.0  # T5X logits_via_embedding (rescales by itself)
    source = "shared.weight" if tied else "lm_head.weight"
    return False, source, float(hf_config["d_model"]) ** -0.5 if scale else 1.0


def hf_to_t5x_value(rule: TensorRule, value: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """One whole HF tensor in T5X layout and ``dtype`` (transpose to [in, out], fold any scale)."""
    return convert_blocks([rule], [value], dtype)[0]


def convert_blocks(rules: list[TensorRule], blocks: Iterable[np.ndarray], dtype: np.dtype) -> list[np.ndarray]:
    """Fill one T5X-layout :func:`placement.host_buffer` per rule from one HF tensor's row blocks.

    All ``rules`` read the same HF tensor (``shared.weight`` may feed both the embedding and the
    head). Each block is transposed, scaled and cast straight into its slice of the destination,
    so no whole-tensor intermediate exists; elementwise, the arithmetic is that of converting the
    whole tensor at once (cast to ``dtype``; with a scale: cast to float32, multiply, cast).
    """
    outs = [placement.host_buffer(rule.shape, dtype) for rule in rules]
    targets = [out.T if rule.transpose else out for rule, out in zip(rules, outs, strict=True)]  # HF-layout views
    r0 = 0
    for block in blocks:
        r1 = r0 + (len(block) if block.ndim else 1)
        for rule, target in zip(rules, targets, strict=True):
            dst = target[r0:r1] if block.ndim else target
            if rule.scale != 1.0:
                dst[...] = block.astype(np.float32) * np.float32(rule.scale)
            else:
                dst[...] = block
        r0 = r1
    if rules and r0 != (rules[0].hf_shape[0] if rules[0].hf_shape else 1):
        raise ConversionError(f"{rules[0].hf_key}: read {r0} rows, expected {rules[0].hf_shape}")
    return outs


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
        key_rules = by_key[key]
        values = convert_blocks(key_rules, ckpt.blocks(key), np.dtype(param_dtype))
        for rule in key_rules:
            value = values.pop(0)
            hf_names.set_path(params, rule.path, placement.place(value, sharding_fn(rule.path, rule.shape,
                                                                                    rule.logical_axes)))
            del value  # params holds only the jax array (which, on CPU, owns this buffer)
    jax.block_until_ready(params)
    return layer_stacking.to_layout(params, config.scan_layers), config
