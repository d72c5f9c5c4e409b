"""The decision overlay of ``ffn-run --show`` / ``--output``: text on a dark panel, drawn once, sized to the frame.

Each line is rendered by a single ``cv2.putText`` (no outline pass: an outline drawn at a larger
thickness lands offset from the text on some OpenCV builds), on a darkened panel that keeps it
readable on any background. Font scale and thickness follow the frame height, so the text is the
same share of the picture from 240p to 4K. Also the ``--show`` window's keys: ``q`` or Esc closes it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

FONT_HEIGHT_SHARE = 0.035  # cap height of the text as a share of the frame height
MIN_FONT_PX = 9  # below this, Hershey glyphs stop being legible
TEXT_BGR = (255, 255, 255)
PANEL_BGR = (24, 24, 24)
PANEL_ALPHA = 0.65  # panel opacity: the video stays visible behind it
QUIT_KEYS = (ord("q"), ord("Q"), 27)  # Esc


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where ``draw_overlay`` put things: the panel (x0, y0, x1, y1) and each line's text origin."""

    panel: tuple[int, int, int, int]
    origins: tuple[tuple[int, int], ...]
    scale: float
    thickness: int


def layout(cv2: Any, shape: Sequence[int], lines: Sequence[str]) -> Layout:
    """The panel and text positions for ``lines`` on a frame of ``shape`` (h, w, ...)."""
    h, w = int(shape[0]), int(shape[1])
    font = cv2.FONT_HERSHEY_SIMPLEX
    (_, cap), _ = cv2.getTextSize("H", font, 1.0, 1)
    px = max(MIN_FONT_PX, round(h * FONT_HEIGHT_SHARE))
    scale = px / cap
    thickness = max(1, round(px / 12))
    pad = max(2, px // 2)
    sizes = [cv2.getTextSize(line, font, scale, thickness) for line in lines]
    widest = max((s[0][0] for s in sizes), default=0)
    if widest + 3 * pad > w and widest > 0:  # a narrow (portrait) frame: shrink to fit its width
        scale *= (w - 3 * pad) / widest
        thickness = max(1, min(thickness, round(scale * cap / 12)))
        sizes = [cv2.getTextSize(line, font, scale, thickness) for line in lines]
        widest = max(s[0][0] for s in sizes)
    margin = pad // 2  # between the frame edge and the panel
    origins, top = [], margin + pad
    for (_, th), base in sizes:
        origins.append((margin + pad, top + th))  # putText's origin is the baseline's left end
        top += th + base + pad // 2
    bottom = origins[-1][1] + sizes[-1][1] + pad if lines else margin
    panel = (margin, margin, min(w - 1, margin + pad + widest + pad), min(h - 1, bottom))
    return Layout(panel, tuple(origins), scale, thickness)


def draw_overlay(cv2: Any, image: np.ndarray, lines: Sequence[str]) -> Layout:
    """Draw ``lines`` on ``image`` (BGR uint8, in place) over a darkened panel; returns where."""
    lay = layout(cv2, image.shape, lines)
    if not lines:
        return lay
    x0, y0, x1, y1 = lay.panel
    roi = image[y0 : y1 + 1, x0 : x1 + 1]
    roi[:] = (roi * (1 - PANEL_ALPHA) + np.array(PANEL_BGR) * PANEL_ALPHA).astype(np.uint8)
    for line, origin in zip(lines, lay.origins, strict=True):
        cv2.putText(image, line, origin, cv2.FONT_HERSHEY_SIMPLEX, lay.scale, TEXT_BGR, lay.thickness, cv2.LINE_AA)
    return lay


def gui_missing(cv2: Any) -> str | None:
    """Why this OpenCV cannot open a window (the headless build has no GUI backend), else None."""
    import re

    found = re.search(r"^\s*GUI:\s*(\S+)", cv2.getBuildInformation(), re.M)
    if found and found.group(1).upper() == "NONE":
        return ("this OpenCV has no GUI (the headless build): pip install opencv-python instead of "
                "opencv-python-headless (the [cpu] extra), or write the video with --output")
    return None


class Window:
    """The ``--show`` window: ``show`` returns False once the user asked to stop (``q`` / Esc, or closed it)."""

    def __init__(self, cv2: Any, name: str = "ffn-run") -> None:
        self.cv2, self.name = cv2, name
        self.seen = False  # a window counts as closed only after it was seen open (backends map it late)

    def show(self, image: np.ndarray) -> bool:
        cv2 = self.cv2
        cv2.imshow(self.name, image)
        key = cv2.waitKey(1)
        if key != -1 and key & 0xFF in QUIT_KEYS:
            return False
        try:
            visible = cv2.getWindowProperty(self.name, cv2.WND_PROP_VISIBLE) >= 1
        except cv2.error:  # a backend that cannot tell
            return True
        self.seen |= visible
        return visible or not self.seen
