"""INT8 vs FP32 bundles, side by side in one run: bytes, ORT CPU latency per sub-network, top-1, export time.

Claim, on this machine (AVX2, no VNNI): an INT8 bundle is <= 0.35x the FP32 bundle's bytes,
its ORT CPU latency <= 0.6x FP32 at each frame count, and its top-1 drops <= 1 point at 4/8/16 with
per-sub-network calibration. Per model, four exports of one checkpoint:

* ``fp32``: ``ffn-export`` as today;
* ``int8``: ``--int8`` (default layout "shared": INT8 weights once, per-sub-network norms as ops),
  each sub-network calibrated on its own n-frame clips;
* ``int8-shared-calib``: the same with ``--calib-shared`` (one range table for all sub-networks);
* ``int8-folded``: ``--int8-layout folded`` (every norm folded into per-sub-network INT8 weights).

Latency: the runtime's ORT CPU backend (``OrtBackend``, its defaults: weights pooled across
sub-networks), one thread, batch 1; every round runs each bundle once per frame count in random
order, ratios are medians of per-round ratios. Top-1 on the synthetic validation set (the val split
``make_synthetic`` writes with seed 0, TSN evaluation sampling), plus top-1 agreement with FP32.
Models: the shipped demo model, and an untrained-but-perturbed TSM-ResNet-50 at 224 (its top-1 is
chance; its agreement with FP32 is what calibration quality shows). ``--quick``: a tiny TSM-ResNet-18
at 32 px, for the test suite.

    taskset -c 0 env OMP_NUM_THREADS=1 python benchmarks/int8.py [--models demo r50] [--json out.json]
    python benchmarks/int8.py --quick
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path

import numpy as np

GOALS = {"bytes": 0.35, "latency": 0.6, "top1_drop_points": 1.0}
VARIANTS = ("fp32", "int8", "int8-shared-calib", "int8-folded")
TIMED = ("fp32", "int8", "int8-folded")
DEMO = Path(__file__).resolve().parent.parent / "models" / "demo_ffn.safetensors"


def _bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _r50(path: Path, size: int) -> Path:
    from ffn_edge.checkpoint import CheckpointMeta, save_checkpoint
    from ffn_edge.data.synthetic import CLASSES
    from ffn_edge.models import ModelConfig, create_model, perturb_like_trained

    cfg = ModelConfig("tsm_resnet50", len(CLASSES), frame_counts=(4, 8, 16))
    model = create_model(cfg).eval()
    perturb_like_trained(model)
    save_checkpoint(path, model, CheckpointMeta(cfg, [c for c, _ in CLASSES], input_size=size,
                                                resize_shorter=round(size * 8 / 7)))
    return path


def _tiny(path: Path) -> Path:
    from ffn_edge.checkpoint import CheckpointMeta, save_checkpoint
    from ffn_edge.data.synthetic import CLASSES
    from ffn_edge.models import ModelConfig, create_model, perturb_like_trained

    cfg = ModelConfig("tsm_resnet18", len(CLASSES), frame_counts=(4, 8), width_mult=0.25)
    model = create_model(cfg).eval()
    perturb_like_trained(model, weight_std=0.05, var_spread=1.5)
    save_checkpoint(path, model, CheckpointMeta(cfg, [c for c, _ in CLASSES], input_size=32, resize_shorter=36))
    return path


def val_clips(per_class: int, frames: int, meta, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The synthetic val split (``make_synthetic(seed=seed)``'s keying), at ``frames`` frames, normalised as
    the bundle's ``meta`` (``manifest.InputSpec``) says."""
    from ffn_edge.core.sampling import segment_indices
    from ffn_edge.data.synthetic import CLASSES, render_clip
    from ffn_edge.data.transforms import ValTransform

    t = ValTransform(meta.size[0], meta.resize_shorter, meta.mean, meta.std)
    side = max(64, meta.resize_shorter)
    clips, labels = [], []
    for label in range(len(CLASSES)):
        for i in range(per_class):
            clip = render_clip(label, np.random.default_rng([seed, 1, label, i]), 48, side)
            clips.append(t([clip[j] for j in segment_indices(48, frames, train=False)]))
            labels.append(label)
    return np.stack(clips), np.array(labels)


