#!/usr/bin/env bash
# Creates (or reuses) the project's virtual environment in .venv with pinned dependencies.
# Usage: bash scripts/setup_env.sh [--interop] [--beam] [--launch]
#   --interop adds torch + transformers for parity tests
#   --beam    also creates .venv-beam, the Apache Beam extra for `python -m flan_tasks cache`: its own venv
#             because apache-beam 2.77 needs numpy<2.5, protobuf<7, pillow<13, pyarrow<26 (see requirements-beam.txt)
#   --launch  also creates .venv-launch with XManager (launch/xm_launch.py); its dependencies
#             (protobuf<7) do not fit the training pins, so it is a separate environment
set -euo pipefail
cd "$(dirname "$0")/.."

find_python() {
  # jax 0.12 / flax 0.12.12 need Python 3.12; prefer it wherever it is installed.
  for cand in "${PYTHON:-}" python3.12 "$HOME"/.pyenv/versions/3.12*/bin/python3.12 /usr/bin/python3.12 \
              /usr/local/bin/python3.12; do
    if [[ -n "$cand" ]] && command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
      echo "$cand"; return 0
    fi
  done
  echo "error: Python 3.12 not found. Install it (e.g. 'pyenv install 3.12' or 'apt-get install python3.12-venv')," \
       "or point PYTHON=/path/to/python3.12 at it." >&2
  return 1
}

stamp=.venv/.installed-$(cat requirements.txt constraints-py312.txt requirements-interop.txt setup.py | sha1sum | cut -c1-12)
want_interop=0; want_beam=0; want_launch=0
for arg in "$@"; do
  case "$arg" in
    --interop) want_interop=1 ;;
    --beam) want_beam=1 ;;
    --launch) want_launch=1 ;;
    *) echo "error: unknown option $arg (use --interop, --beam and/or --launch)" >&2; exit 2 ;;
  esac
done

if [[ ! -x .venv/bin/python ]]; then
  py=$(find_python)
  echo "[setup] creating .venv with $py"
  "$py" -m venv .venv
fi
if [[ ! -f "$stamp" || ( $want_interop == 1 && ! -f "$stamp.interop" ) ]]; then
  echo "[setup] installing pinned dependencies into .venv (first time: a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -c constraints-py312.txt -r requirements.txt
  if [[ $want_interop == 1 ]]; then
    .venv/bin/python -m pip install -q -c constraints-py312.txt -r requirements-interop.txt
    touch "$stamp.interop"
  fi
  .venv/bin/python -m pip install -q --no-deps -e .
  touch "$stamp"
fi
echo "[setup] .venv ready: $(.venv/bin/python --version)"

if [[ $want_beam == 1 ]]; then
  beam_stamp=.venv-beam/.installed-$(cat requirements-beam.txt constraints-beam-py312.txt setup.py | sha1sum | cut -c1-12)
  if [[ ! -x .venv-beam/bin/python ]]; then
    py=$(find_python)
    echo "[setup] creating .venv-beam with $py"
    "$py" -m venv .venv-beam
  fi
  if [[ ! -f "$beam_stamp" ]]; then
    echo "[setup] installing the Beam extra into .venv-beam (first time: a few minutes)"
    .venv-beam/bin/python -m pip install -q --upgrade pip
    .venv-beam/bin/python -m pip install -q -c constraints-beam-py312.txt -r requirements-beam.txt
    .venv-beam/bin/python -m pip install -q --no-deps -e .
    touch "$beam_stamp"
  fi
  echo "[setup] .venv-beam ready: apache-beam $(.venv-beam/bin/python -c 'import apache_beam; print(apache_beam.__version__)')"
fi

if [[ $want_launch == 1 ]]; then
  launch_stamp=.venv-launch/.installed-$(cat requirements-launch.txt constraints-launch-py312.txt | sha1sum | cut -c1-12)
  if [[ ! -f "$launch_stamp" ]]; then
    [[ -x .venv-launch/bin/python ]] || "$(find_python)" -m venv .venv-launch
    echo "[setup] installing XManager into .venv-launch (first time: a few minutes)"
    .venv-launch/bin/python -m pip install -q --upgrade pip
    .venv-launch/bin/python -m pip install -q -c constraints-launch-py312.txt -r requirements-launch.txt
    touch "$launch_stamp"
  fi
  echo "[setup] .venv-launch ready (XManager $(.venv-launch/bin/python -c 'import importlib.metadata as m; print(m.version("xmanager"))'))"
fi
