"""GPU latency, memory, open time and parity per sub-network, side by side (needs an NVIDIA GPU).

Methods, per frame count, one clip (batch 1), taking turns run by run in random order: native
TensorRT engines fp32 and fp16 (``ffn-export engines``, ``--backend tensorrt``), ONNX Runtime's CUDA
EP (``ort-cuda``), ORT's TensorRT EP (``ort-tensorrt``), torch eager on CUDA; and the same TensorRT
fp16 / ORT CUDA on a single-frame-count export of a plain model (what Separated Training ships).

Tables: p50 / p95 latency and TRT fp16 / ORT CUDA ratio (goal <= 0.5); GPU memory of the TensorRT
backend with all sub-networks resident vs one (the ST export: one sub-network), goal <= 1.3x; open
time, first (engines built / ORT TRT EP cache empty) vs cached (goal <= 2 s); parity vs the fp32
ONNX graph on ORT's CPU EP over ``--clips`` seeded clips: top-1 identical and max |delta logit|.

    python benchmarks/gpu_latency.py                                  # TSM-ResNet-18, 112 px, 4/8/16
    python benchmarks/gpu_latency.py --arch tsm_mobilenetv2 --size 160 --runs 100

Without a usable NVIDIA GPU (cuda-python, driver, device) it exits 2 with one line. Memory and open
time are measured in fresh subprocesses (``--probe``) so each number is that process's own.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ffn_edge.gpucheck.stats import parity, percentiles  # shared with the GPU check

ROOT = Path(__file__).resolve().parents[1]
GOALS = {"trt_fp16_vs_ort_cuda": 0.5, "memory_all_vs_one": 1.3, "cached_open_s": 2.0}
METHODS = ("trt-fp32", "trt-fp16", "ort-cuda", "ort-tensorrt", "torch-cuda")
PROBE_TIMEOUT_S = 1200


class NoGPU(SystemExit):
    """One line on stderr, exit code 2: this benchmark measures a GPU and there is none."""

    def __init__(self, why: str) -> None:
        print(f"gpu_latency: error: needs an NVIDIA GPU: {why}", file=sys.stderr)
        super().__init__(2)


def require_gpu(device: int = 0) -> str:
    """The GPU's name (cudart's spelling), or NoGPU naming what is missing."""
    from ffn_edge.runtime.backends import trt_engine as trt_mod

    from ffn_edge.core.errors import ConfigError

    try:
        return trt_mod.gpu_name(trt_mod.import_cudart(), device)
    except ConfigError as e:
        raise NoGPU(str(e)) from None


# -- pure helpers (tested without a GPU) ------------------------------------------------------------


def interleaved(methods: dict[str, Callable[[], object]], rounds: int, seed: int = 0) -> dict[str, list[float]]:
    """ms per call of every method, the methods taking turns in a random order each round."""
    rng = random.Random(seed)
    out: dict[str, list[float]] = {name: [] for name in methods}
    names = list(methods)
    for _ in range(rounds):
        rng.shuffle(names)
        for name in names:
            t0 = time.perf_counter()
            methods[name]()
            out[name].append((time.perf_counter() - t0) * 1000.0)
    return out


def format_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain text table, columns right-aligned except the first; floats with 2 decimals."""
    def cell(v: object) -> str:
        return f"{v:.2f}" if isinstance(v, float) else str(v)

    cells = [[cell(v) for v in row] for row in [header, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in cells]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])


def verdict(value: float, goal: float) -> str:
    return f"{'met' if value <= goal else 'MISSED'} (goal <= {goal})"


# -- probes: fresh processes, so GPU memory and open time are this measurement's own ---------------