def export_all(ckpt: Path, out: Path, frames: list[int], calib_clips: int) -> dict[str, dict]:
    """The four bundles of ``ckpt`` and how long each export took (no parity check: timed alike)."""
    from ffn_edge.export import export_bundle
    from ffn_edge.export.int8_config import Int8Options, QuantConfig

    configs = {"fp32": None, "int8": QuantConfig(), "int8-shared-calib": QuantConfig(scope="shared"),
               "int8-folded": QuantConfig(layout="folded")}
    done = {}
    for name, cfg in configs.items():
        t0 = time.perf_counter()
        int8 = Int8Options(calib_clips=calib_clips, config=cfg) if cfg is not None else None
        bundle = export_bundle(ckpt, frames, out / f"{name}.ffn", verify=False, int8=int8)
        done[name] = {"bundle": Path(bundle), "export_s": time.perf_counter() - t0, "bytes": _bytes(Path(bundle))}
        print(f"  exported {name} in {done[name]['export_s']:.0f} s", flush=True)
    return done


def latency(bundles: dict[str, Path], frames: list[int], runs: int, seed: int = 0) -> dict[str, dict[int, dict]]:
    """p50 ms per bundle and frame count, and the median per-round ratio to fp32 (interleaved runs)."""
    from ffn_edge.runtime.backends.ort import OrtBackend

    from ffn_edge.bundle.manifest import load_manifest

    backends = {name: OrtBackend(b, load_manifest(b), threads=1) for name, b in bundles.items()}
    m = load_manifest(bundles["fp32"])
    h, w = m.input.size
    rng = random.Random(seed)
    times: dict[str, dict[int, list[float]]] = {name: {n: [] for n in frames} for name in backends}
    try:
        for n in frames:
            clip = np.random.default_rng(n).standard_normal((1, n, 3, h, w)).astype(np.float32)
            for b in backends.values():
                b.run(n, clip)  # warm-up
            for _ in range(runs):
                order = list(backends)
                rng.shuffle(order)
                for name in order:
                    t0 = time.perf_counter()
                    backends[name].run(n, clip)
                    times[name][n].append(time.perf_counter() - t0)
    finally:
        for b in backends.values():
            b.close()
    out: dict[str, dict[int, dict]] = {}
    for name in backends:
        out[name] = {}
        for n in frames:
            ratio = np.median(np.array(times[name][n]) / np.array(times["fp32"][n]))
            out[name][n] = {"p50_ms": 1e3 * float(np.median(times[name][n])), "ratio": float(ratio)}
    return out


def accuracy(bundles: dict[str, Path], frames: list[int], per_class: int) -> dict[str, dict[int, dict]]:
    """Top-1 (%) on the synthetic val split and top-1 agreement (%) with fp32, per bundle and frame count."""
    import onnxruntime as ort

    from ffn_edge.bundle.manifest import load_manifest

    m = load_manifest(bundles["fp32"])
    out: dict[str, dict[int, dict]] = {name: {} for name in bundles}
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    for n in frames:
        clips, labels = val_clips(per_class, n, m.input)
        preds = {}
        for name, b in bundles.items():
            bm = load_manifest(b)
            sess = ort.InferenceSession(str(b / bm.graph_for(n).file), so, providers=["CPUExecutionProvider"])
            preds[name] = np.concatenate([sess.run(None, {bm.input.name: clips[i : i + 4]})[0].argmax(1)
                                          for i in range(0, len(clips), 4)])
        for name in bundles:
            out[name][n] = {"top1": 100.0 * float((preds[name] == labels).mean()),
                            "agree": 100.0 * float((preds[name] == preds["fp32"]).mean()), "clips": len(labels)}
    return out


MODELS = {  # name -> (checkpoint maker, calibration clips, val clips per class, latency rounds)
    "demo": (lambda d: DEMO, 16, 20, 30),
    "r50": (lambda d: _r50(d / "r50.safetensors", 224), 4, 2, 5),
    "tiny": (lambda d: _tiny(d / "tiny.safetensors"), 2, 1, 2),
}


