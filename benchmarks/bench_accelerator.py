"""Train-step speed on whatever backend jax finds (GPU, TPU or CPU): ours vs Hugging Face PyTorch T5.

Every candidate runs in its OWN process, one after the other, so neither framework's memory pool,
threads or compilation caches touch the other's numbers. Per candidate it prints, as each stage
finishes (flushed, so a run killed by a time limit still shows where it was), and records:

  import_s      importing the framework and the model code
  backend_s     bringing up the device (jax.devices() / torch CUDA init)
  init_s        creating parameters and optimizer state on the device(s)
  compile_s     lower + compile of the train step (ours; Hugging Face runs eagerly: none)
  first_step_s  the first step after compilation (HF: includes its lazy CUDA/cuBLAS set-up)
  median_s      median of --steps timed steps; tokens/s = batch * (input + target length) / median_s
  mfu           model FLOPs utilisation with flan_trainer/flops.py's convention (6 FLOPs per matmul
                parameter per token, per side, plus attention), over the devices the candidate used
                and the device kind's dense bf16 peak (flops.PEAK_FLOPS_PER_DEVICE); n/a on CPU
                unless --peak_flops is given

Candidates (--candidates):
  ours         flan_trainer's train step (make_train_step): T5.1.1 preset, bf16 activations, fp32
               params, Adafactor (flan_trainer.optimizers, T5X settings), mesh over all devices
               (--devices 1: one), random tokens; scan_layers/remat_policy from the flags
  ours_scan    the same with scan_layers=True;  ours_noscan: scan_layers=False
  hf           transformers.T5ForConditionalGeneration from a T5.1.1 config (gated-gelu, untied
               logits, no weights download), autocast bf16 on CUDA (and on CPU with --dtype
               bfloat16), transformers' Adafactor (scale_parameter=False, relative_step=False,
               lr 1e-3), summed cross-entropy on the logits, one device

Examples:
  python benchmarks/bench_accelerator.py --sizes tiny --batches 8 --steps 3            # CPU smoke
  python benchmarks/bench_accelerator.py --sizes base,large --batches 128,64 --candidates ours,hf
  python benchmarks/bench_accelerator.py --compile_only --sizes large --batches 8 \\
      --candidates ours_scan,ours_noscan                # init + compile only, scanned vs unscanned
Prints a table and ratios; writes benchmarks/results/accelerator.json (after every candidate, so a
killed run keeps what finished). The "ours" path imports no tensorflow, seqio or clu.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
import types

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from results_io import write_results  # noqa: E402
from synthetic_batch import VOCAB, make_data  # noqa: E402

from flan_trainer import flops  # noqa: E402  (pure Python: imports neither jax nor torch)

# T5.1.1 sizes (flan_trainer.models.config.PRESETS; repeated here so the parent and the HF child
# never import jax). Vocabulary 32128 throughout.
SIZES = {
    "tiny": dict(emb_dim=128, num_heads=4, head_dim=32, mlp_dim=256, num_encoder_layers=2, num_decoder_layers=2),
    "small": dict(emb_dim=512, num_heads=6, head_dim=64, mlp_dim=1024, num_encoder_layers=8, num_decoder_layers=8),
    "base": dict(emb_dim=768, num_heads=12, head_dim=64, mlp_dim=2048, num_encoder_layers=12, num_decoder_layers=12),
    "large": dict(emb_dim=1024, num_heads=16, head_dim=64, mlp_dim=2816, num_encoder_layers=24,
                  num_decoder_layers=24),
}
CANDIDATES = ("ours", "ours_scan", "ours_noscan", "hf")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="base", help=f"comma-separated, from {sorted(SIZES)}")
    p.add_argument("--batches", default="128", help="comma-separated; one per size, or one for all")
    p.add_argument("--seq", default="512/128", help="input/target lengths")
    p.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float32"), help="activation dtype")
    p.add_argument("--steps", type=int, default=10, help="timed steps per candidate (median reported)")
    p.add_argument("--candidates", default="ours,hf", help=f"comma-separated, from {CANDIDATES}")
    scan = p.add_mutually_exclusive_group()
    scan.add_argument("--scan_layers", dest="scan_layers", action="store_true", default=True,
                      help="'ours' scans its layers (default)")
    scan.add_argument("--no_scan", dest="scan_layers", action="store_false", help="'ours' unrolls its layers")
    p.add_argument("--remat_policy", default="none", help="ours: none | minimal | full")
    p.add_argument("--devices", default="all", choices=("all", "1"), help="ours: mesh over all devices or one")
    p.add_argument("--peak_flops", type=float, default=None,
                   help="peak FLOP/s per device for MFU (default: from the device kind; CPU: n/a)")
    p.add_argument("--compile_only", action="store_true",
                   help="ours only: import, init, lower and compile; no steps (scanned vs unscanned compile)")
    p.add_argument("--timeout_s", type=float, default=0, help="per-candidate limit in seconds (0: none)")
    p.add_argument("--output", default=None, help="JSON path (default benchmarks/results/accelerator[_compile].json)")
    p.add_argument("--_worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--_size", default=None, help=argparse.SUPPRESS)
    p.add_argument("--_batch", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--_result", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.input_len, args.target_len = (int(x) for x in args.seq.split("/"))
    return args


# ------------------------------------------------------------------------------------------------
# Worker side: one candidate, one size, one batch, in this process
# ------------------------------------------------------------------------------------------------


class Stages:
    """Records stage seconds into a dict, prints each as it ends and re-saves the JSON file."""

    def __init__(self, label: str, path: str | None) -> None:
        self.label, self.path, self.result = label, path, {"stages_done": []}
        self.jax_events: dict[str, float] = {}
        self._t = time.perf_counter()

    def watch_jax(self) -> None:
        """Sums jax's tracing and XLA compile durations per stage (e.g. how much of init is compiling)."""
        import jax.monitoring

        names = {"/jax/core/compile/jaxpr_trace_duration": "trace",
                 "/jax/core/compile/backend_compile_duration": "xla_compile"}
        self.jax_events = dict.fromkeys(names.values(), 0.0)

        def listen(event: str, secs: float, **_: object) -> None:
            if event in names:
                self.jax_events[names[event]] += secs

        jax.monitoring.register_event_duration_secs_listener(listen)

    def done(self, stage: str, **extra) -> None:
        now = time.perf_counter()
        self.result[f"{stage}_s"] = now - self._t
        for what, secs in self.jax_events.items():  # where a jax stage's time went (see watch_jax)
            if secs:
                extra[f"{stage}_{what}_s"] = secs
        self.jax_events = dict.fromkeys(self.jax_events, 0.0)
        self.result["stages_done"].append(stage)
        self.result.update(extra)
        more = "".join(f", {k} {v:.4g}" if isinstance(v, float) else f", {k} {v}" for k, v in extra.items())
        print(f"[{self.label}] {stage}: {now - self._t:.2f} s{more}", flush=True)
        self.save()
        self._t = time.perf_counter()

    def restart_clock(self) -> None:
        self._t = time.perf_counter()

    def save(self) -> None:
        if self.path:
            pathlib.Path(self.path).write_text(json.dumps(self.result, indent=1))


