"""Train-step speed on CPU: our jitted T5 step vs Hugging Face's PyTorch T5, side by side.

Both sides run a full training step (forward, backward, Adafactor update) on the same random
tokens with the same shapes and the same number of threads:
- ours: ``flan_trainer.train_step.make_train_step`` with ``optimizers.adafactor`` (T5X settings),
  z_loss=0 and no normalisation, so the loss is the summed cross-entropy;
- torch: ``transformers.T5ForConditionalGeneration`` (T5.1.1 config: gated-gelu, untied logits),
  summed ``F.cross_entropy`` on the logits, ``transformers.optimization.Adafactor`` with T5X's
  settings (parameter scaling, clip 1.0, decay -0.8, no momentum, fixed lr), zero_grad, step.
``ours`` unrolls its layers; ``ours_scan`` is the same step with ``scan_layers=True`` (each stack
one ``lax.scan``), timed side by side (``--no_scan`` skips it). Dropout is off on both. Steps of all in-process candidates are interleaved (round robin), so
load from other work on the machine hits them alike; the figures to quote are the ratios.

Variants of ours, to find where the time goes (``--variants``): bfloat16 activations, a one-hot
embedding lookup instead of the gather, the other activation dtype on both sides, and XLA flags
(each flag set runs in a subprocess, since XLA reads its flags once per process, against a
baseline subprocess).

    python benchmarks/bench_train_step.py --size tiny --steps 3            # quick
    python benchmarks/bench_train_step.py --variants                       # T5-small, all variants
Prints a table and findings; writes benchmarks/results/train_step.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time

from results_io import write_results  # noqa: E402
from synthetic_batch import VOCAB, make_data  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.modules.setdefault("triton", None)  # triton's LLVM aborts a process that also loads XLA's

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SIZES = {
    # T5.1.1-small shapes (gin/models/small.gin); vocabulary T5's 32128 in both sizes.
    "small": dict(emb_dim=512, num_heads=6, head_dim=64, mlp_dim=1024, num_encoder_layers=8, num_decoder_layers=8),
    "tiny": dict(emb_dim=128, num_heads=4, head_dim=32, mlp_dim=256, num_encoder_layers=2, num_decoder_layers=2),
}

# XLA:CPU flag sets tried with --variants (each in its own process). Names are for the table.
XLA_FLAG_VARIANTS = {
    "xla_single_thread_eigen": "--xla_cpu_multi_thread_eigen=false",
    "xla_legacy_runtime": "--xla_cpu_use_thunk_runtime=false",
    "xla_fast_math": "--xla_cpu_enable_fast_math=true",
    "xla_no_xnnpack": "--xla_cpu_use_xnnpack=false",
    "xla_onednn": "--xla_cpu_use_onednn=true",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", default="small", choices=sorted(SIZES))
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--input_len", type=int, default=512)
    p.add_argument("--target_len", type=int, default=128)
    p.add_argument("--steps", type=int, default=3, help="timed steps per candidate (median reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps after compilation")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"), help="activation dtype")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for both (0 = all usable cores)")
    p.add_argument("--variants", action="store_true", help="also time variants of ours (see module doc)")
    p.add_argument("--no_torch", action="store_true")
    p.add_argument("--no_scan", action="store_true", help="skip ours_scan (ours with scan_layers=True)")
    p.add_argument("--only", default="", help="comma-separated candidate names to run (internal use)")
    p.add_argument("--xla_flags", default="", help="appended to XLA_FLAGS (internal use: flag variants)")
    p.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "train_step.json"))
    return p.parse_args(argv)


def set_threads(threads: int) -> int:
    """Pins the process to ``threads`` cores before jax/torch start their pools.

    XLA:CPU sizes its intra-op (Eigen) pool from the schedulable cores, so CPU affinity is how
    to give both frameworks the same thread count; torch additionally gets set_num_threads.
    """
    cores = sorted(os.sched_getaffinity(0))
    if threads and threads < len(cores):
        os.sched_setaffinity(0, cores[:threads])
    return len(os.sched_getaffinity(0))


# ------------------------------------------------------------------------------------------
# Variant patches for ours (applied while the step is traced; see module doc)
# ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def onehot_embedding():
    """Embedding lookup as ``one_hot(ids) @ table`` (the TPU idiom) instead of a gather."""
    import jax
    import jax.numpy as jnp

    from flan_trainer.models import layers

    original = layers.Embed.__call__

    def call(self, ids):
        onehot = jax.nn.one_hot(ids, self.num_embeddings, dtype=self.dtype)
        return jnp.einsum("blv,vd->bld", onehot, self.embedding.astype(self.dtype))

    layers.Embed.__call__ = call
    try:
        yield
    finally:
        layers.Embed.__call__ = original


# ------------------------------------------------------------------------------------------
# Candidates: each is build() -> step() (one blocking training step)
# ------------------------------------------------------------------------------------------


def build_ours(size: str, dtype: str, data: dict, patch=None, scan: bool = False):
    import jax
    import numpy as np

    from flan_trainer import optimizers, partitioning
    from flan_trainer.models import model_api
    from flan_trainer.models.config import TransformerConfig
    from flan_trainer.train_state import init_sharded_state
    from flan_trainer.train_step import make_train_step

    cfg = TransformerConfig(vocab_size=VOCAB, dtype=dtype, dropout_rate=0.0, scan_layers=scan, **SIZES[size])
    model = model_api.EncoderDecoderModel(cfg, z_loss=0.0, loss_normalizing_factor=None)
    mesh = partitioning.make_mesh(devices=jax.devices()[:1])
    rules = partitioning.standard_logical_axis_rules()
    opt = optimizers.adafactor(1e-3)
    shapes = {k: v.shape for k, v in data.items()}
    state, shardings = init_sharded_state(model, opt, jax.random.PRNGKey(0), shapes, mesh, rules)
    step_fn = make_train_step(model, opt, mesh, shardings, rules)
    batch = {k: jax.device_put(v) for k, v in data.items()}
    holder = {"state": state, "loss": None}
    ctx = patch if patch is not None else contextlib.nullcontext()

    def step():
        with ctx if holder["loss"] is None else contextlib.nullcontext():  # patch only while tracing
            new_state, metrics = step_fn(holder["state"], batch, None)
        holder["state"] = new_state
        holder["loss"] = float(np.asarray(metrics["loss"]))  # blocks until the step is done
        return holder["loss"]

    return step


def build_torch(size: str, dtype: str, data: dict, threads: int):
    import torch
    import torch.nn.functional as F
    from transformers import T5Config, T5ForConditionalGeneration
    from transformers.optimization import Adafactor

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    s = SIZES[size]
    cfg = T5Config(
        vocab_size=VOCAB, d_model=s["emb_dim"], d_kv=s["head_dim"], d_ff=s["mlp_dim"], num_heads=s["num_heads"],
        num_layers=s["num_encoder_layers"], num_decoder_layers=s["num_decoder_layers"],
        feed_forward_proj="gated-gelu", tie_word_embeddings=False, dropout_rate=0.0,
        relative_attention_num_buckets=32, relative_attention_max_distance=128, layer_norm_epsilon=1e-6,
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
    )
    model = T5ForConditionalGeneration(cfg).train()
    # T5X's Adafactor settings; HF factors every 2-D parameter (T5X only when both dims >= 128,
    # which every 2-D parameter here satisfies except the [heads, 32] relative position tables).
    opt = Adafactor(model.parameters(), lr=1e-3, eps=(1e-30, 1e-3), clip_threshold=1.0, decay_rate=-0.8,
                    beta1=None, weight_decay=0.0, scale_parameter=True, relative_step=False, warmup_init=False)
    enc = torch.from_numpy(data["encoder_input_tokens"]).long()
    dec = torch.from_numpy(data["decoder_input_tokens"]).long()
    tgt = torch.from_numpy(data["decoder_target_tokens"]).long()
    mask = torch.ones_like(enc)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bfloat16")

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast:
            logits = model(input_ids=enc, attention_mask=mask, decoder_input_ids=dec).logits
        loss = F.cross_entropy(logits.float().reshape(-1, VOCAB), tgt.reshape(-1), reduction="sum")
        loss.backward()
        opt.step()
        return float(loss.detach())

    step.attn_implementation = getattr(model.config, "_attn_implementation", None)
    return step


def candidate_specs(args: argparse.Namespace) -> dict:
    """name -> zero-argument builder, in run order."""
    data = make_data(args.batch, args.input_len, args.target_len)
    other = "bfloat16" if args.dtype == "float32" else "float32"
    specs = {"ours": lambda: build_ours(args.size, args.dtype, data)}
    if not args.no_scan:  # scanned layers side by side with the unrolled ones
        specs["ours_scan"] = lambda: build_ours(args.size, args.dtype, data, scan=True)
    if not args.no_torch:
        specs["torch"] = lambda: build_torch(args.size, args.dtype, data, args.threads)
    if args.variants:
        specs[f"ours_{other}"] = lambda: build_ours(args.size, other, data)
        if not args.no_torch:
            specs[f"torch_{other}"] = lambda: build_torch(args.size, other, data, args.threads)
        specs["ours_onehot_embedding"] = lambda: build_ours(args.size, args.dtype, data, onehot_embedding())
    if args.only:
        wanted = args.only.split(",")
        specs = {k: v for k, v in specs.items() if k in wanted}
    return specs


def run_candidates(specs: dict, steps: int, warmup: int) -> dict:
    """Builds each candidate, compiles/warms it, then times them round robin."""
    steps_fns, results = {}, {}
    for name, build in specs.items():
        t0 = time.perf_counter()
        fn = build()
        first_loss = fn()  # compilation (ours) / allocation (torch) happens here
        for _ in range(warmup):
            fn()
        results[name] = {"first_step_s": time.perf_counter() - t0, "first_loss": first_loss, "times_s": []}
        if hasattr(fn, "attn_implementation"):
            results[name]["attn_implementation"] = fn.attn_implementation
        steps_fns[name] = fn
        print(f"  built {name}: first step + warmup {results[name]['first_step_s']:.1f}s, loss {first_loss:.1f}",
              flush=True)
    for i in range(steps):
        for name, fn in steps_fns.items():
            t0 = time.perf_counter()
            loss = fn()
            results[name]["times_s"].append(time.perf_counter() - t0)
            results[name]["last_loss"] = loss
        print(f"  round {i + 1}/{steps}: " + ", ".join(f"{n} {r['times_s'][-1]:.2f}s" for n, r in results.items()),
              flush=True)
    for r in results.values():
        r["median_s"] = statistics.median(r["times_s"])
    return results


def run_flag_variants(args: argparse.Namespace) -> dict:
    """Each XLA flag set (and a plain baseline) in its own subprocess; ours only."""
    out = {}
    runs = {"xla_baseline": ""} | XLA_FLAG_VARIANTS
    for name, flags in runs.items():
        tmp = REPO / "benchmarks" / "results" / f".tmp_{name}.json"
        cmd = [sys.executable, __file__, "--size", args.size, "--batch", str(args.batch),
               "--input_len", str(args.input_len), "--target_len", str(args.target_len),
               "--steps", str(args.steps), "--warmup", str(args.warmup), "--dtype", args.dtype,
               "--threads", str(args.threads), "--only", "ours", "--no_torch", f"--xla_flags={flags}",
               "--output", str(tmp)]
        print(f"  subprocess {name} ({flags or 'no flags'})", flush=True)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not tmp.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            out[name] = {"xla_flags": flags, "error": " | ".join(tail)}
            print(f"    failed: {out[name]['error']}", flush=True)
            continue
        res = json.loads(tmp.read_text())["candidates"]["ours"]
        tmp.unlink()
        out[name] = {"xla_flags": flags, **res}
        print(f"    median {res['median_s']:.3f}s", flush=True)
    return out


def machine_info() -> dict:
    import jax
    import jaxlib

    info = {
        "cpu_count": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(), "python": platform.python_version(), "jax": jax.__version__,
        "jaxlib": jaxlib.__version__, "backend": jax.default_backend(), "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
    }
    with contextlib.suppress(ImportError):
        import flax
        import optax

        info.update(flax=flax.__version__, optax=optax.__version__)
    with contextlib.suppress(ImportError):
        import torch
        import transformers

        info.update(torch=torch.__version__, transformers=transformers.__version__,
                    torch_threads=torch.get_num_threads())
    return info


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def findings(result: dict) -> list[str]:
    """One line per comparison, as ratios of median step times (<1 means the first is faster)."""
    c, lines = result["candidates"], []
    dtype = result["settings"]["dtype"]

    def ratio(a: str, b: str, what: str) -> None:
        if a in c and b in c:
            lines.append(f"{what}: {a}/{b} = {c[a]['median_s'] / c[b]['median_s']:.2f}")

    ratio("ours", "torch", f"ours vs PyTorch ({dtype})")
    ratio("ours_scan", "ours", "scanned layers vs unrolled (ours)")
    if "ours_scan" in c and "ours" in c:
        lines.append("init + compile + first step, scanned vs unrolled: ours_scan/ours = "
                     f"{c['ours_scan']['first_step_s'] / c['ours']['first_step_s']:.2f}")
    other = "bfloat16" if dtype == "float32" else "float32"
    ratio(f"ours_{other}", "ours", f"{other} activations vs {dtype} (ours)")
    ratio(f"torch_{other}", "torch", f"{other} vs {dtype} (torch)")
    ratio(f"ours_{other}", f"torch_{other}", f"ours vs PyTorch ({other})")
    ratio("ours_onehot_embedding", "ours", "one-hot embedding matmul vs gather")
    flags = result.get("xla_flag_variants", {})
    base = flags.get("xla_baseline", {}).get("median_s")
    for name, r in flags.items():
        if name != "xla_baseline" and base and "median_s" in r:
            lines.append(f"XLA flag {r['xla_flags']}: {r['median_s'] / base:.2f}x the no-flag step time")
        elif "error" in r:
            lines.append(f"XLA flag {r['xla_flags']}: failed ({r['error'][:120]})")
    return lines


def print_table(result: dict) -> None:
    s = result["settings"]
    tokens = s["batch"] * (s["input_len"] + s["target_len"])
    print(f"\nsize={s['size']} batch={s['batch']} lengths={s['input_len']}/{s['target_len']} dtype={s['dtype']} "
          f"threads={s['threads']} steps={s['steps']} ({tokens} tokens/step)")
    print(f"{'candidate':<28} {'median s':>9} {'min s':>8} {'tokens/s':>9} {'vs torch':>8}")
    torch_t = result["candidates"].get("torch", {}).get("median_s")
    rows = list(result["candidates"].items()) + list(result.get("xla_flag_variants", {}).items())
    for name, r in rows:
        if "median_s" not in r:
            continue
        vs = f"{r['median_s'] / torch_t:8.2f}" if torch_t else f"{'-':>8}"
        print(f"{name:<28} {r['median_s']:9.3f} {min(r['times_s']):8.3f} {tokens / r['median_s']:9.0f} {vs}")
    print("\nfindings:")
    for line in result["findings"]:
        print("  " + line)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.xla_flags:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + args.xla_flags).strip()
    args.threads = set_threads(args.threads)
    import jax

    jax.config.update("jax_platforms", "cpu")
    tokens = args.batch * (args.input_len + args.target_len)
    candidates = run_candidates(candidate_specs(args), args.steps, args.warmup)
    for r in candidates.values():
        r["tokens_per_s"] = tokens / r["median_s"]
    result = {
        "benchmark": "train_step", "settings": {k: v for k, v in vars(args).items() if k not in ("output", "only")},
        "tokens_per_step": tokens, "machine": machine_info(), "candidates": candidates,
    }
    if "torch" in candidates:
        result["ratio_ours_over_torch"] = candidates["ours"]["median_s"] / candidates["torch"]["median_s"]
    if args.variants and not args.only:
        result["xla_flag_variants"] = run_flag_variants(args)
    result["findings"] = findings(result)
    if not args.only:
        print_table(result)
    write_results(result, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