def probe(bundle: str, backend: str, precision: str | None) -> dict[str, float]:
    """Seconds to open ``backend`` on ``bundle`` and the device bytes it then holds (cudaMemGetInfo delta)."""
    from ffn_edge.runtime.backends import trt_engine as trt_mod
    from ffn_edge.runtime.backends.select import open_backend

    from ffn_edge.bundle.manifest import load_manifest

    cudart = trt_mod.import_cudart()
    trt_mod.cuda_call(cudart.cudaFree(0), "cudaFree")  # create the CUDA context before measuring
    free0, _ = trt_mod.cuda_call(cudart.cudaMemGetInfo(), "cudaMemGetInfo")
    t0 = time.perf_counter()
    b = open_backend(bundle, load_manifest(bundle), backend, tensorrt_precision=precision)
    seconds = time.perf_counter() - t0
    free1, _ = trt_mod.cuda_call(cudart.cudaMemGetInfo(), "cudaMemGetInfo")
    b.close()
    return {"open_s": seconds, "device_bytes": float(free0 - free1)}


def run_probe(bundle: Path, backend: str, precision: str | None = None) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--probe", str(bundle), backend, precision or "-"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S)
    if out.returncode != 0:
        raise RuntimeError(f"probe {backend} failed: {out.stderr.strip()[-500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- the measurement --------------------------------------------------------------------------------


def _runtime_latency_module():
    spec = importlib.util.spec_from_file_location("runtime_latency", ROOT / "benchmarks" / "runtime_latency.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def open_engines(bundle: Path, precisions: Sequence[str]) -> tuple[Any, dict[str, float], dict[str, Any]]:
    """Build the bundle's TensorRT engines per precision (seconds of the first build), then open them.

    The manifest is read after the builds: each build records its engines in it, and a manifest
    read before would list none ("no TensorRT engines for this device")."""
    from ffn_edge.export.tensorrt import build_engines
    from ffn_edge.runtime.backends.select import open_backend

    from ffn_edge.bundle.manifest import load_manifest

    first: dict[str, float] = {}
    for precision in precisions:
        t0 = time.perf_counter()
        build_engines(bundle, fp16=precision == "fp16")
        first[f"trt-{precision}"] = time.perf_counter() - t0
    m = load_manifest(bundle)
    return m, first, {f"trt-{p}": open_backend(bundle, m, "tensorrt", tensorrt_precision=p) for p in precisions}


def measure(args: argparse.Namespace, work: Path) -> None:
    import shutil

    import onnxruntime as ort
    import torch
    from ffn_edge.export.tensorrt import build_engines
    from ffn_edge.runtime.backends.select import open_backend

    from ffn_edge.bundle.manifest import load_manifest

    counts = [int(c) for c in args.frames.split(",")]
    model, ffn, st = _runtime_latency_module().build_bundles(args.arch, args.width, args.size, counts, args.classes,
                                                               work, {"default": {}})
    bundle = ffn["default"]
    m, first, opened = open_engines(bundle, ("fp32", "fp16"))
    for b in st.values():
        build_engines(b, fp16=True)
    opened["ort-cuda"] = open_backend(bundle, m, "ort-cuda")
    opened["ort-tensorrt"] = open_backend(bundle, m, "ort-tensorrt")
    st_open = {n: {"st-trt-fp16": open_backend(b, load_manifest(b), "tensorrt", tensorrt_precision="fp16"),
                   "st-ort-cuda": open_backend(b, load_manifest(b), "ort-cuda")} for n, b in st.items()}
    net = model.cuda().eval()
    rng = np.random.default_rng(0)
    lat_rows, parity_rows = [], []
    for i, n in enumerate(counts):
        clip = rng.standard_normal((1, n, 3, args.size, args.size)).astype(np.float32)
        clip_gpu = torch.from_numpy(clip).cuda()

        def torch_run(x=clip_gpu, k=i) -> object:
            with torch.no_grad():
                y = net(x, subnet=k)
            torch.cuda.synchronize()
            return y

        methods = {name: (lambda b=b, c=clip, t=n: b.run(t, c)) for name, b in opened.items()}
        methods["torch-cuda"] = torch_run
        methods.update({name: (lambda b=b, c=clip, t=n: b.run(t, c)) for name, b in st_open[n].items()})
        for fn in methods.values():  # warm-up: lazy allocations, ORT TRT EP engine build for this shape
            fn()
        samples = interleaved(methods, args.runs, seed=n)
        p = {name: percentiles(s) for name, s in samples.items()}
        ratio = p["trt-fp16"][0] / p["ort-cuda"][0]
        lat_rows.append([n, *(f"{p[k][0]:.2f}/{p[k][1]:.2f}" for k in methods), ratio,
                         verdict(ratio, GOALS["trt_fp16_vs_ort_cuda"])])
        clips = [rng.standard_normal((1, n, 3, args.size, args.size)).astype(np.float32) for _ in range(args.clips)]
        ref_session = ort.InferenceSession(str(bundle / next(g.file for g in m.graphs if g.frames == n)),
                                           providers=["CPUExecutionProvider"])
        ref = [ref_session.run(None, {m.input.name: c})[0] for c in clips]
        for name, b in opened.items():
            same, delta = parity(ref, [b.run(n, c) for c in clips])
            parity_rows.append([n, name, "yes" if same else "NO", f"{delta:.2e}"])
        with torch.no_grad():
            same, delta = parity(ref, [net(torch.from_numpy(c).cuda(), subnet=i).cpu().numpy() for c in clips])
        parity_rows.append([n, "torch-cuda", "yes" if same else "NO", f"{delta:.2e}"])
    for b in [*opened.values(), *(x for d in st_open.values() for x in d.values())]:
        b.close()
    net.cpu()  # free the GPU for the probes below
    torch.cuda.empty_cache()

    header = ["frames", *methods.keys(), "trt16/ortcuda", "goal"]
    print(f"\nGPU {args.gpu}; {args.arch} x{args.width} {args.size}px; batch 1; p50/p95 ms over {args.runs} runs")
    print(format_table(header, lat_rows))

    one = max(st)  # the ST export of the largest frame count: one sub-network's engines
    mem_all = run_probe(bundle, "tensorrt", "fp16")["device_bytes"]
    mem_one = run_probe(st[one], "tensorrt", "fp16")["device_bytes"]
    ratio = mem_all / mem_one
    print("\nGPU memory, TensorRT fp16 backend (cudaMemGetInfo delta at open; static allocation)")
    print(format_table(["resident", "MiB", "ratio", "goal"],
                       [["all sub-networks (FFN bundle)", mem_all / 2**20, ratio,
                         verdict(ratio, GOALS["memory_all_vs_one"])],
                        [f"one ({one}-frame ST export)", mem_one / 2**20, 1.0, ""]]))

    shutil.rmtree(bundle / "engines" / "ort-trt", ignore_errors=True)
    ort_first = run_probe(bundle, "ort-tensorrt")["open_s"]
    ort_cached = run_probe(bundle, "ort-tensorrt")["open_s"]
    rows = []
    for p in ("fp32", "fp16"):
        cached = run_probe(bundle, "tensorrt", p)["open_s"]
        rows.append([f"tensorrt {p}", first[f"trt-{p}"], cached, verdict(cached, GOALS["cached_open_s"])])
    rows.append(["ort-tensorrt", ort_first, ort_cached, verdict(ort_cached, GOALS["cached_open_s"])])
    print("\nOpen time, s (first: engines built / ORT TRT EP cache empty; cached: a later process)")
    print(format_table(["backend", "first", "cached", "goal"], rows))

    print(f"\nParity vs the fp32 ONNX graph on ORT CPU, {args.clips} seeded clips per frame count")
    print(format_table(["frames", "method", "top-1 identical", "max |delta logit|"], parity_rows))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="tsm_resnet18")
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--frames", default="4,8,16")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--runs", type=int, default=50, help="timed runs per method and frame count")
    ap.add_argument("--clips", type=int, default=8, help="clips per frame count for the parity check")
    ap.add_argument("--device", type=int, default=0)
    ap.add_argument("--probe", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.probe:
        bundle, backend, precision = args.probe
        print(json.dumps(probe(bundle, backend, None if precision == "-" else precision)))
        return
    args.gpu = require_gpu(args.device)
    with tempfile.TemporaryDirectory(prefix="ffn-gpu-bench-") as tmp:
        measure(args, Path(tmp))


if __name__ == "__main__":
    main()