def _timed_steps(step, n: int) -> list[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return times


def run_ours(args: argparse.Namespace, st: Stages, scan: bool) -> None:
    import jax
    import numpy as np

    from flan_trainer import optimizers, partitioning
    from flan_trainer.models import config as config_lib
    from flan_trainer.models import model_api
    from flan_trainer.train_state import init_sharded_state
    from flan_trainer.train_step import make_train_step

    st.done("import", jax=jax.__version__)
    st.watch_jax()
    # Cold compiles: a persistent cache from the environment would time a cache load instead.
    jax.config.update("jax_enable_compilation_cache", False)
    devices = jax.devices() if args.devices == "all" else jax.devices()[:1]
    st.done("backend", backend=jax.default_backend(), device_kind=devices[0].device_kind,
            num_devices=len(devices))
    cfg = config_lib.preset(args._size, dtype=args.dtype, dropout_rate=0.0, scan_layers=scan,
                            remat_policy=args.remat_policy)
    st.result.update(scan_layers=cfg.scan_layers, remat_policy=cfg.remat_policy)
    model = model_api.EncoderDecoderModel(cfg)
    mesh = partitioning.make_mesh(devices=devices)
    rules = partitioning.standard_logical_axis_rules()
    opt = optimizers.adafactor(1e-3)
    data = make_data(args._batch, args.input_len, args.target_len)
    shapes = {k: (1, v.shape[1]) for k, v in data.items()}
    state, shardings = init_sharded_state(model, opt, jax.random.PRNGKey(0), shapes, mesh, rules)
    jax.block_until_ready(state)
    st.done("init")
    step_fn = make_train_step(model, opt, mesh, shardings, rules)
    batch = jax.device_put(data, partitioning.batch_sharding(mesh))
    rng = jax.random.PRNGKey(1)
    lowered = step_fn.lower(state, batch, rng)
    st.done("lower")
    compiled = lowered.compile()
    st.done("compile_only")
    st.result["compile_s"] = st.result["lower_s"] + st.result["compile_only_s"]
    st.save()
    if args.compile_only:
        return
    holder = {"state": state}

    def step() -> float:
        holder["state"], metrics = compiled(holder["state"], batch, rng)
        return float(np.asarray(metrics["loss"]))  # blocks until the step is done

    loss = step()
    st.done("first_step", first_loss=loss)
    st.result["times_s"] = _timed_steps(step, args.steps)
    stats = getattr(devices[0], "memory_stats", lambda: None)() or {}
    st.result["peak_memory_bytes"] = stats.get("peak_bytes_in_use")
    st.result["median_s"] = statistics.median(st.result["times_s"])
    st.done("steps", median_step_s=st.result["median_s"], last_loss=step())


def run_hf(args: argparse.Namespace, st: Stages) -> None:
    import torch
    import torch.nn.functional as F
    import transformers
    from transformers import T5Config, T5ForConditionalGeneration
    from transformers.optimization import Adafactor

    st.done("import", torch=torch.__version__, transformers=transformers.__version__)
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    if cuda:
        torch.cuda.init()
    kind = torch.cuda.get_device_name(0) if cuda else "cpu"
    st.done("backend", backend="cuda" if cuda else "cpu", device_kind=kind, num_devices=1)
    torch.manual_seed(0)
    s = SIZES[args._size]
    cfg = T5Config(
        vocab_size=VOCAB, d_model=s["emb_dim"], d_kv=s["head_dim"], d_ff=s["mlp_dim"], num_heads=s["num_heads"],
        num_layers=s["num_encoder_layers"], num_decoder_layers=s["num_decoder_layers"],
        feed_forward_proj="gated-gelu", tie_word_embeddings=False, dropout_rate=0.0,
        relative_attention_num_buckets=32, relative_attention_max_distance=128, layer_norm_epsilon=1e-6,
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
    )
    with device:  # parameters are created on the device, not on the host and then copied
        model = T5ForConditionalGeneration(cfg).train()
    opt = Adafactor(model.parameters(), lr=1e-3, scale_parameter=False, relative_step=False, warmup_init=False)
    data = make_data(args._batch, args.input_len, args.target_len)
    enc, dec, tgt = (torch.from_numpy(data[k]).long().to(device) for k in
                     ("encoder_input_tokens", "decoder_input_tokens", "decoder_target_tokens"))
    mask = torch.ones_like(enc)
    if cuda:
        torch.cuda.synchronize()
    st.done("init", attn_implementation=getattr(model.config, "_attn_implementation", None))
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.dtype == "bfloat16")

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        with autocast:
            logits = model(input_ids=enc, attention_mask=mask, decoder_input_ids=dec).logits
        loss = F.cross_entropy(logits.float().reshape(-1, VOCAB), tgt.reshape(-1), reduction="sum")
        loss.backward()
        opt.step()
        return float(loss.detach())  # synchronises with the device

    loss = step()
    st.done("first_step", first_loss=loss)
    st.result["times_s"] = _timed_steps(step, args.steps)
    st.result["peak_memory_bytes"] = torch.cuda.max_memory_allocated() if cuda else None
    st.result["median_s"] = statistics.median(st.result["times_s"])
    st.done("steps", median_step_s=st.result["median_s"], last_loss=step())


