"""Step latency of INT8 vs FP32 step graphs on ONNX Runtime's CPU EP, side by side in one process.

Model: causal TSM-MobileNetV2 (x1.0, 224 px, sub-networks for 4/8/16 frames), untrained but perturbed
like a trained model (``perturb_like_trained(weight_std=0.1, var_spread=1.5)``, as
``benchmarks/streaming.py`` builds it): latency only. It is exported twice from one checkpoint: FP32,
and ``--int8`` (default settings: u8 activations, per-sub-network calibration on synthetic clips,
shared layout; its step graphs quantized beside the clip graphs).

Per sub-network, every round runs one step of the FP32 step graph and one of the INT8 step graph in
turn (which goes first alternates), each carrying its own shift buffers, ``--runs`` times; the
round's ratio is median(INT8) / median(FP32). The table gives per count the medians over all
rounds' samples and the median of the per-round ratios; goal: INT8 / FP32 <= 0.7. One ONNX Runtime
thread; the process pins itself to one CPU (``--cpu``, default 0; or run it under ``taskset -c 0``).

    taskset -c 0 env OMP_NUM_THREADS=1 .venv/bin/python benchmarks/step_backends.py [--rounds 5] [--runs 30]
    .venv/bin/python benchmarks/step_backends.py --quick    # smoke: a tiny model at 32 px
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GOAL = 0.7  # INT8 step latency / FP32 step latency


def model_checkpoint(out: Path, width: float, size: int, counts: tuple[int, ...]) -> Path:
    """Causal TSM-MobileNetV2, untrained but perturbed (its sub-networks differ as after training)."""
    from ffn_edge.checkpoint import CheckpointMeta, save_checkpoint
    from ffn_edge.models import ModelConfig, create_model, perturb_like_trained

    cfg = ModelConfig("tsm_mobilenetv2", 10, frame_counts=counts, width_mult=width, shift="causal")
    model = create_model(cfg).eval()
    perturb_like_trained(model, weight_std=0.1, var_spread=1.5)
    path = out / "mobilenetv2_causal.safetensors"
    save_checkpoint(path, model, CheckpointMeta(cfg, [f"class{i}" for i in range(10)], input_size=size,
                                                resize_shorter=size * 8 // 7))
    return path


def export_both(ckpt: Path, counts: tuple[int, ...], out: Path, calib_clips: int) -> tuple[Path, Path]:
    """The FP32 bundle and the INT8 one (min agreement 0: latency is measured whatever calibration gives)."""
    from ffn_edge.export import export_bundle
    from ffn_edge.export.int8_config import Int8Options

    t0 = time.perf_counter()
    fp32 = export_bundle(ckpt, counts, out / "fp32.ffn", force=True, verify=False)
    t1 = time.perf_counter()
    int8 = export_bundle(ckpt, counts, out / "int8.ffn", force=True, verify=True, n_verify=4,
                         int8=Int8Options(calib_clips=calib_clips, min_agreement=0.0))
    t2 = time.perf_counter()
    log(f"exported FP32 in {t1 - t0:.0f} s, INT8 in {t2 - t1:.0f} s ({calib_clips} calibration clips)")
    return fp32, int8


def log(msg: str) -> None:
    print(f"[step_backends] {msg}", file=sys.stderr, flush=True)


def measure(fp32: Path, int8: Path, rounds: int, runs: int) -> dict[int, dict]:
    """n -> FP32 and INT8 step ms samples and per-round ratios, the two graphs taking turns."""
    from ffn_edge.runtime.backends.steps import StepGraphs

    from ffn_edge.bundle.manifest import load_manifest

    graphs = {}
    for name, bundle in (("fp32", fp32), ("int8", int8)):
        graphs[name] = StepGraphs(bundle, load_manifest(bundle), threads=1)
        graphs[name].warmup()
    counts = load_manifest(fp32).subnet_frame_counts
    h, w = graphs["fp32"].size
    rng = np.random.default_rng(0)
    frames = rng.standard_normal((8, 3, h, w)).astype(np.float32)
    out: dict[int, dict] = {}
    for k in graphs["fp32"].subnets:
        samples: dict[str, list[float]] = {"fp32": [], "int8": []}
        ratios = []
        for r in range(rounds):
            state = {name: g.zero_state(k) for name, g in graphs.items()}
            got: dict[str, list[float]] = {"fp32": [], "int8": []}
            for i in range(runs):
                order = ("fp32", "int8") if (i + r) % 2 == 0 else ("int8", "fp32")
                for name in order:
                    step = graphs[name].run(frames[i % len(frames)], k, state[name])
                    state[name] = step.state
                    got[name].append(step.latency_ms)
            ratios.append(statistics.median(got["int8"]) / statistics.median(got["fp32"]))
            for name in got:
                samples[name] += got[name]
        out[counts[k]] = {"fp32_ms": statistics.median(samples["fp32"]), "int8_ms": statistics.median(samples["int8"]),
                          "ratio": statistics.median(ratios), "round_ratios": ratios}
        log(f"n={counts[k]}: round ratios " + " ".join(f"{x:.3f}" for x in ratios))
    return out


def table(rows: dict[int, dict]) -> str:
    lines = ["| frames | FP32 step ms | INT8 step ms | INT8 / FP32 | goal <= 0.7 |", "|---|---|---|---|---|"]
    for n, r in rows.items():
        lines.append(f"| {n} | {r['fp32_ms']:.2f} | {r['int8_ms']:.2f} | {r['ratio']:.3f} | "
                     f"{'met' if r['ratio'] <= GOAL else 'MISSED'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a tiny model at 32 px (smoke test)")
    p.add_argument("--rounds", type=int, default=5, help="rounds per count (each: --runs steps of both graphs)")
    p.add_argument("--runs", type=int, default=30, help="steps of each graph per round")
    p.add_argument("--calib-clips", type=int, default=8, help="INT8 calibration clips per sub-network")
    p.add_argument("--cpu", type=int, default=0, help="the CPU to pin this process to (-1: do not pin)")
    p.add_argument("--work", help="keep the checkpoint and bundles here, and reuse them if they are there "
                                  "(default: a temporary directory)")
    args = p.parse_args(argv)
    if args.rounds < 1 or args.runs < 1 or args.calib_clips < 1:
        p.error("--rounds, --runs and --calib-clips must be >= 1")
    if args.cpu >= 0 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    width, size = (0.35, 32) if args.quick else (1.0, 224)
    counts = (2, 4) if args.quick else (4, 8, 16)
    with tempfile.TemporaryDirectory(prefix="ffn-step-bench-") as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        if (work / "fp32.ffn").is_dir() and (work / "int8.ffn").is_dir():  # an earlier run's, kept with --work
            fp32, int8 = work / "fp32.ffn", work / "int8.ffn"
            log(f"reusing the bundles in {work}")
        else:
            ckpt = model_checkpoint(work, width, size, counts)
            fp32, int8 = export_both(ckpt, counts, work, args.calib_clips)
        from ffn_edge.bundle.manifest import load_manifest

        agreement = load_manifest(int8).extra["quantization"].get("step_agreement", {})
        rows = measure(fp32, int8, args.rounds, args.runs)
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    print(f"causal TSM-MobileNetV2 x{width} at {size} px, ORT CPU, 1 thread, CPUs {cpus}, {args.rounds} rounds x "
          f"{args.runs} alternating steps per count; load average at the end {os.getloadavg()}")
    for file, a in (agreement.get("graphs") or {}).items():
        print(f"INT8 {file} vs INT8 clip graph at {a['frames']} frames: top-1 agreement {a['top1_agreement']:.0%} "
              f"of {a['clips']} clips, max |logit diff| {a['max_abs_diff']:.3g}")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
