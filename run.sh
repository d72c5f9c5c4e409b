#!/usr/bin/env bash
# One entry point for a fresh machine: sets up .venv (idempotent) and runs a job.
#   ./run.sh demo    train a small FFN on the synthetic set, export it, run it on a video
#   ./run.sh test    lint + the test suite (what CI runs; GPU tests skip without a GPU), one worker per usable CPU
#   ./run.sh test-fast       the tests not marked slow (no training, no full export of its own): the edit loop
#   ./run.sh test-gpu        the tests marked gpu only (run them on a machine with an NVIDIA GPU)
#   ./run.sh test-gpu --system   the same with the machine's own python3 (PYTHON=...), offline: installs the
#                                project with pip --no-deps --no-build-isolation (tools/offline_install.sh;
#                                WHEELS=DIR adds the wheels in DIR first), no venv
#   ./run.sh check-extras    resolve every install extra with pip --dry-run (needs the package index)
# TORCH_INDEX=URL: where the venv's torch comes from (https://download.pytorch.org/whl/cpu for the CPU build
# anywhere; PyPI's default on Linux x86 is a CUDA build).
set -euo pipefail
cd "$(dirname "$0")"
VENV=${VENV:-.venv}
PY="$VENV/bin/python"
JOBS=$(nproc 2>/dev/null || echo auto)  # pytest-xdist workers: the CPUs this process may use

setup() {
    if [ ! -x "$PY" ]; then python3 -m venv "$VENV"; fi
    local stamp="$VENV/.ffn-edge-installed"
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        "$PY" -m pip install -q --upgrade pip
        # torch first, from TORCH_INDEX when given (the PyTorch CPU index: the CPU build anywhere); a bare
        # 'torch' requirement from PyPI on Linux x86 is a multi-GB CUDA build.
        "$PY" -m pip install -q ${TORCH_INDEX:+--index-url "$TORCH_INDEX"} "torch==2.13.0"
        # The cpu extra: onnxruntime + opencv-python. A GPU machine adds onnxruntime-gpu by hand (README).
        "$PY" -m pip install -q -e ".[cpu,train,dev]"
        touch "$stamp"
    fi
}

case "${1:-}" in
    demo) setup; shift; exec "$PY" -m ffn_edge.demo "$@" ;;
    test) setup; shift; "$VENV/bin/ruff" check .; exec "$PY" -m pytest -n "$JOBS" --dist loadfile "$@" ;;
    test-fast) setup; shift; exec "$PY" -m pytest -n "$JOBS" --dist loadfile -m "not slow" "$@" ;;
    test-gpu)
        shift
        if [ "${1:-}" = "--system" ]; then
            shift
            PY=${PYTHON:-python3}
            # shellcheck source=tools/offline_install.sh
            . tools/offline_install.sh
            offline_install "$PY" "${WHEELS:-}" || exit 3
            if ! "$PY" -c "import pytest" 2>/dev/null; then
                echo "run.sh: error: pytest is not installed in $PY (carry its wheels: WHEELS=DIR, see README)" >&2
                exit 3
            fi
        else
            setup
        fi
        exec "$PY" -m pytest -m gpu -rs -p no:cacheprovider "$@" ;;
    check-extras) setup; shift; exec "$PY" tools/check_extras.py "$@" ;;
    *) echo "usage: ./run.sh demo|test|test-fast|test-gpu|check-extras [args]" >&2; exit 2 ;;
esac