def worker_main(args: argparse.Namespace) -> int:
    st = Stages(f"{args._worker} {args._size} b{args._batch}", args._result)
    try:
        if args._worker == "hf":
            run_hf(args, st)
        else:
            scan = {"ours_scan": True, "ours_noscan": False}.get(args._worker, args.scan_layers)
            run_ours(args, st, scan)
    except Exception as e:  # recorded, so the parent goes on with the next candidate
        st.result["error"] = f"{type(e).__name__}: {str(e)[:2000]}"
        st.save()
        print(f"[{st.label}] FAILED: {st.result['error'][:500]}", flush=True)
        return 1
    return 0


# ------------------------------------------------------------------------------------------------
# Parent side: one subprocess per candidate, then MFU, ratios, table, JSON
# ------------------------------------------------------------------------------------------------


def flops_config(size: str) -> types.SimpleNamespace:
    """What flops.train_flops_per_step needs, for a T5.1.1 size (gated-GELU: two input kernels)."""
    return types.SimpleNamespace(vocab_size=VOCAB, mlp_activations=("gelu", "linear"), **SIZES[size])


def run_candidate(args: argparse.Namespace, name: str, size: str, batch: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp) / "result.json"
        cmd = [sys.executable, __file__, f"--_worker={name}", f"--_size={size}", f"--_batch={batch}",
               f"--_result={out}", f"--seq={args.seq}", f"--dtype={args.dtype}", f"--steps={args.steps}",
               f"--remat_policy={args.remat_policy}", f"--devices={args.devices}",
               "--scan_layers" if args.scan_layers else "--no_scan"] + (["--compile_only"] if args.compile_only else [])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env)  # stdout/stderr go straight to ours: stages show up live
        interrupted = False
        try:
            rc = proc.wait(timeout=args.timeout_s or None)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            rc = f"killed after --timeout_s {args.timeout_s:.0f}"
        except KeyboardInterrupt:  # e.g. `timeout --signal=INT`: keep what the worker finished
            interrupted = True
            proc.kill()
            proc.wait()
            rc = "interrupted"
        result = json.loads(out.read_text()) if out.exists() and out.stat().st_size else {"stages_done": []}
    result["process_s"] = time.perf_counter() - t0
    if rc != 0 and "error" not in result:
        result["error"] = f"worker {rc} after stages {result['stages_done']}"
    result["interrupted"] = interrupted
    return result


