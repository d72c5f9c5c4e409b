#!/usr/bin/env bash
# The first thing to run on a new GPU box. Installs ffn-edge into the machine's own Python without
# network (tools/offline_install.sh), then runs the GPU check (python -m ffn_edge.gpucheck):
# training on CUDA (bf16, fp16, one-process torchrun DDP), ffn-eval CUDA vs CPU, torch latency,
# CUDA graphs, torch.compile and memory, then each TensorRT / ONNX Runtime GPU check whose library
# is installed ("skipped: <library> not installed" otherwise). Writes OUT/gpucheck.{json,md}.
#
#   tools/gpu_check.sh [--python PY] [--wheels DIR] [--out DIR] [gpucheck options, e.g. --epochs 5]
#
# Exit status: the check's (0 all ok or skipped, 1 a check failed, 2 bad option); 3 when ffn-edge
# cannot be made importable offline.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=python3
WHEELS=""
OUT=gpucheck-out
ARGS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --python) PY=$2; shift 2 ;;
        --wheels) WHEELS=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        *) ARGS+=("$1"); shift ;;
    esac
done
OUT=$(mkdir -p "$OUT" && cd "$OUT" && pwd)
# shellcheck source=tools/offline_install.sh
. tools/offline_install.sh
offline_install "$PY" "$WHEELS" || exit 3
exec "$PY" -m ffn_edge.gpucheck --out "$OUT" ${ARGS[@]+"${ARGS[@]}"}
