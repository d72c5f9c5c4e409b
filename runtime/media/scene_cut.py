"""SceneCut: does this frame start a new scene? A cheap per-frame test for online mode's state reset.

The statistic is the **total variation distance** (half the L1 distance) between the joint colour
histograms of two consecutive frames, each taken on the frame block-averaged down to about
``GRID x GRID`` pixels and quantised to ``LEVELS`` levels per RGB channel (``LEVELS**3`` bins):

* a colour histogram ignores where things are, so an object moving over a still background changes
  it only by the object's area, while a cut replaces the background and with it most of the mass;
* block averaging first removes pixel noise (a 7 x 7 block on a 224 crop divides its deviation by 7),
  so noise moves few pixels across bin edges;
* total variation is the share of the pixels whose colour bin changed: bounded in [0, 1] whatever the
  frame size or bin count (a threshold means the same everywhere), and a bright object or a flash
  covering 12 % of the frame moves 0.12 of it. Hellinger and chi-square weigh mass appearing in an
  empty bin more, which is exactly what a flash or an object appearing does: on the synthetic set's
  clips they put its flashes (a white disc on ~12 % of the frame) next to its cuts.

Per frame: one pass over the (3, H, W) float32 frame for the block means, then ``GRID**2`` values to
bin (benchmarks/scene_cut.py prints the cost per frame). The frames are the ones a step graph gets
(normalised with the bundle's mean and std): ``mean`` and ``std`` map them back to 0..1 pixels, so
the bins are colours.
"""

from __future__ import annotations

import numpy as np

from ...core import validate as V
from ...core.defaults import DEFAULT_CUT_THRESHOLD, IMAGENET_MEAN, IMAGENET_STD
from ...core.errors import InputError

GRID = 32  # the frame is block-averaged down to about GRID x GRID pixels before binning
LEVELS = 16  # quantisation levels per RGB channel: LEVELS**3 joint colour bins


def check_cut_threshold(value: object, name: str = "cut threshold") -> float:
    """A total variation distance in (0, MAX_CUT_THRESHOLD]; ValueError in one line otherwise."""
    return V.check_float(name, value, 0.0, V.MAX_CUT_THRESHOLD, lo_open=True)


class SceneCut:
    """Compares each frame with the previous one; ``is_cut`` is True when the colour distribution jumped.

    The reference is the last frame given (a cut frame included: the new scene is the reference from
    then on). The first frame after creation or ``reset`` only becomes the reference (never a cut).
    """

    def __init__(self, threshold: float = DEFAULT_CUT_THRESHOLD, *,
                 mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD) -> None:
        try:
            self.threshold = check_cut_threshold(threshold)
        except ValueError as e:
            raise InputError(str(e)) from None
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise InputError(f"scene cut: mean/std must be 3 RGB values with std > 0, got {mean}/{std}")
        self._std = np.asarray(std, np.float32).reshape(3, 1, 1)
        self._mean = np.asarray(mean, np.float32).reshape(3, 1, 1)
        self._reference: np.ndarray | None = None  # the reference frame's normalised histogram
        self.distance: float | None = None  # the last frame's distance to its reference (None: it had none)

    def reset(self) -> None:
        """Forget the reference: the next frame only becomes one."""
        self._reference = None
        self.distance = None

    def is_cut(self, frame: np.ndarray) -> bool:
        """True when ``frame`` (preprocessed (3, H, W) float32) starts a new scene; it becomes the reference."""
        current = self.histogram(frame)
        previous, self._reference = self._reference, current
        if previous is None:
            self.distance = None
            return False
        self.distance = total_variation(previous, current)
        return self.distance >= self.threshold

    def histogram(self, frame: np.ndarray) -> np.ndarray:
        """The frame's normalised joint colour histogram (``LEVELS**3`` values summing to 1, see the module
        docstring); InputError for anything but a (3, H, W) float32 frame."""
        if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[0] != 3 or min(frame.shape) < 1:
            shape = frame.shape if isinstance(frame, np.ndarray) else type(frame).__name__
            raise InputError(f"scene cut: expected a preprocessed (3, H, W) frame, got {shape}")
        if frame.dtype != np.float32:
            raise InputError(f"scene cut: expected a float32 preprocessed frame, got {frame.dtype}")
        _, h, w = frame.shape
        bh, bw = max(1, h // GRID), max(1, w // GRID)
        gh, gw = h // bh, w // bw
        rows = frame[:, : gh * bh, : gw * bw].reshape(3, gh, bh, gw * bw).sum(axis=2)  # two 1-axis sums: ~5x
        small = rows.reshape(3, gh, gw, bw).sum(axis=3) * np.float32(1.0 / (bh * bw))  # faster than one 2-axis mean
        pixels = small * self._std + self._mean  # back to 0..1 RGB
        levels = np.clip(np.nan_to_num(pixels * LEVELS, nan=0.0), 0, LEVELS - 1).astype(np.intp)
        index = (levels[0] * LEVELS + levels[1]) * LEVELS + levels[2]
        counts = np.bincount(index.ravel(), minlength=LEVELS**3)
        return counts / counts.sum()


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    """Total variation distance of two distributions: half their L1 distance, the mass that moved, in [0, 1]."""
    return 0.5 * float(np.abs(p - q).sum())
