"""Verification of exported graphs: the ONNX checker, and ONNX Runtime against the PyTorch model.

Parity is measured on clips that look like video, not on noise: by default synthetic clips from
``ffn_edge.data.synthetic`` (moving objects on textured backgrounds) through the runtime's own
preprocessing; with a data list, real clips from it. A graph passes when the largest absolute
logit difference is within ``TOLERANCE`` (fp32) and every clip's top-1 class is identical.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from ..core.sampling import segment_indices
from ..data.synthetic import CLASSES, render_clip
from ..data.transforms import ValTransform
from ..models import VideoClassifier
from .errors import ExportError
from .onnx_export import INPUT_NAME

TOLERANCE = 1e-4


def check_graph(path: Path) -> None:
    """``onnx.checker`` full check (types and shapes inferred) of a graph file and its external data."""
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ExportError(f"{path.name}: ONNX checker failed: {first}") from None


def synthetic_clips(n: int, frames: int, size: int, resize_shorter: int, mean, std, seed: int = 0) -> np.ndarray:
    """``n`` normalised float32 clips (n, frames, 3, size, size), one synthetic class after another."""
    transform = ValTransform(size, resize_shorter, mean, std)
    rng = np.random.default_rng(seed)
    side = max(resize_shorter, size)
    return np.stack([transform(list(render_clip(i % len(CLASSES), rng, frames, side))) for i in range(n)])


def dataset_clips(list_file: str, root: str, kind: str, n: int, frames: int, size: int, resize_shorter: int,
                  mean, std) -> np.ndarray:
    """The first ``n`` clips of a TSM-style data list, evaluation sampling (centre frame per segment)."""
    from ..data.dataset import VideoDataset

    ds = VideoDataset(list_file, root, kind=kind, frame_counts=(frames,), train=False, input_size=size,
                      resize_shorter=resize_shorter, mean=mean, std=std)
    if len(ds) == 0:
        raise ExportError(f"{list_file}: no clips to verify with")
    return np.stack([ds[i][0][0].numpy() for i in range(min(n, len(ds)))])


def resample(clips: np.ndarray, frames: int) -> np.ndarray:
    """TSN evaluation sampling of ``frames`` frames from clips (N, F, ...) of any length F."""
    return np.ascontiguousarray(clips[:, segment_indices(clips.shape[1], frames, train=False)])


@dataclasses.dataclass(frozen=True)
class Parity:
    """ONNX Runtime vs PyTorch on the same clips."""

    max_abs_diff: float
    top1_equal: bool
    clips: int

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= TOLERANCE and self.top1_equal


def parity(model: VideoClassifier, subnet: int, graph: Path, clips: np.ndarray) -> Parity:
    """Run ``graph`` in ONNX Runtime (CPU) and ``model`` as sub-network ``subnet`` on ``clips``.

    The clips go through once as one batch and once one by one, which also checks the dynamic
    batch dimension.
    """
    sess = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ref = model(torch.from_numpy(clips), subnet=subnet).numpy()
    batched = sess.run(None, {INPUT_NAME: clips})[0]
    single = np.concatenate([sess.run(None, {INPUT_NAME: clips[i : i + 1]})[0] for i in range(len(clips))])
    diff = float(max(np.abs(batched - ref).max(), np.abs(single - ref).max()))
    top1 = bool((batched.argmax(1) == ref.argmax(1)).all() and (single.argmax(1) == ref.argmax(1)).all())
    return Parity(diff, top1, len(clips))
