"""The main job end to end, on a fresh machine: ``./run.sh demo`` (``python -m ffn_edge.demo``).

1. a model: the small FFN shipped in ``models/demo_ffn.safetensors`` (TSM-ResNet-18 ×0.25 trained
   on the built-in synthetic temporal set; ``--train`` retrains it here with the project's own
   ``ffn-train``, the command is printed), or a fresh one when the file is missing;
2. ``ffn-export`` it to a bundle of ONNX graphs sharing one weight file, with a dynamic frame axis (so
   any count from 4 to 16 frames is a choice, each served by the nearest sub-network);
3. write a sample video: a sequence of synthetic clips whose classes are known;
4. calibrate: stream the video through the same path ``ffn-run`` uses (capture thread, ring, one run
   per decision) with every count in turn, CALIBRATION_RUNS runs each, and set the budget at
   BUDGET_FRACTION of the way from the smallest to the largest count's p95 latency, so the scheduler
   has a real choice to make (unless ``--budget-ms`` is given);
5. run ``ffn-run`` on it with that budget (two decisions per clip), print each clip's decision next to
   the true class, then the share of decisions within budget after the scheduler's warm-up and the
   frame counts it used.

Latency is ``Prediction.latency_ms`` everywhere: the inference run of the n sampled frames.
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

from .core.argparsing import Parser
from .core.errors import ConfigError, run_cli

SHIPPED = Path(__file__).resolve().parent.parent / "models" / "demo_ffn.safetensors"
CLIP_FRAMES, CLIP_SIZE, FPS = 48, 64, 12.0  # the synthetic set's clips: 4 s at 12 fps
CALIBRATION_COUNTS = (4, 6, 8, 10, 12, 14, 16)
CALIBRATION_RUNS = 20  # per count, through the stream path
BUDGET_PERCENTILE = 95
BUDGET_FRACTION = 0.6  # of the way from the smallest to the largest count's p95 latency
DECISIONS_PER_CLIP = 2
# What produced the shipped checkpoint (``--train`` runs exactly this, into OUT/train).
TRAIN_ARGS = ["--arch", "tsm_resnet18", "--width-mult", "0.25", "--synth-train-per-class", "40",
              "--synth-val-per-class", "20", "--epochs", "40", "--optimizer", "adamw", "--lr", "3e-3",
              "--weight-decay", "1e-4", "--dropout", "0.2", "--batch-size", "16", "--workers", "1"]


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    print("$ " + shlex.join(cmd), flush=True)
    done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise ConfigError(f"{shlex.join(cmd[:3])} failed with exit code {done.returncode} (its error is above)")
    return done


TOOLS = {"ffn-train": "ffn_edge.train", "ffn-export": "ffn_edge.export.cli", "ffn-run": "ffn_edge.runtime.app.cli"}


def _tool(name: str) -> list[str]:
    """The command of a console script, run by this interpreter (any venv, activated or not)."""
    return [sys.executable, "-m", TOOLS[name]]


def write_sample_video(path: Path, labels: list[int], seed: int, fps: float = FPS) -> None:
    """One synthetic clip per label, back to back, so decision k covers exactly clip k.

    One second of the last frame follows, so the last window is complete before the file ends.
    ``fps`` other than the clips' own plays them faster or slower (a 30 fps source for latency).
    """
    from .data.synthetic import render_clip

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (CLIP_SIZE, CLIP_SIZE))
    if not writer.isOpened():
        raise ConfigError(f"{path}: OpenCV cannot write mp4v video")
    try:
        for i, label in enumerate(labels):
            clip = render_clip(label, np.random.default_rng([seed, 7, label, i]), CLIP_FRAMES, CLIP_SIZE)
            for image in clip:
                writer.write(image)
        for _ in range(round(fps)):
            writer.write(clip[-1])
    finally:
        writer.release()


class _RoundRobin:
    """A ``stream(scheduler=...)`` that runs every count in turn and keeps the latencies (calibration)."""

    def __init__(self, counts: tuple[int, ...]) -> None:
        self.counts = counts
        self.latencies: dict[int, list[float]] = {n: [] for n in counts}
        self.runs = 0

    def decide(self, now_s: float, signals: object) -> object:
        from .runtime.control.scheduler import Decision

        n = self.counts[self.runs % len(self.counts)]
        return Decision(n, 0, None, None, ["calibration"], True)

    def observe(self, n: int, subnet: int, latency_ms: float, now_s: float, cpu_ms: float | None = None) -> None:
        self.latencies[n].append(latency_ms)
        self.runs += 1


def auto_budget(bundle: Path, video: Path, clips: int, window_s: float) -> float:
    """BUDGET_FRACTION of the way from the smallest to the largest count's p95 stream latency here.

    Measured through the stream path ``ffn-run`` takes (same window, same latency definition), so the
    budget is about the quantity the scheduler will schedule on.
    """
    from .runtime import FFNRuntime

    rr = _RoundRobin(CALIBRATION_COUNTS)
    runs = CALIBRATION_RUNS * len(CALIBRATION_COUNTS)
    with FFNRuntime.open(bundle) as rt:
        stride_ms = 1000 * (clips * CLIP_FRAMES / FPS - window_s) / runs  # spread over the video
        with rt.stream(str(video), scheduler=rr, window_s=window_s, stride_ms=stride_ms, max_decisions=runs) as s:
            for _ in s:
                pass
    p95 = {n: float(np.percentile(v, BUDGET_PERCENTILE)) for n, v in rr.latencies.items() if v}
    lo, hi = p95[CALIBRATION_COUNTS[0]], p95[CALIBRATION_COUNTS[-1]]
    budget = lo + BUDGET_FRACTION * (hi - lo)
    print(f"calibration ({CALIBRATION_RUNS} stream runs per count): p{BUDGET_PERCENTILE} latency "
          + ", ".join(f"{n}: {v:.2f} ms" for n, v in p95.items()) + f" -> budget {budget:.2f} ms")
    return budget


def demo(argv: list[str] | None = None) -> int:
    ap = Parser(prog="python -m ffn_edge.demo", description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/demo", help="working directory (default runs/demo)")
    ap.add_argument("--ckpt", help="use this checkpoint instead of the shipped one")
    ap.add_argument("--train", action="store_true", help="retrain the demo model here (~7 min on 2 idle cores)")
    ap.add_argument("--budget-ms", type=float, help="latency budget (default: calibrated, see above)")
    ap.add_argument("--clips", type=int, default=30, help="clips in the sample video (default 30)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    if args.clips < 1:
        raise ConfigError("--clips must be >= 1")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    print("== 1. model")
    if args.train or (args.ckpt is None and not SHIPPED.is_file()):
        _run([*_tool("ffn-train"), *TRAIN_ARGS, "--out", str(out / "train"), "--quiet"])
        ckpt = out / "train" / "best.safetensors"
    else:
        ckpt = Path(args.ckpt) if args.ckpt else SHIPPED
        print(f"using {ckpt} (rebuild it with: ffn-train {shlex.join(TRAIN_ARGS)} --out DIR)")

    print("== 2. export")
    bundle = out / "model.ffn"
    _run([*_tool("ffn-export"), "--ckpt", str(ckpt), "--frames", "4", "8", "16", "--frame-dim", "dynamic",
          "--out", str(bundle), "--force"])

    print("== 3. sample video")
    from .checkpoint import read_meta

    class_names = read_meta(ckpt).class_names
    labels = [int(v) for v in np.random.default_rng(args.seed).integers(0, len(class_names), args.clips)]
    video = out / "sample.mp4"
    write_sample_video(video, labels, args.seed)
    print(f"{video}: {args.clips} clips of {CLIP_FRAMES / FPS:.0f} s, classes known")

    window = CLIP_FRAMES / FPS
    print("== 4. latency budget")
    budget = args.budget_ms if args.budget_ms is not None else auto_budget(bundle, video, args.clips, window)

    print("== 5. ffn-run with the latency budget")
    cmd = [*_tool("ffn-run"), "--bundle", str(bundle), "--video", str(video), "--budget-ms", f"{budget:.3f}",
           "--window-s", f"{window:g}", "--stride-ms", f"{window * 1000 / DECISIONS_PER_CLIP:g}", "--json",
           "--output", str(out / "annotated.mp4")]
    decisions = [json.loads(line) for line in _run(cmd).stdout.splitlines() if line.strip()]
    per_clip = decisions[::DECISIONS_PER_CLIP]  # decision 2k's window is exactly clip k
    print(f"\n{'clip':>4}  {'true class':<26}{'predicted':<26}{'score':>6}{'frames':>7}{'ms':>8}  reason")
    hits = 0
    for i, d in enumerate(per_clip[: len(labels)]):
        truth = class_names[labels[i]]
        hits += d["label"] == truth
        print(f"{i:>4}  {truth:<26}{d['label']:<26}{d['score']:>6.2f}{d['frames']:>7}{d['latency_ms']:>8.2f}  "
              f"{d['reason']}")
    settled = [d for d in decisions if "warmup" not in d["reasons"]]
    within = sum(bool(d["within_budget"]) for d in settled)
    used = sorted({d["frames"] for d in settled})
    print(f"\n{hits}/{len(per_clip[: len(labels)])} clips right; {len(decisions)} decisions, "
          f"{len(decisions) - len(settled)} of them warm-up")
    if settled:
        print(f"after warm-up: {within}/{len(settled)} within the {budget:.2f} ms budget "
              f"({100.0 * within / len(settled):.1f} %); frame counts used: {used}")
    print(f"annotated video: {out / 'annotated.mp4'}; total {time.perf_counter() - t0:.0f} s")
    return 0


def main() -> None:
    run_cli("ffn-demo", demo)


if __name__ == "__main__":
    main()
