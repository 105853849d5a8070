"""Whole-cluster evaluation throughput on the mesh, and decoding with/without the cross-attention cache.

Part 1 evaluates one held-out cluster's full plan of the embedded suite (every template, both
splits: validation and reported) through evals.runner's pipeline, on 1 device and on 8 forced CPU
devices as an (8, 1) mesh, in one process side by side. Each mesh runs the plan twice: "cold"
includes compiling (the compile count is the number of distinct programs, bounded by the shape
buckets), "warm" reuses the programs. Reports examples/s, options scored/s, generated tokens/s.
The scores of the two meshes are checked to be equal.

Part 2 decodes 512-token inputs into 64 tokens (greedy and 4-beam search, EOS disabled so every
step runs) with `TransformerConfig.cache_cross_attention` True (encoder K/V projected once per
input) and False (re-projected at every step), same parameters, alternating runs; checks the tokens
are equal. It runs once with XLA's default passes and once more in a child process with the
while-loop invariant code motion pass disabled (which otherwise hoists the re-projection out of the
decode loop; --skip_no_licm skips that run).

    python benchmarks/bench_eval_cluster.py                       # ~5-10 minutes on 2 CPU cores
    python benchmarks/bench_eval_cluster.py --cluster nli --max_examples 20

On a shared machine take the ratios (side by side, one run), not the absolute numbers.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import platform
import re
import subprocess
import sys
import time

os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from results_io import RESULTS_DIR, write_results  # noqa: E402  (benchmarks/ is on sys.path as a script)

import flan_tasks  # noqa: E402
from evals import eval_mesh, runner  # noqa: E402
from flan_trainer import partitioning  # noqa: E402
from flan_trainer.models import model_api  # noqa: E402
from flan_trainer.models.config import TransformerConfig  # noqa: E402
from flan_trainer.tasks_setup import build_vocabulary, register_suite  # noqa: E402

# gin/models/tiny.gin's shape with the byte vocabulary the embedded suite uses in tests.
EVAL_CONFIG = dict(emb_dim=128, num_heads=4, head_dim=32, mlp_dim=256, num_encoder_layers=2,
                   num_decoder_layers=2, dtype="float32")
# XLA's pass that hoists loop-invariant work (the recompute path's K/V projection) out of while loops.
NO_LICM = "while-loop-invariant-code-motion"
# Part 2: T5.1.1-small widths, 2+2 layers, T5's vocabulary (the logits cost is realistic).
DECODE_CONFIG = dict(vocab_size=32128, emb_dim=512, num_heads=8, head_dim=64, mlp_dim=1024,
                     num_encoder_layers=2, num_decoder_layers=2, dtype="float32")


def _init(cfg: TransformerConfig):
    model = model_api.EncoderDecoderModel(cfg)
    shapes = {"encoder_input_tokens": (1, 16), "decoder_input_tokens": (1, 8)}
    return model, model.get_initial_variables(jax.random.PRNGKey(0), shapes)["params"]


def cluster_pass(model, params, jobs, batch_size, max_examples, ev) -> dict:
    start = time.perf_counter()
    before = ev.compiles
    placed = ev.place_params(model, params)
    out = runner.evaluate_jobs(model, placed, jobs, batch_size, max_examples, "greedy", ev)
    seconds = time.perf_counter() - start
    examples = sum(o["num_examples"] for o in out)
    options = sum(o.get("options_scored", 0) for o in out)
    tokens = sum(o.get("generated_tokens", 0) for o in out)
    return {"seconds": round(seconds, 2), "tasks": len(jobs), "examples": examples, "options": options,
            "generated_tokens": tokens, "examples_per_s": examples / seconds, "options_per_s": options / seconds,
            "generated_tokens_per_s": tokens / seconds, "compiled_programs": ev.compiles - before,
            "primary": [o["primary"] for o in out]}


def bench_cluster(cluster: str, batch_size: int, max_examples: int | None) -> dict:
    vocab = build_vocabulary()
    register_suite("embedded", vocab)
    model, params = _init(TransformerConfig(vocab_size=vocab.vocab_size, **EVAL_CONFIG))
    plan = flan_tasks.eval_plan("embedded", cluster)
    jobs = [(e, e.validation_task if s == "validation" else e.reported_task, s)
            for e in plan for s in runner.SPLITS]
    rows = {}
    for name, shape in (("1 device", (1, 1)), ("8 devices (8,1)", (8, 1))):
        devices = jax.devices()[: shape[0] * shape[1]]
        ev = eval_mesh.EvalMesh(partitioning.make_mesh(mesh_shape=shape, devices=devices))
        rows[name] = {"cold": cluster_pass(model, params, jobs, batch_size, max_examples, ev),
                      "warm": cluster_pass(model, params, jobs, batch_size, max_examples, ev)}
    ref = rows["1 device"]["cold"]["primary"]
    same = all(np.allclose(r[p]["primary"], ref, atol=1e-6) for r in rows.values() for p in ("cold", "warm"))
    return {"cluster": cluster, "templates": len(plan), "batch_size": batch_size, "max_examples": max_examples,
            "scores_equal_across_meshes": bool(same), "runs": rows}


def _cache_mb(model, params, batch_in: dict, output_len: int, method: str, beams: int) -> float:
    """Decode-cache size as the decoding loop carries it (after expanding to beams for beam search)."""
    from flan_trainer import decoding
    from flan_trainer.models.t5 import cache_batch_axes

    def cache_shapes(p, b):
        enc = b["encoder_input_tokens"]
        encoded = model.encode(p, enc)
        dummy = jnp.zeros((enc.shape[0], output_len + 1), jnp.int32)
        _, new = model.module.apply({"params": p}, encoded, enc, dummy, decode=True, mutable=["cache"],
                                    method="decode")
        cache = new["cache"]
        return decoding.expand_to_beams(cache, beams, cache_batch_axes(cache)) if method == "beam" else cache

    shapes = jax.eval_shape(cache_shapes, params, batch_in)
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(shapes)) / 1e6


def bench_decode(batch: int, input_len: int, output_len: int, reps: int, methods: tuple[str, ...]) -> dict:
    """Cached vs re-projected cross-attention, per decoding method, alternating runs."""
    cfg = TransformerConfig(**DECODE_CONFIG, cache_cross_attention=True)
    model_cached, params = _init(cfg)
    model_plain = model_api.EncoderDecoderModel(dataclasses.replace(cfg, cache_cross_attention=False))
    models = (("cached", model_cached), ("recompute", model_plain))
    rng = np.random.default_rng(0)
    enc = rng.integers(2, 32000, (batch, input_len)).astype(np.int32)
    batch_in = {"encoder_input_tokens": enc}
    out = {"batch": batch, "input_len": input_len, "output_len": output_len, "reps": reps, "beams": 4,
           "xla_flags": os.environ.get("XLA_FLAGS", ""), "methods": {}}
    for method in methods:
        fns = {name: jax.jit(lambda p, b, m=m, how=method: m.predict_batch(
                   p, b, method=how, max_decode_length=output_len, num_beams=4, eos_id=-1))
               for name, m in models}
        tokens, times = {}, {name: [] for name in fns}
        for name, fn in fns.items():
            tokens[name] = np.asarray(fn(params, batch_in))  # compile + warm-up
        for _ in range(reps):  # alternate, so both see the same machine load
            for name, fn in fns.items():
                start = time.perf_counter()
                jax.block_until_ready(fn(params, batch_in))
                times[name].append(time.perf_counter() - start)
        best = {name: min(t) for name, t in times.items()}
        out["methods"][method] = {
            "seconds_best": best, "seconds_all": times,
            "generated_tokens_per_s": {n: batch * output_len / s for n, s in best.items()},
            "speedup_cached": best["recompute"] / best["cached"],
            "tokens_equal": bool(np.array_equal(tokens["cached"], tokens["recompute"])),
            "decode_loop_body_dots": {n: _loop_body_dots(fn.lower(params, batch_in).compile().as_text())
                                      for n, fn in fns.items()},
            "cache_mb": {n: round(_cache_mb(m, params, batch_in, output_len, method, 4), 1) for n, m in models}}
        print(f"  decode {method} ({'XLA LICM off' if NO_LICM in out['xla_flags'] else 'XLA default'}): "
              f"{json.dumps(out['methods'][method]['seconds_best'])}", flush=True)
    return out


def _loop_body_dots(hlo: str) -> int:
    """Matmuls inside the compiled decode loop's body: the work done per generated token.

    Equal counts for both programs mean XLA already hoisted the loop-invariant cross-attention
    K/V projections of the recompute path out of the loop (while-loop invariant code motion).
    """
    bodies = set(re.findall(r"body=%?([\w.\-]+)", hlo))
    count = 0
    for comp in re.split(r"\n\n", hlo):
        head = comp.strip().splitlines()[0].replace("ENTRY ", "") if comp.strip() else ""
        name = re.match(r"%?([\w.\-]+)", head)
        if name and name.group(1) in bodies:
            count += len(re.findall(r"\bdot\(", comp))
    return count


def _decode_without_licm(args) -> dict:
    """The decode part again in a child process whose XLA does not hoist loop-invariant work.

    That is what "re-project the encoder output at every step" costs when the compiler does not
    rescue it; the cached program does the same work either way.
    """
    env = {**os.environ, "XLA_FLAGS": os.environ.get("XLA_FLAGS", "") + f" --xla_disable_hlo_passes={NO_LICM}"}
    cmd = [sys.executable, __file__, "--skip_cluster", "--decode_worker", "--reps", str(args.reps),
           "--decode_batch", str(args.decode_batch), "--decode_methods", args.decode_methods]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        raise RuntimeError(f"decode child failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def _print_decode(decode: dict) -> None:
    first = next(iter(decode.values()))
    print(f"\ndecode {first['batch']} x {first['input_len']} -> {first['output_len']} tokens "
          f"(1 device, EOS off, beam: {first['beams']} beams)")
    print(f"{'XLA':<13} {'method':<7} {'recompute s':>11} {'cached s':>9} {'speedup':>8} {'same tokens':>11} "
          f"{'loop dots r/c':>13} {'cache MB r/c':>13}")
    for xla, d in decode.items():
        for method, r in d["methods"].items():
            s, dots, mb = r["seconds_best"], r["decode_loop_body_dots"], r["cache_mb"]
            print(f"{xla:<13} {method:<7} {s['recompute']:>11.2f} {s['cached']:>9.2f} {r['speedup_cached']:>7.2f}x "
                  f"{str(r['tokens_equal']):>11} {dots['recompute']:>6}/{dots['cached']:<6} "
                  f"{mb['recompute']:>6}/{mb['cached']:<6}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cluster", default="reading_comprehension", help="an embedded-suite cluster")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--max_examples", type=int, default=None, help="per task (default: all)")
    p.add_argument("--decode_batch", type=int, default=8)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--skip_cluster", action="store_true")
    p.add_argument("--decode_methods", default="greedy,beam", help="comma-separated: greedy, beam")
    p.add_argument("--skip_no_licm", action="store_true",
                   help="skip the decode run with XLA's while-loop invariant code motion disabled")
    p.add_argument("--decode_worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", default=str(RESULTS_DIR / "eval_cluster.json"))
    args = p.parse_args(argv)

    result = {"machine": platform.platform(), "cpu_count": os.cpu_count(), "jax": jax.__version__}
    if not args.skip_cluster:
        result["cluster"] = c = bench_cluster(args.cluster, args.batch_size, args.max_examples)
        print(f"\ncluster {c['cluster']}: {c['templates']} templates x 2 splits, batch {c['batch_size']}; "
              f"scores equal across meshes: {c['scores_equal_across_meshes']}")
        print(f"{'mesh':<18} {'pass':<5} {'tasks':>5} {'examples':>8} {'s':>7} {'ex/s':>7} {'opt/s':>7} "
              f"{'tok/s':>7} {'compiles':>8}")
        for name, passes in c["runs"].items():
            for kind, r in passes.items():
                print(f"{name:<18} {kind:<5} {r['tasks']:>5} {r['examples']:>8} {r['seconds']:>7.1f} "
                      f"{r['examples_per_s']:>7.1f} {r['options_per_s']:>7.1f} {r['generated_tokens_per_s']:>7.1f} "
                      f"{r['compiled_programs']:>8}")
    methods = tuple(args.decode_methods.split(","))
    if args.decode_worker:  # a child with the loop-invariant code motion pass disabled
        print(json.dumps(bench_decode(args.decode_batch, 512, 64, args.reps, methods)), flush=True)
        return 0
    result["decode"] = {"xla default": bench_decode(args.decode_batch, 512, 64, args.reps, methods)}
    if not args.skip_no_licm:
        result["decode"]["xla licm off"] = _decode_without_licm(args)
    _print_decode(result["decode"])
    write_results(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
