"""The exported bundle on the GPU backends of the runtime: native TensorRT fp16 engines, ORT's CUDA EP,
ORT's TensorRT EP. Each runs only where its library finds a GPU; elsewhere one ``skipped:`` line.

Per sub-network: parity with the fp32 graph on ORT's CPU EP (top-1 identical, max |delta logit|)
and p50 latency of ``backend.run`` (synchronous: host in, host out), batch 1.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from . import environment as E
from .config import CheckConfig
from .report import Skip
from .stats import parity, percentiles

# check name -> (open_backend name, TensorRT precision, what must be present)
BACKENDS = {
    "tensorrt-fp16": ("tensorrt", "fp16", E.tensorrt_missing),
    "ort-cuda": ("ort-cuda", None, lambda: E.ort_provider("CUDAExecutionProvider")),
    "ort-tensorrt": ("ort-tensorrt", None, lambda: E.ort_provider("TensorrtExecutionProvider")),
}


def export(cfg: CheckConfig, work: Path) -> Path:
    """A bundle of the check's FFN model (trained-like weights), exported once for every backend."""
    bundle = work / "ffn.ffn"
    if bundle.is_dir():
        return bundle
    from ..checkpoint import CheckpointMeta, save_checkpoint
    from ..export import export_bundle
    from .torch_speed import build, ffn_config

    ffn, _ = build(cfg)
    ckpt = work / "ffn-untrained.safetensors"
    meta = CheckpointMeta(ffn_config(cfg), [f"c{i}" for i in range(cfg.classes)], input_size=cfg.size,
                          resize_shorter=round(cfg.size * 8 / 7))
    save_checkpoint(ckpt, ffn, meta)
    return Path(export_bundle(ckpt, cfg.frames, bundle, verify=False))


def check(cfg: CheckConfig, work: Path, report: Any, name: str) -> tuple[str, dict[str, Any]]:
    """Open ``name``'s backend on the check's bundle; parity vs ORT CPU and latency per sub-network."""
    backend_name, precision, why_not = BACKENDS[name]
    if why := why_not():
        raise Skip(why)
    if why := E.missing({**E.EXPORT, "safetensors": "safetensors"}):
        raise Skip(why)
    import onnxruntime as ort

    from ..bundle.manifest import load_manifest
    from ..runtime.backends.select import open_backend

    bundle = export(cfg, work)
    if backend_name == "tensorrt":
        from ..export.tensorrt import build_engines

        build_engines(bundle, fp16=precision == "fp16")
    m = load_manifest(bundle)
    t0 = time.perf_counter()
    backend = open_backend(bundle, m, backend_name, tensorrt_precision=precision)
    open_s = time.perf_counter() - t0
    if "CPUExecutionProvider" in backend.name and cfg.device != "cpu":
        backend.close()
        raise RuntimeError(f"{backend_name} opened on the CPU ({backend.name})")
    rng = np.random.default_rng(0)
    rows, data = [], {"backend": backend.name, "open_s": open_s}
    try:
        for n in cfg.frames:
            clips = [rng.standard_normal((1, n, 3, cfg.size, cfg.size)).astype(np.float32) for _ in range(cfg.clips)]
            graph = next(g.file for g in m.graphs if g.frames == n)
            ref = ort.InferenceSession(str(bundle / graph), providers=["CPUExecutionProvider"])
            want = [ref.run(None, {m.input.name: c})[0] for c in clips]
            same, delta = parity(want, [backend.run(n, c) for c in clips])
            for _ in range(cfg.warmup):
                backend.run(n, clips[0])
            samples = []
            for _ in range(cfg.runs):
                t = time.perf_counter()
                backend.run(n, clips[0])
                samples.append((time.perf_counter() - t) * 1000.0)
            p50, p95 = percentiles(samples)
            data[str(n)] = {"top1_identical": same, "max_abs_delta_logit": delta, "p50": p50, "p95": p95}
            rows.append([n, "yes" if same else "NO", f"{delta:.1e}", p50, p95])
    finally:
        backend.close()
    report.table(f"{name} ({backend.name}), batch 1, {cfg.size} px: parity vs ORT CPU fp32 and latency (ms)",
                 ["frames", "top-1 identical", "max |delta logit|", "p50", "p95"], rows)
    detail = f"{backend.name}; top-1 identical at {sum(r[1] == 'yes' for r in rows)}/{len(rows)} frame counts"
    if any(r[1] != "yes" for r in rows):
        raise RuntimeError(detail)
    return detail, data
