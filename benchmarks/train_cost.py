"""Training cost of FFN vs Separated Training.

Claim checked: one FFN epoch (L, M, H forwards of every video, one backward) costs about what the
three ST runs at L, M and H cost together — goal FFN ≤ 1.05 × Σ ST epoch time — and its peak
memory is that of the largest single run plus the extra activations kept for one backward.

Each run is a separate ``ffn-train`` process on the same synthetic data (generated once), so peak
memory is per run: peak RSS of the process on CPU (``getrusage``, it includes the interpreter and
the data pipeline), ``torch.cuda.max_memory_allocated`` on CUDA. Epoch time is training only
(no validation), the fastest of ``--epochs`` epochs (the first pays one-off warm-up).

    python benchmarks/train_cost.py                       # a few minutes on 2 shared CPU cores
    python benchmarks/train_cost.py --device cuda --arch tsm_resnet50 --width-mult 1 --input-size 224 \\
        --synth-size 256 --batch-size 16 --amp bf16
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ffn_edge.data import make_synthetic


def run(name: str, method_args: list[str], common: list[str], out: Path, threads: int) -> dict[str, Any]:
    """One ffn-train process; returns its fastest epoch time and its peak memory."""
    cmd = [sys.executable, "-m", "ffn_edge.train", *method_args, *common, "--out", str(out / name), "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"train_cost: {name} failed:\n{r.stderr[-3000:]}")
    log = [json.loads(s) for s in (out / name / "log.jsonl").read_text().splitlines()]
    return {"run": name, "epoch_s": min(e["train_time"] for e in log),
            "peak_mem_mb": max(e["peak_mem_mb"] for e in log)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--arch", default="tsm_resnet18")
    p.add_argument("--width-mult", type=float, default=0.25)
    p.add_argument("--frame-counts", nargs=3, type=int, default=[4, 8, 16], help="L M H")
    p.add_argument("--synth-size", type=int, default=64, help="synthetic frame size (px)")
    p.add_argument("--input-size", type=int, default=56)
    p.add_argument("--per-class", type=int, default=4, help="training videos per class (10 classes)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="OMP/torch threads per run (CPU)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--amp", default="none", choices=("none", "bf16", "fp16"))
    p.add_argument("--out", help="keep runs and data here (default: a temporary directory)")
    p.add_argument("--json", help="also write the results to this JSON file")
    a = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="train_cost_") as tmp:
        out = Path(a.out or tmp)
        data = make_synthetic(out / "data", train_per_class=a.per_class, val_per_class=1, frames=48,
                              size=a.synth_size, seed=0)
        low, mid, high = a.frame_counts
        common = ["--dataset", "frames", "--train-list", str(data.train_list), "--val-list", str(data.val_list),
                  "--root", str(data.root), "--arch", a.arch, "--width-mult", str(a.width_mult),
                  "--input-size", str(a.input_size), "--resize-shorter", str(a.synth_size),
                  "--frame-counts", str(low), str(mid), str(high), "--batch-size", str(a.batch_size),
                  "--epochs", str(a.epochs), "--workers", str(a.workers), "--device", a.device, "--amp", a.amp]
        rows = [run("ffn", ["--method", "ffn"], common, out, a.threads)]
        rows += [run(f"st{n}", ["--method", "st", "--frames", str(n)], common, out, a.threads)
                 for n in (low, mid, high)]

    st_sum = sum(r["epoch_s"] for r in rows[1:])
    ratio = rows[0]["epoch_s"] / st_sum
    mem = "peak RSS (MB)" if a.device == "cpu" else "peak CUDA alloc (MB)"
    print(f"{a.arch} x{a.width_mult}, {a.input_size}px, {10 * a.per_class} videos, batch {a.batch_size}, "
          f"{a.device}{'' if a.device == 'cuda' else f' ({a.threads} threads)'}")
    print(f"{'run':<8} {'epoch time (s)':>15} {mem:>21}")
    for r in rows:
        print(f"{r['run']:<8} {r['epoch_s']:>15.2f} {r['peak_mem_mb']:>21.0f}")
    print(f"{'sum ST':<8} {st_sum:>15.2f}")
    print(f"FFN / sum ST = {ratio:.3f}x (goal <= 1.05x): {'met' if ratio <= 1.05 else 'NOT met'}")
    if a.json:
        Path(a.json).write_text(json.dumps({"rows": rows, "st_sum_s": st_sum, "ratio": ratio, "args": vars(a)},
                                           indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
