"""Rank-classification scoring speed: encode-once (`model.score_options`) vs pair-by-pair
(`model.score_batch`, one copy of the prompt per option, as T5/T0 score).

For 2-, 3- and 4-option tasks with long prompts it times both paths on the same examples (after a
compile warm-up), checks that they agree, and reports the speedup and options scored per second.
Prints a table and writes benchmarks/results/rank_scoring.json.

    python benchmarks/bench_rank_scoring.py                 # tiny T5, ~1-2 minutes on 2 CPU cores
    python benchmarks/bench_rank_scoring.py --size small    # T5.1.1-small shapes (77M), slower
"""

from __future__ import annotations

import argparse
import os
import pathlib
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402
import numpy as np  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from results_io import write_results  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

from evals import rank_classification as rc  # noqa: E402
from flan_trainer.models import model_api  # noqa: E402
from flan_trainer.models.config import TransformerConfig  # noqa: E402

SIZES = {
    # Vocabulary stays T5's 32128 so the decoder's logits cost is realistic.
    "tiny": dict(emb_dim=256, num_heads=4, head_dim=64, mlp_dim=512, num_encoder_layers=2, num_decoder_layers=2),
    "small": dict(emb_dim=512, num_heads=6, head_dim=64, mlp_dim=1024, num_encoder_layers=8, num_decoder_layers=8),
}


def build(size: str) -> tuple[model_api.EncoderDecoderModel, object]:
    cfg = TransformerConfig(vocab_size=32128, dtype="float32", **SIZES[size])
    model = model_api.EncoderDecoderModel(cfg)
    shapes = {"encoder_input_tokens": (1, 16), "decoder_input_tokens": (1, 8), "decoder_target_tokens": (1, 8)}
    params = model.get_initial_variables(jax.random.PRNGKey(0), shapes)["params"]
    return model, params


def make_examples(n: int, k: int, prompt_len: int, seed: int) -> list[rc.RankExample]:
    """Long random prompts and short options (2-6 tokens + EOS), like FLAN's label words."""
    rng = np.random.default_rng(seed)
    out = []
    for e in range(n):
        prompt = np.append(rng.integers(3, 32000, prompt_len - 1), 1).astype(np.int32)
        options = tuple(np.append(rng.integers(3, 32000, rng.integers(2, 7)), 1).astype(np.int32) for _ in range(k))
        out.append(rc.RankExample(e, prompt, options, gold=(0,)))
    return out


def timed(fn, repeats: int) -> float:
    fn()  # compile and warm up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def run(size: str, n: int, prompt_len: int, batch_size: int, repeats: int) -> dict:
    model, params = build(size)
    rows = []
    for k in (2, 3, 4):
        examples = make_examples(n, k, prompt_len, seed=k)
        once = rc.score_options_encode_once(model, params, examples, batch_size)
        pairs = rc.score_options_pairwise(model, params, examples, batch_size * k)
        max_diff = max(float(np.max(np.abs(a - b))) for a, b in zip(once, pairs, strict=True))

        def encode_once(examples=examples):
            jax.block_until_ready(rc.score_options_encode_once(model, params, examples, batch_size))

        def pairwise(examples=examples, k=k):
            # Same number of prompt tokens per batch as the encode-once path: B*K pair rows.
            jax.block_until_ready(rc.score_options_pairwise(model, params, examples, batch_size * k))

        t_once, t_pairs = timed(encode_once, repeats), timed(pairwise, repeats)
        rows.append({
            "num_options": k, "examples": n, "prompt_len": prompt_len,
            "encode_once_s": t_once, "pairwise_s": t_pairs, "speedup": t_pairs / t_once,
            "options_per_s_encode_once": n * k / t_once, "options_per_s_pairwise": n * k / t_pairs,
            "max_abs_score_diff": max_diff,
        })
    return {
        "size": size, "config": SIZES[size], "batch_size_prompts": batch_size, "repeats": repeats,
        "backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()][:1],
        "cpu_count": os.cpu_count(), "python": platform.python_version(), "jax": jax.__version__,
        "rows": rows,
    }


def print_table(result: dict) -> None:
    print(f"size={result['size']} backend={result['backend']} prompts/batch={result['batch_size_prompts']}")
    print(f"{'K':>2} {'prompt':>6} {'once s':>8} {'pairs s':>8} {'speedup':>7} {'opt/s once':>10} "
          f"{'opt/s pairs':>11} {'max|diff|':>9}")
    for r in result["rows"]:
        print(f"{r['num_options']:>2} {r['prompt_len']:>6} {r['encode_once_s']:>8.3f} {r['pairwise_s']:>8.3f} "
              f"{r['speedup']:>7.2f} {r['options_per_s_encode_once']:>10.1f} "
              f"{r['options_per_s_pairwise']:>11.1f} {r['max_abs_score_diff']:>9.2e}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", default="tiny", choices=sorted(SIZES))
    p.add_argument("--examples", type=int, default=16)
    p.add_argument("--prompt_len", type=int, default=512)
    p.add_argument("--batch_size", type=int, default=4, help="prompts per encode-once batch")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "rank_scoring.json"))
    args = p.parse_args(argv)
    result = run(args.size, args.examples, args.prompt_len, args.batch_size, args.repeats)
    print_table(result)
    write_results(result, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
