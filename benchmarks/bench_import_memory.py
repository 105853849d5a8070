"""Peak host memory of the Hugging Face import, next to the model size and its largest tensor.

Writes a random T5.1.1-shaped checkpoint (default: T5-large, ~3.1 GB fp32) as model.safetensors,
tensor by tensor so the writer never holds more than one tensor, then imports it in a fresh
subprocess and reports that process's peak RSS. A streaming importer should peak near
baseline (python + jax) + model size + about two copies of the largest tensor; an importer that
materialises the whole state dict first would add another model size.

    python benchmarks/bench_import_memory.py [--size large] [--workdir /tmp/bench_import]

No assertions: prints a table and writes benchmarks/results/import_memory_<size>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import struct
import subprocess
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flan_trainer.interop import hf_names  # noqa: E402
from flan_trainer.models.config import TransformerConfig  # noqa: E402

SIZES = {  # T5.1.1 shapes (t5x_interface.md, "Model sizes")
    "small": dict(emb_dim=512, num_heads=6, num_encoder_layers=8, num_decoder_layers=8, mlp_dim=1024),
    "base": dict(emb_dim=768, num_heads=12, num_encoder_layers=12, num_decoder_layers=12, mlp_dim=2048),
    "large": dict(emb_dim=1024, num_heads=16, num_encoder_layers=24, num_decoder_layers=24, mlp_dim=2816),
}

_CHILD = r"""
import json, resource, sys, time
import jax
from flan_trainer.interop import hf_import
jax.numpy.zeros(1).block_until_ready()
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
t0 = time.perf_counter()
params, config = hf_import.import_hf(sys.argv[1])
seconds = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
n = sum(x.size for x in jax.tree.leaves(params))
print(json.dumps({"baseline_rss_bytes": baseline, "peak_rss_bytes": peak, "import_seconds": seconds,
                  "imported_parameters": int(n)}))
"""


def write_random_checkpoint(out_dir: pathlib.Path, config: TransformerConfig, seed: int = 0) -> dict:
    """config.json + model.safetensors with random fp32 tensors, written one tensor at a time."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rules = hf_names.tensor_rules(hf_names.T5Shape.from_config(config))
    header: dict = {"__metadata__": {"format": "pt"}}
    offset = largest = 0
    for rule in rules:
        nbytes = int(np.prod(rule.hf_shape)) * 4
        header[rule.hf_key] = {"dtype": "F32", "shape": list(rule.hf_shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
        largest = max(largest, nbytes)
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    rng = np.random.default_rng(seed)
    with open(out_dir / "model.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(blob)) + blob)
        for rule in rules:
            f.write(rng.standard_normal(rule.hf_shape, dtype=np.float32).tobytes())
    (out_dir / "config.json").write_text(json.dumps(hf_names.t5x_config_to_hf(config)))
    return {"model_bytes": offset, "largest_tensor_bytes": largest, "num_tensors": len(rules)}


def _gib(x: float) -> str:
    return f"{x / 2**30:8.3f} GiB"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", choices=sorted(SIZES), default="large")
    p.add_argument("--workdir", type=pathlib.Path, default=pathlib.Path("/tmp/bench_import_memory"))
    p.add_argument("--keep", action="store_true", help="keep the written checkpoint")
    args = p.parse_args()
    config = TransformerConfig(vocab_size=32128, head_dim=64, dtype="float32", **SIZES[args.size])
    ckpt = args.workdir / args.size
    t0 = time.perf_counter()
    facts = write_random_checkpoint(ckpt, config)
    facts["write_seconds"] = time.perf_counter() - t0
    env = {**os.environ, "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu"), "PYTHONPATH": str(ROOT)}
    child = subprocess.run([sys.executable, "-c", _CHILD, str(ckpt)], env=env, capture_output=True, text=True,
                           check=True)
    facts.update(json.loads(child.stdout.strip().splitlines()[-1]))
    facts["size"] = args.size
    facts["overhead_bytes"] = facts["peak_rss_bytes"] - facts["baseline_rss_bytes"] - facts["model_bytes"]
    facts["overhead_in_largest_tensors"] = facts["overhead_bytes"] / facts["largest_tensor_bytes"]
    rows = [("model size (fp32)", _gib(facts["model_bytes"])),
            ("largest tensor", _gib(facts["largest_tensor_bytes"])),
            ("baseline RSS (python+jax)", _gib(facts["baseline_rss_bytes"])),
            ("peak RSS", _gib(facts["peak_rss_bytes"])),
            ("peak - baseline - model", _gib(facts["overhead_bytes"])),
            ("  = largest tensors", f"{facts['overhead_in_largest_tensors']:8.2f}"),
            ("import time", f"{facts['import_seconds']:8.1f} s")]
    print(f"HF import memory, T5.1.1-{args.size} ({facts['imported_parameters'] / 1e6:.0f}M parameters)")
    for name, value in rows:
        print(f"  {name:<28}{value}")
    results = ROOT / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / f"import_memory_{args.size}.json").write_text(json.dumps(facts, indent=2) + "\n")
    if not args.keep:
        shutil.rmtree(ckpt)


if __name__ == "__main__":
    main()
