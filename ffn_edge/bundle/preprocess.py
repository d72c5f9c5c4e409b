"""One frame from OpenCV -> one normalised model input frame (numpy + OpenCV only, no torch).

This is THE preprocessing of ffn-edge: the runtime applies it to every captured frame, the
exporter's parity check feeds its output to both the PyTorch model and the ONNX graph, and the
training evaluation transform must produce the same numbers (import and call ``Preprocessor``
there rather than re-implementing it). Given ``InputSpec(size=(H, W), resize_shorter=S, mean, std)``
and a uint8 frame of height h and width w, ``Preprocessor(spec)(frame)`` does, in this order:

1. **Channels** - BGR (h, w, 3) is used as is; grayscale (h, w) or (h, w, 1) is replicated to BGR;
   BGRA (h, w, 4) drops alpha. Any other shape or dtype, an empty frame, a non-array, or a frame
   over the size / aspect limits of ``core.validate.check_frame_shape`` (checked before any
   pixel is touched, so a 1 x 500000 frame cannot make the resize allocate gigabytes) raises
   ``SourceError``.
2. **Resize** (a resized frame over ``MAX_RESIZED_PIXELS``: only its crop, see ``_crop_of_resized``)
   the shorter side to S with ``cv2.resize(..., interpolation=cv2.INTER_LINEAR)`` on the
   uint8 frame: the longer side becomes ``int(S * long / short)`` (truncated, as torchvision's
   ``Resize(S)`` computes it). A frame whose shorter side already is S is not resized.
3. **Centre crop** to (H, W): top = ``int(round((h' - H) / 2))``, left = ``int(round((w' - W) / 2))``
   with Python's ``round`` (torchvision's ``CenterCrop`` offsets).
4. **BGR -> RGB, HWC -> CHW, float32**, then ``(x / 255 - mean[c]) / std[c]`` per RGB channel,
   computed as ``x * (1 / (255 std[c])) + (-mean[c] / std[c])`` in float32 (equal to the formula
   up to float32 rounding, ~1e-6).

The result is a C-contiguous float32 array of shape (3, H, W). Only the resize touches every input
pixel; the normalisation runs on the cropped H x W pixels in two vectorised numpy passes.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..core import validate as V
from ..core.errors import SourceError
from .manifest import InputSpec


class Preprocessor:
    """Callable turning one OpenCV frame (BGR uint8, any size) into a (3, H, W) float32 model input.

    Built once per input spec so the per-channel scale and offset are precomputed; reused for every
    frame (it holds no per-frame state, so one instance may be shared between threads).
    """

    def __init__(self, spec: InputSpec) -> None:
        height, width = spec.size
        if height < 1 or width < 1:
            raise ValueError(f"input size must be positive, got {spec.size}")
        if spec.resize_shorter < max(height, width):
            raise ValueError(
                f"resize_shorter={spec.resize_shorter} is smaller than the crop {spec.size}: "
                "the centre crop would not fit every frame"
            )
        if len(spec.mean) != 3 or len(spec.std) != 3 or min(spec.std) <= 0:
            raise ValueError(f"mean/std must be 3 RGB values with std > 0, got {spec.mean}/{spec.std}")
        self.spec = spec
        self.output_shape: tuple[int, int, int] = (3, height, width)
        std = np.asarray(spec.std, dtype=np.float64)
        mean = np.asarray(spec.mean, dtype=np.float64)
        self._scale = (1.0 / (255.0 * std)).astype(np.float32).reshape(3, 1, 1)
        self._offset = (-mean / std).astype(np.float32).reshape(3, 1, 1)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """Preprocess one frame (see the module docstring for the exact steps)."""
        bgr = to_bgr(frame)
        crop = self._resize_and_crop(bgr)
        chw_rgb = crop[:, :, ::-1].transpose(2, 0, 1)  # views only: RGB channel order, CHW
        out = np.empty(self.output_shape, dtype=np.float32)  # C-contiguous, whatever the input layout
        np.multiply(chw_rgb, self._scale, out=out)
        out += self._offset
        return out

    def _resize_and_crop(self, bgr: np.ndarray) -> np.ndarray:
        """Shorter side -> resize_shorter (INTER_LINEAR), then the centre (H, W) crop (a view)."""
        h, w = bgr.shape[:2]
        short_side = self.spec.resize_shorter
        if h <= w:
            new_h, new_w = short_side, int(short_side * w / h)
        else:
            new_h, new_w = int(short_side * h / w), short_side
        crop_h, crop_w = self.spec.size
        top = int(round((new_h - crop_h) / 2.0))
        left = int(round((new_w - crop_w) / 2.0))
        if new_h * new_w > V.MAX_RESIZED_PIXELS:
            return _crop_of_resized(bgr, (new_h, new_w), (top, left), (crop_h, crop_w))
        if (new_h, new_w) != (h, w):
            bgr = cv2.resize(bgr, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        return bgr[top : top + crop_h, left : left + crop_w]


def _crop_of_resized(bgr: np.ndarray, new: tuple[int, int], at: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Only the crop of the resized frame, computed directly (bilinear, the same pixel-centre mapping as
    ``cv2.resize``; values may differ by a level or two from its fixed-point rounding): a bundle asking
    for a large resize, given a very wide frame, would otherwise allocate the whole resized frame."""
    h, w = bgr.shape[:2]
    sy, sx = h / new[0], w / new[1]
    m = np.array([[sx, 0.0, (at[1] + 0.5) * sx - 0.5], [0.0, sy, (at[0] + 0.5) * sy - 0.5]])
    return cv2.warpAffine(bgr, m, (size[1], size[0]), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def to_bgr(frame: np.ndarray) -> np.ndarray:
    """A uint8 (h, w, 3) BGR view or copy of ``frame``; gray and BGRA are converted, others refused."""
    if not isinstance(frame, np.ndarray):
        raise SourceError(f"frame is not an image array (got {type(frame).__name__})")
    if frame.dtype != np.uint8:
        raise SourceError(f"frame has dtype {frame.dtype}, expected uint8 (shape {frame.shape})")
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    channels = frame.shape[2] if frame.ndim == 3 else None
    if frame.ndim not in (2, 3) or channels not in (None, 3, 4):
        raise SourceError(
            f"frame of shape {frame.shape} is not an image (expected (h, w), (h, w, 1), "
            "(h, w, 3) BGR or (h, w, 4) BGRA)"
        )
    try:
        V.check_frame_shape(frame.shape[0], frame.shape[1])
    except ValueError as e:
        raise SourceError(str(e)) from None
    if channels is None:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if channels == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    return frame
