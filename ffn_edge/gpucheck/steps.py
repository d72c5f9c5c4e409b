"""Step graphs (online mode) on the GPU backends: ORT's CUDA EP with the shift buffers bound on the device,
native TensorRT step engines in fp16 and, from an INT8 bundle (s8 activations), in int8. Each runs only
where its library finds a GPU; elsewhere one ``skipped:`` line.

A causal model of the check's architecture (trained-like weights) is exported once per precision;
the session on the backend opens its step graphs (``FFNRuntime.step_graphs``), and per sub-network
n frames are stepped from zero buffers through them and through ORT CPU's step graphs of the same
bundle: top-1 identical at every frame, max |delta logit|, and p50/p95 latency of one step (frame in,
logits out, buffers left on the device).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from . import environment as E
from .config import CheckConfig
from .report import Skip
from .stats import parity, percentiles

# check name -> (FFNRuntime backend, precision of the bundle's engines, what must be present)
BACKENDS = {
    "steps-ort-cuda": ("ort-cuda", None, lambda: E.ort_provider("CUDAExecutionProvider")),
    "steps-tensorrt-fp16": ("tensorrt", "fp16", E.tensorrt_missing),
    "steps-tensorrt-int8": ("tensorrt", "int8", E.tensorrt_missing),
}


def export_causal(cfg: CheckConfig, work: Path, int8: bool) -> Path:
    """A causal FFN bundle of the check's model (INT8: s8 activations, the kind TensorRT builds), once."""
    bundle = work / ("causal-int8.ffn" if int8 else "causal.ffn")
    if bundle.is_dir():
        return bundle
    import torch

    from ..checkpoint import CheckpointMeta, save_checkpoint
    from ..export import export_bundle
    from ..export.int8_config import Int8Options, QuantConfig
    from ..models import ModelConfig, create_model, perturb_like_trained

    ckpt = work / "causal-untrained.safetensors"
    if not ckpt.is_file():
        torch.manual_seed(0)
        config = ModelConfig(cfg.arch, cfg.classes, frame_counts=cfg.frames, width_mult=cfg.width, shift="causal")
        model = create_model(config).eval()
        perturb_like_trained(model)
        save_checkpoint(ckpt, model, CheckpointMeta(config, [f"c{i}" for i in range(cfg.classes)],
                                                    input_size=cfg.size, resize_shorter=round(cfg.size * 8 / 7)))
    opts = Int8Options(calib_clips=cfg.clips, config=QuantConfig(activations="s8"), min_agreement=0.0) if int8 else None
    return Path(export_bundle(ckpt, cfg.frames, bundle, verify=False, int8=opts))


def check(cfg: CheckConfig, work: Path, report: Any, name: str) -> tuple[str, dict[str, Any]]:
    """Step every sub-network on ``name``'s backend and on ORT CPU; parity and step latency."""
    backend, precision, why_not = BACKENDS[name]
    if why := why_not():
        raise Skip(why)
    if why := E.missing({**E.EXPORT, "safetensors": "safetensors"}):
        raise Skip(why)
    from ..bundle.manifest import load_manifest
    from ..runtime import FFNRuntime
    from ..runtime.backends.steps import StepGraphs

    bundle = export_causal(cfg, work, precision == "int8")
    if backend == "tensorrt":
        from ..export.tensorrt import build_engines

        build_engines(bundle, fp16=precision == "fp16")
    m = load_manifest(bundle)
    host = StepGraphs(bundle, m, threads=1)
    rows, data = [], {}
    with FFNRuntime(bundle, backend=backend) as rt:
        steps = rt.step_graphs()
        data["step_graphs"] = steps.name
        if type(steps) is StepGraphs:
            raise RuntimeError(f"{backend} opened the CPU step graphs ({steps.name})")
        rng = np.random.default_rng(0)
        for k in host.subnets:
            n = m.subnet_frame_counts[k]
            frames = rng.standard_normal((n, 3, cfg.size, cfg.size)).astype(np.float32)
            want, got = _logits(host, k, frames), _logits(steps, k, frames)
            same, delta = parity(list(want), list(got))
            samples = _latency(steps, k, frames[0], cfg.warmup, cfg.runs)
            p50, p95 = percentiles(samples)
            data[str(n)] = {"top1_identical": same, "max_abs_delta_logit": delta, "p50": p50, "p95": p95}
            rows.append([n, "yes" if same else "NO", f"{delta:.1e}", p50, p95])
    report.table(f"{name} ({data['step_graphs']}), one frame per step, {cfg.size} px: parity vs ORT CPU step "
                 "graphs at every frame, and step latency (ms)",
                 ["frames", "top-1 identical", "max |delta logit|", "p50", "p95"], rows)
    detail = f"{data['step_graphs']}; top-1 identical at {sum(r[1] == 'yes' for r in rows)}/{len(rows)} sub-networks"
    if any(r[1] != "yes" for r in rows):
        raise RuntimeError(detail)
    return detail, data


def _logits(graphs: Any, subnet: int, frames: np.ndarray) -> np.ndarray:
    state, out = graphs.zero_state(subnet), []
    for f in frames:
        r = graphs.run(f, subnet, state)
        state = r.state
        out.append(r.logits)
    return np.stack(out)


def _latency(graphs: Any, subnet: int, frame: np.ndarray, warmup: int, runs: int) -> list[float]:
    state, samples = graphs.zero_state(subnet), []
    for i in range(warmup + runs):
        r = graphs.run(frame, subnet, state)
        state = r.state
        if i >= warmup:
            samples.append(r.latency_ms)
    return samples
