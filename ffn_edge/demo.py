"""The main job end to end, on a fresh machine: ``./run.sh demo`` (``python -m ffn_edge.demo``).

1. a model: the small FFN shipped in ``models/demo_ffn.safetensors`` (TSM-ResNet-18 ×0.25 trained
   on the built-in synthetic temporal set; ``--train`` retrains it here with the project's own
   ``ffn-train``, the command is printed), or a fresh one when the file is missing;
2. ``ffn-export`` it to a bundle of per-frame-count ONNX graphs sharing one weight file;
3. write a sample video: a sequence of synthetic clips whose classes are known;
4. run ``ffn-run`` on it with a latency budget (by default three quarters of the way from the measured
   latency of the smallest to the largest sub-network, so the scheduler has a real choice to make), print
   every decision next to the true class, and the summary.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from .runtime.errors import ConfigError, run_cli

SHIPPED = Path(__file__).resolve().parent.parent / "models" / "demo_ffn.safetensors"
CLIP_FRAMES, CLIP_SIZE, FPS = 48, 64, 12.0  # the synthetic set's clips: 4 s at 12 fps
# What produced the shipped checkpoint (``--train`` runs exactly this, into OUT/train).
TRAIN_ARGS = ["--arch", "tsm_resnet18", "--width-mult", "0.25", "--synth-train-per-class", "40",
              "--synth-val-per-class", "20", "--epochs", "40", "--optimizer", "adamw", "--lr", "3e-3",
              "--weight-decay", "1e-4", "--dropout", "0.2", "--batch-size", "16", "--workers", "1"]


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    print("$ " + shlex.join(cmd), flush=True)
    done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise ConfigError(f"{Path(cmd[0]).name} failed with exit code {done.returncode} (its error is above)")
    return done


def _tool(name: str) -> str:
    """The console script installed next to this interpreter (works inside a venv without activation)."""
    path = Path(sys.executable).with_name(name)
    return str(path) if path.exists() else name


def write_sample_video(path: Path, labels: list[int], seed: int) -> None:
    """One synthetic clip per label, back to back, so decision k covers exactly clip k.

    One second of the last frame follows, so the last window is complete before the file ends.
    """
    from .data.synthetic import render_clip

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (CLIP_SIZE, CLIP_SIZE))
    if not writer.isOpened():
        raise ConfigError(f"{path}: OpenCV cannot write mp4v video")
    try:
        for i, label in enumerate(labels):
            clip = render_clip(label, np.random.default_rng([seed, 7, label, i]), CLIP_FRAMES, CLIP_SIZE)
            for image in clip:
                writer.write(image)
        for _ in range(round(FPS)):
            writer.write(clip[-1])
    finally:
        writer.release()


def auto_budget(bundle: Path) -> float:
    """Three quarters of the way from the smallest to the largest sub-network's median latency here.

    Room for the middle sub-network with its margin, not for the largest: the scheduler must choose.
    """
    from .runtime import FFNRuntime

    with FFNRuntime.open(bundle) as rt:
        counts = rt.manifest.subnet_frame_counts
        clip = np.zeros((CLIP_FRAMES, CLIP_SIZE, CLIP_SIZE, 3), np.uint8)
        med = {}
        for n in (counts[0], counts[-1]):
            med[n] = float(np.median([rt.predict(clip, n=n).latency_ms for _ in range(7)]))
    budget = (med[counts[0]] + 3 * med[counts[-1]]) / 4
    print(f"measured latency: {counts[0]} frames {med[counts[0]]:.1f} ms, {counts[-1]} frames "
          f"{med[counts[-1]]:.1f} ms -> budget {budget:.1f} ms")
    return budget


def demo(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ffn_edge.demo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/demo", help="working directory (default runs/demo)")
    ap.add_argument("--ckpt", help="use this checkpoint instead of the shipped one")
    ap.add_argument("--train", action="store_true", help="retrain the demo model here (~7 min on 2 idle cores)")
    ap.add_argument("--budget-ms", type=float, help="latency budget (default: measured, see above)")
    ap.add_argument("--clips", type=int, default=20, help="clips in the sample video (default 20)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    if args.clips < 1:
        raise ConfigError("--clips must be >= 1")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    print("== 1. model")
    if args.train or (args.ckpt is None and not SHIPPED.is_file()):
        _run([_tool("ffn-train"), *TRAIN_ARGS, "--out", str(out / "train"), "--quiet"])
        ckpt = out / "train" / "best.safetensors"
    else:
        ckpt = Path(args.ckpt) if args.ckpt else SHIPPED
        print(f"using {ckpt} (rebuild it with: ffn-train {shlex.join(TRAIN_ARGS)} --out DIR)")

    print("== 2. export")
    bundle = out / "model.ffn"
    _run([_tool("ffn-export"), "--ckpt", str(ckpt), "--frames", "4", "8", "16", "--out", str(bundle), "--force"])

    print("== 3. sample video")
    from .checkpoint import read_meta

    class_names = read_meta(ckpt).class_names
    labels = [int(v) for v in np.random.default_rng(args.seed).integers(0, len(class_names), args.clips)]
    video = out / "sample.mp4"
    write_sample_video(video, labels, args.seed)
    print(f"{video}: {args.clips} clips of {CLIP_FRAMES / FPS:.0f} s, classes known")

    print("== 4. ffn-run with a latency budget")
    budget = args.budget_ms if args.budget_ms is not None else auto_budget(bundle)
    window = CLIP_FRAMES / FPS
    cmd = [_tool("ffn-run"), "--bundle", str(bundle), "--video", str(video), "--budget-ms", f"{budget:.1f}",
           "--window-s", f"{window:g}", "--stride-ms", f"{window * 1000:g}", "--json",
           "--output", str(out / "annotated.mp4")]
    decisions = [json.loads(line) for line in _run(cmd).stdout.splitlines() if line.strip()]
    print(f"\n{'clip':>4}  {'true class':<26}{'predicted':<26}{'score':>6}{'frames':>7}{'ms':>8}  reason")
    hits = 0
    for i, d in enumerate(decisions[: len(labels)]):
        truth, p = class_names[labels[i]], d
        hits += p["label"] == truth
        print(f"{i:>4}  {truth:<26}{p['label']:<26}{p['score']:>6.2f}{p['frames']:>7}{p['latency_ms']:>8.1f}  "
              f"{p['reason']}")
    print(f"\n{hits}/{len(decisions[: len(labels)])} clips right; annotated video: {out / 'annotated.mp4'}; "
          f"total {time.perf_counter() - t0:.0f} s")
    return 0


def main() -> None:
    run_cli("ffn-demo", demo)


if __name__ == "__main__":
    main()
