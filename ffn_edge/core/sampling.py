"""Frame-count helpers shared by training, export and the runtime (numpy only, no torch).

* ``nearest_subnet``: paper §5.3 — any frame count n is served by the sub-network whose frame
  count is nearest to n; a tie goes to the higher frame count.
* ``frame_count_set``: sorted unique positive frame counts, the one check every caller uses;
* ``segment_indices``: TSN segment sampling — split a clip into n equal segments and take a random
  frame per segment (training) or the centre frame (evaluation).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def frame_count_set(frame_counts: Sequence[int | str]) -> tuple[int, ...]:
    """Sorted unique positive frame counts, or a ValueError naming the bad value."""
    if not frame_counts:
        raise ValueError("frame counts are empty")
    out = set()
    for f in frame_counts:
        try:
            n = int(f)
        except (TypeError, ValueError):
            raise ValueError(f"{f!r} is not an integer") from None
        if n < 1:
            raise ValueError(f"frame counts must be positive, got {n}")
        out.add(n)
    return tuple(sorted(out))


def nearest_subnet(n: int, frame_counts: Sequence[int]) -> int:
    """Index into ``frame_counts`` of the sub-network that serves ``n`` frames (tie -> higher)."""
    if not frame_counts:
        raise ValueError("frame_counts is empty")
    if n < 1:
        raise ValueError(f"frame count must be >= 1, got {n}")
    # Sort key: distance first, then prefer the higher frame count on a tie.
    return min(range(len(frame_counts)), key=lambda i: (abs(frame_counts[i] - n), -frame_counts[i]))


def segment_indices(
    num_frames: int, n: int, train: bool, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Frame indices (length ``n``) sampled TSN-style from a clip of ``num_frames`` frames.

    Segments are ``[floor(i*num/n), floor((i+1)*num/n))``; a clip shorter than ``n`` repeats frames
    (each segment still maps to a valid index), which is what TSN does for short videos.
    """
    if num_frames < 1:
        raise ValueError(f"clip has no frames (num_frames={num_frames})")
    if n < 1:
        raise ValueError(f"frame count must be >= 1, got {n}")
    edges = np.arange(n + 1, dtype=np.float64) * num_frames / n
    start = np.floor(edges[:-1]).astype(np.int64)
    end = np.maximum(np.floor(edges[1:]).astype(np.int64), start + 1)
    if train:
        rng = rng if rng is not None else np.random.default_rng()
        idx = start + (rng.random(n) * (end - start)).astype(np.int64)
    else:
        idx = ((edges[:-1] + edges[1:]) / 2).astype(np.int64)
    return np.clip(idx, 0, num_frames - 1)
