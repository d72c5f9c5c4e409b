#!/usr/bin/env bash
# Small FFN vs ST runs for tea_resnet50 / uniformer_s on the synthetic set (one seed), pinned to one core.
# usage: docs/architectures/train_small.sh OUT_DIR [ARCH:WIDTH ...]
set -euo pipefail
OUT=${1:?out dir}; shift
RUNS=${*:-"uniformer_s:0.25:1e-3 tea_resnet50:0.125:3e-3"}  # arch:width:lr
PY=${PY:-.venv/bin/python}
COMMON=(--synth-size 36 --input-size 32 --resize-shorter 36 --synth-train-per-class 12 --synth-val-per-class 6
        --epochs 6 --frame-counts 2 4 8 --optimizer adamw --weight-decay 1e-4 --dropout 0.2 --batch-size 8 --workers 0
        --data-dir "$OUT/synthetic" --quiet)
train() {  # name, then extra flags
  local name=$1; shift
  local t0=$SECONDS
  OMP_NUM_THREADS=1 taskset -c 0 "$PY" -m ffn_edge.train "${COMMON[@]}" --out "$OUT/$name" "$@"
  echo "$name $((SECONDS - t0)) s" >> "$OUT/times.txt"
}
for order in st8 ffn st2 st4; do
  for spec in $RUNS; do
    IFS=: read -r arch width lr <<< "$spec"
    case $order in
      ffn) train "${arch}_ffn" --arch "$arch" --width-mult "$width" --lr "$lr" ;;
      st*) train "${arch}_${order}" --arch "$arch" --width-mult "$width" --lr "$lr" --method st --frames "${order#st}" ;;
    esac
  done
done
