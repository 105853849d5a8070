#!/usr/bin/env bash
# Sets up .venv (first run only) and runs the main job: instruction tuning on the embedded suite with
# one cluster held out, then zero-shot evaluation on it. Extra arguments go to the trainer, e.g.
#   bash scripts/quickstart.sh --gin.HELD_OUT_CLUSTER="'sentiment'" --gin.MODEL_DIR="'runs/qs_sentiment'"
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export TF_CPP_MIN_LOG_LEVEL=3 JAX_PLATFORMS=cpu
exec .venv/bin/python -m flan_trainer --gin_file=runs/quickstart.gin --log_level=WARNING "$@"
