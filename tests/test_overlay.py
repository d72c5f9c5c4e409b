"""The ffn-run overlay: one rendering of each line on a dark panel, sized to the frame; q / Esc closes --show.

Drawn on blank frames of many sizes and checked pixel by pixel: nothing outside the panel changes,
every panel pixel is a blend of the panel and the text colour only (a second, offset rendering in
another colour, such as an outline, would leave pixels off that line), and the text pixels are
exactly those of one ``putText`` per line.
"""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest
from ffn_edge.runtime.app import overlay
from ffn_edge.runtime.app.overlay import PANEL_ALPHA, PANEL_BGR, TEXT_BGR, Window, draw_overlay

LINES = ["pushing something left 0.93", "16 frames  12.4 ms  budget"]
SIZES = [(120, 160), (240, 320), (360, 640), (480, 854), (720, 1280), (1080, 1920), (2160, 3840), (1280, 720),
         (640, 360)]
BACKGROUND = (40, 160, 90)


@pytest.mark.parametrize("h,w", SIZES)
def test_text_is_drawn_once_on_its_panel_at_every_frame_size(h, w):
    image = np.full((h, w, 3), BACKGROUND, np.uint8)
    lay = draw_overlay(cv2, image, LINES)
    x0, y0, x1, y1 = lay.panel
    assert 0 <= x0 < x1 < w and 0 <= y0 < y1 < h

    outside = np.ones((h, w), bool)
    outside[y0 : y1 + 1, x0 : x1 + 1] = False
    assert (image[outside] == BACKGROUND).all(), "pixels changed outside the panel"

    panel = (np.array(BACKGROUND) * (1 - PANEL_ALPHA) + np.array(PANEL_BGR) * PANEL_ALPHA).astype(np.uint8)
    inside = image[y0 : y1 + 1, x0 : x1 + 1].reshape(-1, 3).astype(float)
    direction = np.array(TEXT_BGR, float) - panel
    a = (inside - panel) @ direction / (direction @ direction)  # how far along panel -> text each pixel is
    off_line = np.abs(inside - (panel + a[:, None] * direction)).max(axis=1)
    assert off_line.max() <= 2 and a.min() >= -0.01 and a.max() <= 1.01, "a colour that is not panel/text blend"

    one = np.zeros((h, w), np.uint8)  # the pixels of exactly one rendering per line, at the layout's origins
    for line, origin in zip(LINES, lay.origins, strict=True):
        cv2.putText(one, line, origin, cv2.FONT_HERSHEY_SIMPLEX, lay.scale, 255, lay.thickness, cv2.LINE_AA)
    drawn = np.abs(image.astype(int) - panel).max(axis=2) > 0
    drawn[outside] = False
    assert (drawn == (one > 0)).all(), "text pixels differ from one putText per line"
    assert not one[outside].any(), "text runs outside its panel"


@pytest.mark.parametrize("h,w", SIZES)
def test_text_height_follows_the_frame(h, w):
    image = np.zeros((h, w, 3), np.uint8)
    lay = draw_overlay(cv2, image, LINES[:1])
    rows = np.flatnonzero((image[:, :, 0] > 128).any(axis=1))
    cap = rows.max() - rows.min() + 1
    assert cap >= overlay.MIN_FONT_PX
    if w >= h * 1.2:  # landscape: 3-6 % of the height whatever the size (portrait may shrink to fit its width)
        assert 0.025 * h <= cap <= 0.06 * h or cap <= overlay.MIN_FONT_PX + 6, (cap, h)
    assert lay.panel[3] < h / 3


def test_no_lines_draw_nothing():
    image = np.full((360, 640, 3), BACKGROUND, np.uint8)
    draw_overlay(cv2, image, [])
    assert (image == BACKGROUND).all()


class FakeCV2:
    """The three HighGUI calls Window uses, scripted: keys and window visibility per shown frame."""

    error = cv2.error
    WND_PROP_VISIBLE = cv2.WND_PROP_VISIBLE

    def __init__(self, keys, visible):
        self.keys, self.visible, self.shown = list(keys), list(visible), 0

    def imshow(self, name, image):
        self.shown += 1

    def waitKey(self, delay):  # noqa: N802 - cv2's name
        return self.keys.pop(0)

    def getWindowProperty(self, name, prop):  # noqa: N802 - cv2's name
        return self.visible.pop(0)


@pytest.mark.parametrize("key", [ord("q"), ord("Q"), 27, 27 | 0x100000])  # Esc, also with modifier bits set
def test_q_or_esc_closes_the_window(key):
    w = Window(FakeCV2([-1, -1, key], [1.0, 1.0, 1.0]))
    frame = np.zeros((8, 8, 3), np.uint8)
    assert w.show(frame) and w.show(frame)
    assert not w.show(frame)


def test_closing_the_window_stops_but_a_late_mapped_window_does_not():
    w = Window(FakeCV2([-1, -1, -1, ord("x")], [0.0, 1.0, 1.0, 0.0]))
    frame = np.zeros((8, 8, 3), np.uint8)
    assert w.show(frame)  # not mapped yet: still running
    assert w.show(frame) and w.show(frame)
    assert not w.show(frame)  # closed with the mouse


def test_annotator_stops_the_run_when_the_window_is_closed(monkeypatch, tmp_path):
    from ffn_edge.runtime.app import cli

    monkeypatch.setenv("DISPLAY", ":0")
    video = tmp_path / "v.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    for _ in range(5):
        writer.write(np.zeros((48, 64, 3), np.uint8))
    writer.release()
    annotator = cli.Annotator(str(video), None, show=True, live=False)
    annotator.window = Window(FakeCV2([ord("q")], [1.0]))
    annotator.draw(np.zeros((48, 64, 3), np.uint8), 10.0)
    assert annotator.closed
    annotator.draw(np.zeros((48, 64, 3), np.uint8), 10.0)  # no more windows once closed (the fake would raise)


def test_show_with_the_headless_opencv_names_the_fix(monkeypatch, tmp_path):
    from ffn_edge.runtime.app import cli

    from ffn_edge.core.errors import ConfigError

    monkeypatch.setenv("DISPLAY", ":0")
    info = cv2.getBuildInformation()
    monkeypatch.setattr(cv2, "getBuildInformation", lambda: re.sub(r"GUI:\s*\S+", "GUI:   NONE", info))
    with pytest.raises(ConfigError, match=r"--show: this OpenCV has no GUI .*pip install opencv-python"):
        cli.Annotator(str(tmp_path / "v.mp4"), None, show=True, live=True)
    assert overlay.gui_missing(cv2) and "GUI:   NONE" in cv2.getBuildInformation()
