#!/usr/bin/env bash
# Sets up .venv (with the interop extras torch + transformers), .venv-beam (the Apache Beam extra the
# offline-cache test builds with) and .venv-launch (XManager), and runs the full test suite, as CI does.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh --interop --beam --launch
.venv/bin/ruff check .
bash scripts/run_tests.sh --all "$@"
