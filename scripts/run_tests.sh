#!/usr/bin/env bash
# Runs the test suite. Default: everything but the slow tests. --all: everything (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
export XLA_FLAGS="${XLA_FLAGS:---xla_force_host_platform_device_count=8}" TF_CPP_MIN_LOG_LEVEL=3 JAX_PLATFORMS=cpu
marker=(-m "not slow")
[[ "${1:-}" == "--all" ]] && { marker=(); shift; }
# Two workers: this is sized for a 2-core machine; every test file stands alone. Files go out in
# collection order, which tests/conftest.py starts with the heaviest (xdist would otherwise put
# files with few tests, like the one-test multi-process files, last).
.venv/bin/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder "${marker[@]}" "$@"
