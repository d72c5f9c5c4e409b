"""A folder or glob of still images as a video source, read like a file (in name order, at a fixed rate).

``ffn-run --video frames/`` or ``--video "frames/*.jpg"``: the images are the frames, sorted by name
with numbers compared as numbers (``2.jpg`` before ``10.jpg``), timed at ``IMAGES_FPS`` frames per
second of media time. An image that cannot be decoded is handed on as ``None``, which the capture
thread counts as a rejected frame and reports, as for a bad video frame.
"""

from __future__ import annotations

import glob
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ...core.errors import SourceError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm")
IMAGES_FPS = 30.0  # media time of an image sequence: frame k is at k / IMAGES_FPS seconds
MAX_IMAGES = 10_000_000  # names kept in memory; a folder beyond this is refused, not listed without end
GLOB_CHARS = "*?["


def is_image_pattern(text: str) -> bool:
    """A glob (``frames/*.jpg``) rather than a path."""
    return any(c in text for c in GLOB_CHARS)


def list_images(text: str) -> list[Path]:
    """The images a folder or glob names, in natural name order; SourceError when there are none."""
    if is_image_pattern(text):
        names = (Path(p) for p in glob.iglob(str(Path(text).expanduser())))
        where = f"{text}: no image matches the pattern"
    else:
        folder = Path(text).expanduser()
        names = (p for p in folder.iterdir())
        where = f"{text}: a folder without images ({', '.join(IMAGE_SUFFIXES[:3])}, ...)"
    found = []
    for p in names:
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
            found.append(p)
            if len(found) > MAX_IMAGES:
                raise SourceError(f"{text}: more than {MAX_IMAGES} images")
    if not found:
        raise SourceError(where)
    return sorted(found, key=_natural)


def _natural(path: Path) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


class ImageSequence:
    """A cv2.VideoCapture look-alike over a list of image files (what FrameSource reads)."""

    def __init__(self, paths: list[Path], fps: float = IMAGES_FPS) -> None:
        self.paths, self.fps, self.index = list(paths), fps, 0

    def isOpened(self) -> bool:  # noqa: N802 - cv2.VideoCapture's name
        return bool(self.paths)

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.index >= len(self.paths):
            return False, None
        image = cv2.imread(str(self.paths[self.index]), cv2.IMREAD_COLOR)
        self.index += 1
        return True, image  # None for an undecodable file: rejected downstream, the sequence goes on

    def get(self, prop_id: int) -> float:
        if prop_id == cv2.CAP_PROP_FPS:
            return self.fps
        if prop_id == cv2.CAP_PROP_POS_MSEC:
            return 1000.0 * self.index / self.fps
        if prop_id == cv2.CAP_PROP_FRAME_COUNT:
            return float(len(self.paths))
        return 0.0

    def release(self) -> None:
        self.index = len(self.paths)
