#!/usr/bin/env bash
# The larger TEA / UniFormer run of docs/architectures/README.md: 4 runs (ST-8, FFN, ST-2, ST-4) of one arch.
# usage: OUT=RUN [EPOCHS=10] docs/architectures/train_small_x2.sh ARCH CORE WIDTH LR   (from the repo root)
set -u
arch=$1; core=$2; width=$3; lr=$4
OUT=${OUT:-runs/arch2d}
EPOCHS=${EPOCHS:-10}
COMMON=(--synth-size 36 --input-size 32 --resize-shorter 36 --synth-train-per-class 24 --synth-val-per-class 8
        --epochs $EPOCHS --frame-counts 2 4 8 --optimizer adamw --weight-decay 1e-4 --dropout 0.2 --batch-size 8 --workers 0
        --data-dir "$OUT/synthetic_$arch" --quiet --arch $arch --width-mult $width --lr $lr)
for order in st8 ffn st2 st4; do
  t0=$SECONDS
  case $order in
    ffn) OMP_NUM_THREADS=1 taskset -c $core .venv/bin/python -m ffn_edge.train "${COMMON[@]}" --out $OUT/${arch}_ffn ;;
    *) OMP_NUM_THREADS=1 taskset -c $core .venv/bin/python -m ffn_edge.train "${COMMON[@]}" --method st --frames ${order#st} --out $OUT/${arch}_$order ;;
  esac
  echo "${arch}_$order $((SECONDS - t0)) s" >> $OUT/times.txt
done
