"""ffn-train on the synthetic set (bf16, fp16 with GradScaler, one-process torchrun DDP) and ffn-eval CUDA vs CPU.

Each run is the real command line in a fresh process (``python -m ffn_edge.train``), so what is
checked is what a user runs; the results are read back from the run's ``log.jsonl`` and checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import environment as E
from .config import CheckConfig
from .report import Skip
from .stats import parity


def torch_device(cfg: CheckConfig) -> str:
    """``cuda`` or ``cpu`` for the torch parts; Skip where CUDA is wanted and absent."""
    if (why := E.no_cuda(cfg.device)) is not None:
        raise Skip(why)
    return "cpu" if cfg.device == "cpu" else "cuda"


def run(cmd: list[str], timeout_s: int, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run a command; a non-zero exit raises with its last stderr line (the CLIs' one-line error)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env, cwd=cwd)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... did not finish in {timeout_s} s") from None
    if out.returncode != 0:
        lines = [s for s in out.stderr.strip().splitlines() if s.strip()] or ["(no output)"]
        raise RuntimeError(f"exit {out.returncode}: {lines[-1]}")
    return out


def train_command(cfg: CheckConfig, work: Path, name: str, amp: str, device: str) -> list[str]:
    """The ``ffn-train`` arguments of one run (all runs share one synthetic set under ``work``)."""
    return ["--arch", cfg.arch, "--width-mult", str(cfg.width), "--frame-counts", *map(str, cfg.frames),
            "--synth-classes", str(cfg.classes), "--synth-train-per-class", str(cfg.train_per_class),
            "--synth-val-per-class", str(cfg.val_per_class), "--synth-frames", str(cfg.synth_frames),
            "--synth-size", str(cfg.synth_size), "--data-dir", str(work / "synthetic"),
            "--batch-size", str(cfg.batch_size), "--epochs", str(cfg.epochs), "--workers", str(cfg.workers),
            "--device", device, "--amp", amp, "--quiet", "--out", str(work / name)]


def train(cfg: CheckConfig, work: Path, amp: str, ddp: bool = False) -> tuple[str, dict[str, Any]]:
    """One ffn-train run; ok when it exits 0 with a finite loss, and GradScaler state exactly under fp16."""
    device = torch_device(cfg)
    if why := E.missing(E.TRAINING):
        raise Skip(why)
    if amp == "bf16" and device == "cuda" and not torch.cuda.is_bf16_supported():
        raise Skip("skipped: this GPU has no bf16")
    name = f"train-{'ddp' if ddp else amp}"
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1", "-m"] \
        if ddp else [sys.executable, "-m"]
    run([*launch, "ffn_edge.train", *train_command(cfg, work, name, amp, device)], cfg.timeout_s * (2 if ddp else 1))
    log = [json.loads(s) for s in (work / name / "log.jsonl").read_text().splitlines()]
    losses = [r["train_loss"] for r in log]
    if not all(np.isfinite(losses)):
        raise RuntimeError(f"non-finite training loss: {losses}")
    from ..checkpoint import load_checkpoint

    _, meta = load_checkpoint(work / name / "last.safetensors")
    scaled = meta.extra.get("scaler") is not None
    if scaled != (amp == "fp16" and device == "cuda"):
        raise RuntimeError(f"GradScaler {'on' if scaled else 'off'} under --amp {amp} on {device}")
    if ddp and not log[-1].get("ddp", False):
        raise RuntimeError("the torchrun run did not train under DistributedDataParallel")
    data = {"device": device, "amp": amp, "steps": cfg.steps, "loss_first_epoch": losses[0],
            "loss_last_epoch": losses[-1], "val_top1": log[-1]["val_top1"], "peak_mem_mb": log[-1]["peak_mem_mb"],
            "train_s": sum(r["train_time"] for r in log), "grad_scaler": scaled,
            "checkpoint": str(work / name / "best.safetensors")}
    top1 = " ".join(f"{n}f {v:.0f}%" for n, v in log[-1]["val_top1"].items())
    return (f"{cfg.steps} steps on {device}, loss {losses[0]:.3f} -> {losses[-1]:.3f}, val top-1 {top1}, "
            f"GradScaler {'on' if scaled else 'off'}"), data


@contextlib.contextmanager
def no_tf32() -> Iterator[None]:
    """Convolutions and matmuls in full fp32 on CUDA inside the block (torch's defaults restored after)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def evaluate_parity(cfg: CheckConfig, checkpoint: Path | None) -> tuple[str, dict[str, Any]]:
    """ffn-eval of one checkpoint on CUDA and on the CPU: top-1 identical; max |delta logit| over seeded clips.

    With ``device`` cpu both sides are the CPU (what the check's own test runs)."""
    device = torch_device(cfg)
    if checkpoint is None or not checkpoint.is_file():
        raise Skip("skipped: no trained checkpoint (every training run skipped or failed)")
    results = {}
    for side, dev in (("cuda", device), ("cpu", "cpu")):
        out = run([sys.executable, "-m", "ffn_edge.evaluate", "--ckpt", str(checkpoint), "--json", "--device", dev,
                   "--workers", str(cfg.workers)], cfg.timeout_s)
        results[side] = json.loads(out.stdout)
    same_acc = results["cuda"]["top1"] == results["cpu"]["top1"]
    from ..checkpoint import load_checkpoint

    model, meta = load_checkpoint(checkpoint)
    rng = np.random.default_rng(0)
    rows, worst, same_clips = [], 0.0, True
    # Per clip in true fp32 (TF32 off): what is left is the two devices' kernel order, not precision.
    with torch.inference_mode(), no_tf32():
        for k, n in enumerate(model.frame_counts):
            clips = [torch.from_numpy(rng.standard_normal((1, n, 3, meta.input_size, meta.input_size), np.float32))
                     for _ in range(cfg.clips)]
            cpu = [model.cpu()(c, subnet=k).numpy() for c in clips]
            gpu = [model.to(device)(c.to(device), subnet=k).cpu().numpy() for c in clips]
            same, delta = parity(cpu, gpu)
            rows.append({"frames": n, "top1_identical": same, "max_abs_delta_logit": delta})
            worst, same_clips = max(worst, delta), same_clips and same
    data = {"top1_cuda": results["cuda"]["top1"], "top1_cpu": results["cpu"]["top1"], "per_subnet": rows}
    detail = (f"ffn-eval top-1 {'identical' if same_acc else 'DIFFERS'} ({results['cuda']['top1']} cuda vs "
              f"{results['cpu']['top1']} cpu); per clip (fp32, TF32 off) top-1 "
              f"{'identical' if same_clips else 'DIFFERS'}, max |delta logit| {worst:.2e}")
    if not (same_acc and same_clips):
        raise RuntimeError(detail)
    return detail, data
