"""What the tests build for themselves: tiny checkpoints, bundles, videos, and the one-build-per-session cache.

``conftest.py`` turns these into session fixtures; a test that needs a model, bundle or video of its own
(another architecture, another frame count) calls the same functions with its own arguments.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

import cv2
import numpy as np
from filelock import FileLock

# The session fixtures' models (conftest.py); tests that check their shapes import these.
TINY_CLASSES = ["wave", "clap", "jump", "sit", "run"]
TINY_FRAMES = (4, 8)
TINY_SIZE, TINY_RESIZE = 64, 72
INT8_CLASSES = list("abcde")
INT8_FRAMES = (4, 8)
INT8_SIZE, INT8_RESIZE = 32, 36
CAUSAL_CLASSES = ["a", "b", "c"]
CAUSAL_FRAMES = (2, 4)
CAUSAL_SIZE = 32
STRONG = {"weight_std": 0.05, "var_spread": 1.5}  # a perturbation under which small ResNet-18s' sub-networks differ

FPS = 30.0
VIDEO_SIZE = 64
VIDEO_SECONDS = 3  # one synthetic clip of 30 frames per second, labels 0, 1, 2


def write_video(path: Path, frames: Iterable[np.ndarray], fps: float = FPS, fourcc: str = "mp4v") -> Path:
    """Encode uint8 BGR frames (all of one size) to ``path``; fails if OpenCV cannot open the writer."""
    path = Path(path)
    writer = None
    for frame in frames:
        if writer is None:
            h, w = frame.shape[:2]
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
            assert writer.isOpened(), f"OpenCV cannot write {fourcc} to {path}"
        writer.write(frame)
    assert writer is not None, "no frame to write"
    writer.release()
    return path


def decode_preprocessed(path: Path, preprocess: Callable[[np.ndarray], np.ndarray]) -> list[np.ndarray]:
    """Every frame of the video at ``path``, preprocessed as a stream's capture thread does (``rt.preprocessor``)."""
    cap, frames = cv2.VideoCapture(str(path)), []
    while (got := cap.read())[0]:
        frames.append(preprocess(got[1]))
    cap.release()
    return frames


def synthetic_video(path: Path, seconds: int = VIDEO_SECONDS, size: int = VIDEO_SIZE) -> Path:
    """``seconds`` s at 30 fps: the synthetic set's clip of class ``s % 3`` for second ``s`` (a moving object)."""
    from ffn_edge.data.synthetic import render_clip

    clips = (render_clip(s % 3, np.random.default_rng(s), int(FPS), size) for s in range(seconds))
    return write_video(path, (frame for clip in clips for frame in clip))


def save_tiny_checkpoint(path: Path, arch: str, classes: list[str], frame_counts: tuple[int, ...], width: float,
                         size: int, resize_shorter: int, shift: str = "bidirectional",
                         perturb: dict[str, float] | None = None, seed: int = 0) -> Path:
    """A checkpoint of a small model, its weights perturbed (``perturb_like_trained(**perturb)``) so that its
    sub-networks really differ, as after training; ``perturb=None`` keeps the initial weights."""
    import torch

    from ffn_edge.checkpoint import CheckpointMeta, save_checkpoint
    from ffn_edge.models import ModelConfig, create_model, perturb_like_trained

    torch.manual_seed(seed)
    cfg = ModelConfig(arch, len(classes), frame_counts=frame_counts, width_mult=width, shift=shift)
    model = create_model(cfg).eval()
    if perturb is not None:
        perturb_like_trained(model, **perturb)
    save_checkpoint(path, model, CheckpointMeta(cfg, list(classes), input_size=size, resize_shorter=resize_shorter))
    return path


def fingerprint(root: Path) -> str:
    """Every file's name, size and modification time under ``root``: changes when any file is written."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        h.update(f"{p.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def shared_root(basetemp: Path) -> Path:
    """A folder every pytest-xdist worker of this run sees (the run's own temp root without xdist)."""
    return basetemp.parent if os.environ.get("PYTEST_XDIST_WORKER") else basetemp


def built_once(root: Path, name: str, build: Callable[[Path], object]) -> Path:
    """``root/name``, made by ``build(folder)`` the first time any worker asks (under a file lock).

    The build writes to a temporary folder that is renamed into place, so a crashed build leaves
    nothing that a later caller would take for a finished one.
    """
    out = root / name
    with FileLock(str(root / f"{name}.lock")):
        if not out.exists():
            tmp = root / f"{name}.building"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            build(tmp)
            tmp.rename(out)
    return out