def run_model(name: str, frames: list[int], work: Path, calib: int | None, per_class: int | None,
              runs: int | None) -> dict:
    make, calib_d, per_class_d, runs_d = MODELS[name]
    calib, per_class, runs = calib or calib_d, per_class or per_class_d, runs or runs_d
    print(f"{name}: exporting (calibration: {calib} synthetic clips per sub-network)", flush=True)
    ckpt = make(work)
    done = export_all(ckpt, work / name, frames, calib)
    bundles = {k: v["bundle"] for k, v in done.items()}
    lat = latency({k: bundles[k] for k in TIMED}, frames, runs)
    acc = accuracy(bundles, frames, per_class)
    return {"model": name, "calib_clips": calib, "val_per_class": per_class, "runs": runs,
            "bytes": {k: v["bytes"] for k, v in done.items()}, "export_s": {k: v["export_s"] for k, v in done.items()},
            "latency": lat, "accuracy": acc}


def report(r: dict, frames: list[int]) -> list[str]:
    """The table of one model, and its goal lines."""
    fp = r["bytes"]["fp32"]
    lines = [f"== {r['model']}: calibration {r['calib_clips']} clips per sub-network; top-1 on "
             f"{r['accuracy']['fp32'][frames[0]]['clips']} val clips; latency {r['runs']} interleaved rounds, 1 thread",
             f"{'bundle':<18} {'bytes':>12} {'x fp32':>7} {'export s':>9}  " + "  ".join(
                 f"{n:>2}f: ms / x fp32 / top-1 / agree" for n in frames)]
    for v in VARIANTS:
        cells = []
        for n in frames:
            a = r["accuracy"][v][n]
            lt = r["latency"].get(v, {}).get(n)
            ms = f"{lt['p50_ms']:7.1f} / {lt['ratio']:.2f}" if lt else f"{'-':>7} / {'-':>4}"
            cells.append(f"{ms} / {a['top1']:5.1f} / {a['agree']:5.1f}")
        lines.append(f"{v:<18} {r['bytes'][v]:>12,} {r['bytes'][v] / fp:>7.3f} {r['export_s'][v]:>9.1f}  "
                     + "      ".join(cells))
    ratio = r["bytes"]["int8"] / fp
    lat = max(r["latency"]["int8"][n]["ratio"] for n in frames)
    drop = max(r["accuracy"]["fp32"][n]["top1"] - r["accuracy"]["int8"][n]["top1"] for n in frames)
    lines += [f"goal INT8 bytes <= {GOALS['bytes']}x FP32: "
              f"{'met' if ratio <= GOALS['bytes'] else 'NOT met'} ({ratio:.3f}x)",
              f"goal INT8 ORT CPU latency <= {GOALS['latency']}x FP32 at each frame count: "
              f"{'met' if lat <= GOALS['latency'] else 'NOT met'} (worst {lat:.2f}x)",
              f"goal top-1 drop <= {GOALS['top1_drop_points']:g} point (per-sub-network calibration): "
              f"{'met' if drop <= GOALS['top1_drop_points'] else 'NOT met'} (worst {drop:+.1f} points)"]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", choices=("demo", "r50"), default=["demo", "r50"])
    ap.add_argument("--quick", action="store_true", help="a tiny TSM-ResNet-18 at 32 px only (seconds; for tests)")
    ap.add_argument("--frames", type=int, nargs="+", help="frame counts (default 4 8 16; --quick: 4 8)")
    ap.add_argument("--calib-clips", type=int, help="calibration clips per sub-network (default per model)")
    ap.add_argument("--val-per-class", type=int, help="synthetic val clips per class (default per model)")
    ap.add_argument("--runs", type=int, help="latency rounds (default per model)")
    ap.add_argument("--json", type=Path, help="also write the results as JSON here")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    models = ["tiny"] if a.quick else a.models
    frames = sorted(a.frames or ([4, 8] if a.quick else [4, 8, 16]))
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} at start; "
          f"CPU affinity {sorted(os.sched_getaffinity(0))}", flush=True)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in models:
            r = run_model(name, frames, Path(tmp), a.calib_clips, a.val_per_class, a.runs)
            results.append(r)
            print("\n".join(report(r, frames)), flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} at end")
    if a.json:
        a.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
