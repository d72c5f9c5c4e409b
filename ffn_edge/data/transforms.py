"""Spatial transforms of a clip: every frame of one item gets the same crop (and flip).

* ``ValTransform``: the runtime's own ``Preprocessor`` (resize the shorter side to
  ``resize_shorter`` with INTER_LINEAR on uint8, centre crop, RGB, normalise), so evaluation sees
  exactly the numbers the deployed model will see.
* ``TrainTransform``: TSM's multi-scale crop: crop width and height are each one of
  ``scales`` x the frame's shorter side (at most one scale step apart), placed at one of 13 fixed
  positions (corners, centre, edge midpoints, quarter points), resized to ``input_size``;
  optional horizontal flip (off by default: Something-Something labels are direction-sensitive).

Both take a list of BGR uint8 frames and return float32 ``(N, 3, input_size, input_size)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from ..bundle.manifest import InputSpec
from ..bundle.preprocess import Preprocessor

TSM_SCALES = (1.0, 0.875, 0.75, 0.66)
# Crop positions in quarters of the free space (x, y): TSM's "more_fix_crop" offsets.
_OFFSETS = ((0, 0), (4, 0), (0, 4), (4, 4), (2, 2), (0, 2), (4, 2), (2, 4), (2, 0), (1, 1), (3, 1), (1, 3), (3, 3))


def _spec(input_size: int, resize_shorter: int, mean: Sequence[float], std: Sequence[float]) -> InputSpec:
    return InputSpec(
        name="clip", layout="NTCHW", size=(input_size, input_size), resize_shorter=resize_shorter,
        mean=tuple(mean), std=tuple(std),
    )


class ValTransform:
    """Resize shorter side, centre crop, normalise: the runtime's preprocessing, frame by frame."""

    def __init__(self, input_size: int, resize_shorter: int, mean: Sequence[float], std: Sequence[float]) -> None:
        self.preprocess = Preprocessor(_spec(input_size, resize_shorter, mean, std))

    def __call__(self, frames: list[np.ndarray], rng: np.random.Generator | None = None) -> np.ndarray:
        return np.stack([self.preprocess(f) for f in frames])


class TrainTransform:
    """TSM multi-scale crop + optional flip, one random choice shared by all frames of the clip."""

    def __init__(
        self,
        input_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        flip: bool = False,
        scales: Sequence[float] = TSM_SCALES,
        max_distort: int = 1,
    ) -> None:
        self.input_size = input_size
        self.flip = flip
        self.scale_pairs = [
            (sw, sh) for i, sh in enumerate(scales) for j, sw in enumerate(scales) if abs(i - j) <= max_distort
        ]
        # A frame that is already input_size square is only normalised (no resize, full "crop").
        self.normalise = Preprocessor(_spec(input_size, input_size, mean, std))

    def __call__(self, frames: list[np.ndarray], rng: np.random.Generator | None = None) -> np.ndarray:
        rng = rng if rng is not None else np.random.default_rng()
        scale_w, scale_h = self.scale_pairs[rng.integers(len(self.scale_pairs))]
        offset = _OFFSETS[rng.integers(len(_OFFSETS))]
        flip = self.flip and rng.random() < 0.5
        return np.stack([self._one(f, scale_w, scale_h, offset, flip) for f in frames])

    def _crop_side(self, short_side: int, scale: float) -> int:
        side = int(short_side * scale)
        return self.input_size if abs(side - self.input_size) < 3 else side  # TSM snaps near-misses

    def _one(
        self, frame: np.ndarray, scale_w: float, scale_h: float, offset: tuple[int, int], flip: bool
    ) -> np.ndarray:
        h, w = frame.shape[:2]
        crop_w = min(self._crop_side(min(h, w), scale_w), w)
        crop_h = min(self._crop_side(min(h, w), scale_h), h)
        left = offset[0] * ((w - crop_w) // 4)
        top = offset[1] * ((h - crop_h) // 4)
        crop = frame[top : top + crop_h, left : left + crop_w]
        if (crop_h, crop_w) != (self.input_size, self.input_size):
            crop = cv2.resize(crop, (self.input_size, self.input_size), interpolation=cv2.INTER_LINEAR)
        if flip:
            crop = crop[:, ::-1]
        return self.normalise(np.ascontiguousarray(crop))
