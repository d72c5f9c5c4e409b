"""Torch on the GPU, batch 1: eager latency per sub-network FFN vs ST, CUDA graphs and torch.compile per
sub-network, and GPU memory with all sub-networks resident vs one.

Times come from CUDA events around each call after a warm-up (medians, p95); on the CPU (the
check's own test) from ``perf_counter``. FFN = one model holding every sub-network; ST = a plain
model trained at one frame count (what Separated Training ships), one per count.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from ..models import ModelConfig, VideoClassifier, create_model, perturb_like_trained
from .config import CheckConfig
from .report import Skip
from .stats import percentiles
from .training import torch_device

HELPS = 1.05  # a faster path "helps" when eager is at least this many times slower


def ffn_config(cfg: CheckConfig) -> ModelConfig:
    return ModelConfig(cfg.arch, cfg.classes, frame_counts=cfg.frames, width_mult=cfg.width)


def build(cfg: CheckConfig) -> tuple[VideoClassifier, dict[int, VideoClassifier]]:
    """The FFN model (all sub-networks) and one ST model per frame count, with trained-like weights."""
    torch.manual_seed(0)
    ffn = create_model(ffn_config(cfg)).eval()
    perturb_like_trained(ffn)
    st = {n: create_model(ModelConfig(cfg.arch, cfg.classes, frame_counts=(n,), specialised_norm=False,
                                      weight_alteration=False, width_mult=cfg.width)).eval() for n in cfg.frames}
    return ffn, st


def time_ms(fn: Callable[[], object], runs: int, warmup: int, cuda: bool) -> list[float]:
    """Milliseconds per call of ``fn`` after ``warmup`` calls: CUDA events on the GPU, perf_counter on the CPU."""
    for _ in range(warmup):
        fn()
    samples = []
    if cuda:
        torch.cuda.synchronize()
        for _ in range(runs):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end))
    else:
        for _ in range(runs):
            t0 = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - t0) * 1000.0)
    return samples


class Subnet(nn.Module):
    """One sub-network of a model as a module of the clip alone (what torch.compile and graphs capture)."""

    def __init__(self, model: VideoClassifier, k: int) -> None:
        super().__init__()
        self.model, self.k = model, k

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        return self.model(clip, subnet=self.k)


def clip_for(cfg: CheckConfig, n: int, device: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(n)
    return torch.randn((1, n, 3, cfg.size, cfg.size), generator=g).to(device)


def eager_latency(cfg: CheckConfig, report: Any) -> tuple[str, dict[str, Any]]:
    """p50/p95 of the FFN model's sub-network k and of the ST model at the same frame count."""
    device = torch_device(cfg)
    ffn, st = build(cfg)
    ffn.to(device)
    rows, data = [], {}
    with torch.inference_mode():
        for k, n in enumerate(cfg.frames):
            x, plain = clip_for(cfg, n, device), st[n].to(device)
            f = percentiles(time_ms(lambda x=x, k=k: ffn(x, subnet=k), cfg.runs, cfg.warmup, device == "cuda"))
            s = percentiles(time_ms(lambda x=x, m=plain: m(x), cfg.runs, cfg.warmup, device == "cuda"))
            plain.cpu()
            data[str(n)] = {"ffn_p50": f[0], "ffn_p95": f[1], "st_p50": s[0], "st_p95": s[1], "ffn_vs_st": f[0] / s[0]}
            rows.append([n, f"{f[0]:.3f} / {f[1]:.3f}", f"{s[0]:.3f} / {s[1]:.3f}", f[0] / s[0]])
    report.table(f"torch eager latency, {device}, batch 1, {cfg.size} px, p50 / p95 ms over {cfg.runs} runs",
                 ["frames", "FFN sub-network", "ST model", "FFN / ST"], rows)
    worst = max(d["ffn_vs_st"] for d in data.values())
    return f"{cfg.arch} {cfg.size} px; FFN / ST p50 at most {worst:.2f}x over {len(rows)} sub-networks", data