def add_derived(r: dict, size: str, batch: int, args: argparse.Namespace) -> None:
    """tokens/s and MFU from the median step time."""
    tokens = batch * (args.input_len + args.target_len)
    r["tokens_per_step"] = tokens
    r["flops_per_step"] = flops.train_flops_per_step(flops_config(size), batch, args.input_len, args.target_len)
    if "median_s" not in r:
        return
    r["tokens_per_s"] = tokens / r["median_s"]
    peak = args.peak_flops or flops.peak_flops_per_device(r.get("device_kind", "cpu"))
    n = r.get("num_devices", 1)
    r["peak_flops_per_device"] = peak
    r["mfu"] = r["flops_per_step"] / (r["median_s"] * n * peak) if peak else None


def ratios(runs: list[dict]) -> list[str]:
    """Per size/batch: ours vs HF throughput, scanned vs unscanned compile and init."""
    lines, by_key = [], {}
    for r in runs:
        by_key.setdefault((r["size"], r["batch"]), {})[r["candidate"]] = r
    for (size, batch), c in by_key.items():
        hf = c.get("hf", {})
        for name in ("ours", "ours_scan", "ours_noscan"):
            o = c.get(name, {})
            if "tokens_per_s" in o and "tokens_per_s" in hf:
                lines.append(f"{size} b{batch}: tokens/s {name}/hf = {o['tokens_per_s'] / hf['tokens_per_s']:.2f}")
        s, u = c.get("ours_scan", {}), c.get("ours_noscan", {})
        for what in ("compile_s", "lower_s", "compile_only_s", "init_s", "first_step_s"):
            if what in s and what in u:
                lines.append(f"{size} b{batch}: {what} scanned/unscanned = {s[what] / u[what]:.3f} "
                             f"({s[what]:.1f} s vs {u[what]:.1f} s)")
    return lines


