#!/usr/bin/env bash
# Every GPU number issue 9 asks for, in ONE call of at most ~8 minutes on one H100/H200:
# T5.1.1-base (batch 128) and T5.1.1-large (batch 64), 512/128 tokens, bf16 activations, fp32
# params, Adafactor: ours (scanned layers) vs Hugging Face PyTorch T5, each in its own process;
# import/init/compile/first-step seconds, median step, tokens/s, MFU, and ours/HF tokens/s ratios.
#
#   bash benchmarks/gpu_check.sh                 # from the repository root
#
# Needs a Python with jax (CUDA), flax, optax, orbax, numpy, torch and transformers; NOT tensorflow,
# seqio, tensorflow-text or clu. gin-config is the one other dependency: if it is missing it is
# installed, offline, from a wheel in ./.whl/ (make one here with
# `pip download --no-deps -d .whl gin-config==0.5.0` and carry .whl/ to the machine).
# Stages print as they finish and the JSON is rewritten after every candidate, so a run stopped by
# a time limit keeps what finished. Results: benchmarks/results/accelerator_gpu.json (and $OUT/ if
# set). Knobs: PYTHON, STEPS (default 10), PER_CANDIDATE_S (default 180), TOTAL_S (default 460),
# EXTRA (more bench_accelerator.py flags, e.g. "--remat_policy minimal").
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" TF_CPP_MIN_LOG_LEVEL=3
if ! "$PYTHON" -c "import gin" 2>/dev/null; then
  echo "gin-config missing: installing from ./.whl" >&2
  "$PYTHON" -m pip install -q --no-index --no-deps --find-links .whl gin-config || {
    echo "error: no gin-config wheel in ./.whl; run 'pip download --no-deps -d .whl gin-config==0.5.0' where PyPI is reachable" >&2
    exit 2; }
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
"$PYTHON" - <<'PY'
import importlib.util, jax
print("jax", jax.__version__, "devices", jax.devices(), flush=True)
missing = [m for m in ("flax", "optax", "torch", "transformers") if importlib.util.find_spec(m) is None]
if missing:
    raise SystemExit(f"error: missing {missing}")
if jax.default_backend() != "gpu":
    print("WARNING: jax found no GPU; numbers below are for", jax.default_backend(), flush=True)
PY
out=benchmarks/results/accelerator_gpu.json
timeout --signal=INT "${TOTAL_S:-460}" "$PYTHON" benchmarks/bench_accelerator.py \
  --sizes base,large --batches 128,64 --seq 512/128 --dtype bfloat16 --steps "${STEPS:-10}" \
  --candidates ours,hf --scan_layers --remat_policy none --timeout_s "${PER_CANDIDATE_S:-180}" \
  --output "$out" ${EXTRA:-}
rc=$?
if [ -n "${OUT:-}" ] && [ -f "$out" ]; then cp "$out" "$OUT/"; fi
exit $rc