def cuda_graph(fn: nn.Module, x: torch.Tensor) -> Callable[[], torch.Tensor]:
    """``fn(x)`` captured once as a CUDA graph; the returned callable replays it (same input buffer)."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):  # lazy initialisation (cuDNN plans, allocator) outside the capture
            fn(x)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn(x)

    def replay() -> torch.Tensor:
        graph.replay()
        return out

    return replay


def faster_paths(cfg: CheckConfig, report: Any, method: str) -> tuple[str, dict[str, Any]]:
    """``method`` (cuda-graphs or compile) vs eager per sub-network: same logits, and whether it is faster."""
    device = torch_device(cfg)
    if method == "cuda-graphs" and device != "cuda":
        raise Skip("skipped: no CUDA device (CUDA graphs)")
    if method == "compile" and not cfg.compile:
        raise Skip("skipped: --no-compile")
    ffn, _ = build(cfg)
    ffn.to(device)
    rows, data = [], {}
    with torch.inference_mode():
        for k, n in enumerate(cfg.frames):
            x, sub = clip_for(cfg, n, device), Subnet(ffn, k)
            want = sub(x).float().cpu().numpy()
            t0 = time.perf_counter()
            if method == "cuda-graphs":
                fast = cuda_graph(sub, x)
            else:
                compiled = torch.compile(sub)
                fast = lambda f=compiled, x=x: f(x)
            got = fast().float().cpu().numpy()  # compiles (or replays) once
            setup_s = time.perf_counter() - t0
            eager = percentiles(time_ms(lambda s=sub, x=x: s(x), cfg.runs, cfg.warmup, device == "cuda"))[0]
            quick = percentiles(time_ms(fast, cfg.runs, cfg.warmup, device == "cuda"))[0]
            delta = float(np.abs(want - got).max())
            data[str(n)] = {"eager_p50": eager, "p50": quick, "speedup": eager / quick, "setup_s": setup_s,
                            "max_abs_delta_logit": delta, "helps": eager / quick >= HELPS}
            rows.append([n, eager, quick, eager / quick, "yes" if eager / quick >= HELPS else "no", setup_s,
                         f"{delta:.1e}"])
    report.table(f"{method} vs eager, {device}, batch 1, {cfg.size} px, p50 ms",
                 ["frames", "eager", method, "speed-up", "helps", "setup s", "max |delta logit|"], rows)
    helps = [n for n, d in data.items() if d["helps"]]
    return (f"helps at {', '.join(helps) or 'no'} frame counts (speed-up >= {HELPS}); "
            f"max |delta logit| {max(d['max_abs_delta_logit'] for d in data.values()):.1e}"), data


def memory(cfg: CheckConfig, report: Any) -> tuple[str, dict[str, Any]]:
    """GPU bytes of the FFN model (every sub-network resident) vs one ST model: weights, and peak at the
    largest frame count."""
    if torch_device(cfg) != "cuda":
        raise Skip("skipped: no CUDA device (GPU memory)")
    ffn, st = build(cfg)
    n = max(cfg.frames)
    rows, data = [], {}
    for name, model, k in (("FFN, all sub-networks", ffn, len(cfg.frames) - 1), (f"ST {n} frames", st[n], 0)):
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated()
        model.cuda()
        weights = torch.cuda.memory_allocated() - base
        torch.cuda.reset_peak_memory_stats()
        with torch.inference_mode():
            model(clip_for(cfg, n, "cuda"), subnet=k)
        peak = torch.cuda.max_memory_allocated() - base
        model.cpu()
        data[name] = {"weights_mib": weights / 2**20, "peak_mib": peak / 2**20}
        rows.append([name, weights / 2**20, peak / 2**20])
    ffn_d, st_d = data[rows[0][0]], data[rows[1][0]]
    data["weights_ratio"] = ffn_d["weights_mib"] / st_d["weights_mib"]
    data["peak_ratio"] = ffn_d["peak_mib"] / st_d["peak_mib"]
    report.table(f"GPU memory, torch, batch 1, {cfg.size} px, {n} frames (MiB)", ["resident", "weights", "peak"], rows)
    return f"FFN / ST weights {data['weights_ratio']:.2f}x, peak {data['peak_ratio']:.2f}x", data