def _fmt(v, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def print_table(result: dict) -> None:
    print(f"\nseq {result['settings']['seq']}, dtype {result['settings']['dtype']}, "
          f"steps {result['settings']['steps']}")
    cols = ("size", "batch", "candidate", "import", "backend", "init", "compile", "1st step", "median",
            "tokens/s", "MFU")
    print(" ".join(f"{c:>10}" for c in cols))
    for r in result["runs"]:
        mfu = r.get("mfu")
        row = (r["size"], r["batch"], r["candidate"], _fmt(r.get("import_s")), _fmt(r.get("backend_s")),
               _fmt(r.get("init_s")), _fmt(r.get("compile_s")), _fmt(r.get("first_step_s")),
               _fmt(r.get("median_s"), ".4f"), _fmt(r.get("tokens_per_s"), ".0f"),
               "n/a" if mfu is None else f"{100 * mfu:.1f}%")
        print(" ".join(f"{str(v):>10}" for v in row) + (f"  ERROR {r['error'][:80]}" if "error" in r else ""))
    print("\nratios:")
    for line in result["ratios"]:
        print("  " + line)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args._worker:
        return worker_main(args)
    sizes = args.sizes.split(",")
    batches = [int(b) for b in args.batches.split(",")]
    if len(batches) == 1:
        batches *= len(sizes)
    candidates = args.candidates.split(",")
    bad = [s for s in sizes if s not in SIZES] + [c for c in candidates if c not in CANDIDATES]
    if bad or len(batches) != len(sizes):
        print(f"error: unknown {bad} or {len(batches)} batches for {len(sizes)} sizes; sizes from "
              f"{sorted(SIZES)}, candidates from {CANDIDATES}", file=sys.stderr)
        return 2
    if args.compile_only:
        candidates = [c for c in candidates if c != "hf"]  # eager: nothing to compile
    output = args.output or REPO / "benchmarks" / "results" / (
        "accelerator_compile.json" if args.compile_only else "accelerator.json")
    result = {"benchmark": "accelerator", "settings": {k: v for k, v in vars(args).items() if not k.startswith("_")},
              "runs": [], "ratios": []}
    for size, batch in zip(sizes, batches, strict=True):
        for name in candidates:
            print(f"=== {name} {size} batch {batch} seq {args.seq} ===", flush=True)
            r = {"candidate": name, "size": size, "batch": batch, **run_candidate(args, name, size, batch)}
            add_derived(r, size, batch, args)
            result["runs"].append(r)
            result["ratios"] = ratios(result["runs"])
            write_results(result, output)
            if r.pop("interrupted"):
                print("interrupted: stopping here", flush=True)
                print_table(result)
                return 130
    print_table(result)
    return 0 if not any("error" in r for r in result["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
