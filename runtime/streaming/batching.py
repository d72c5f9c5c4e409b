"""Run one group of a multi-stream round: streams that chose the same n, as one batch or one by one.

Each stream's clip is sampled from its own window exactly as ``FFNRuntime.predict`` samples one
(TSN segment centres, ``fed = route(n)[1]`` frames); a batch stacks those clips on the batch axis
every exported graph has, so one backend run serves the group. Per-clip logits do not depend on the
other clips of the batch (the networks have no cross-sample operation; a test holds them equal to
single runs within 1e-5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ...core.sampling import segment_indices
from ..results import Prediction
from .session_api import Session


@dataclass(frozen=True)
class Clip:
    """One stream's input for the round: its window's frames and their stamps."""

    key: str
    frames: Sequence[np.ndarray]
    stamps: np.ndarray


@dataclass(frozen=True)
class GroupRun:
    """What one run of a group cost and answered."""

    n: int
    subnet: int
    batch: int
    latency_ms: float
    cpu_ms: float
    predictions: dict[str, Prediction]


def sampled_clip(frames: Sequence[np.ndarray], fed: int) -> tuple[np.ndarray, np.ndarray]:
    """(fed, 3, H, W) float32 of the sampled frames, and their indices."""
    idx = segment_indices(len(frames), fed, train=False)
    return np.stack([frames[i] for i in idx]).astype(np.float32, copy=False), idx


def run_group(session: Session, n: int, clips: Sequence[Clip], topk: int, batched: bool) -> list[GroupRun]:
    """Run ``clips`` at n frames: one batch (``batched``) or one run per clip; the runs in order."""
    _, fed = session.route(n)
    sampled = [sampled_clip(c.frames, fed) for c in clips]
    parts = [list(range(len(clips)))] if batched else [[i] for i in range(len(clips))]
    runs = []
    for part in parts:
        batch = np.ascontiguousarray(np.stack([sampled[i][0] for i in part]))
        r = session.run(n, batch)
        predictions = {}
        for row, i in enumerate(part):
            stamps = tuple(float(s) for s in clips[i].stamps[sampled[i][1]])
            predictions[clips[i].key] = session.label_prediction(r.logits[row], r.frames, r.subnet, r.latency_ms,
                                                                 stamps, topk, r.cpu_ms)
        runs.append(GroupRun(n, r.subnet, len(part), r.latency_ms, r.cpu_ms, predictions))
    return runs
