"""Source strings a user types: cameras by number or device path, image folders and globs, several --video kept."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from ffn_edge.runtime.media.images import IMAGES_FPS, ImageSequence, list_images
from ffn_edge.runtime.media.sources import FrameSource, parse_source

from ffn_edge.core.errors import SourceError


@pytest.mark.parametrize("text,index", [("cam0", 0), ("0", 0), ("3", 3), ("/dev/video0", 0), ("/dev/video12", 12)])
def test_cameras_by_index_or_device_path(text, index):
    spec = parse_source(text)
    assert (spec.kind, spec.target, spec.live) == ("camera", index, True)


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="no /dev/null")
def test_a_character_device_under_another_name_is_a_camera():
    spec = parse_source("/dev/null")  # like /dev/v4l/by-id/usb-...-video-index0
    assert spec.kind == "camera" and spec.target == "/dev/null"


def write_images(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        cv2.imwrite(str(folder / name), np.full((24, 32, 3), 10 * i, np.uint8))


def test_image_folder_is_read_in_natural_name_order_at_a_fixed_rate(tmp_path):
    write_images(tmp_path / "f", ["10.jpg", "2.png", "1.jpg"])
    (tmp_path / "f" / "notes.txt").write_text("not an image")
    spec = parse_source(str(tmp_path / "f"))
    assert spec.kind == "images" and not spec.live
    src = FrameSource(spec)
    src.open()
    got = [src.read() for _ in range(4)]
    assert got[3] is None  # the end, like a file
    assert [round(t * IMAGES_FPS) for _, t in got[:3]] == [0, 1, 2]
    assert [int(f[0, 0, 0]) for f, _ in got[:3]] == [20, 10, 0]  # 1.jpg, 2.png, 10.jpg (written 3rd, 2nd, 1st)


def test_image_glob(tmp_path):
    write_images(tmp_path, ["a_1.jpg", "a_2.jpg", "b_1.jpg"])
    spec = parse_source(str(tmp_path / "a_*.jpg"))
    assert spec.kind == "images"
    assert [p.name for p in list_images(spec.target)] == ["a_1.jpg", "a_2.jpg"]


@pytest.mark.parametrize("make,text", [
    (lambda d: d.mkdir(), "a folder without images"),
    (lambda d: write_images(d, ["x.jpg"]), "no image matches"),
])
def test_empty_image_sources_are_one_line_errors(tmp_path, make, text):
    d = tmp_path / "d"
    make(d)
    target = str(d) if text.startswith("a folder") else str(d / "*.png")
    with pytest.raises(SourceError, match=text):
        parse_source(target)


def test_an_undecodable_image_is_handed_on_as_a_rejected_frame(tmp_path):
    write_images(tmp_path, ["1.jpg"])
    (tmp_path / "2.jpg").write_bytes(b"not a jpeg")
    seq = ImageSequence(list_images(str(tmp_path)))
    assert seq.read()[1] is not None
    assert seq.read() == (True, None)
    assert seq.read() == (False, None)


def test_several_videos_are_kept_never_a_silent_replacement():
    """Each --video is kept (several serve the multi-stream run); one is a plain list of one."""
    from ffn_edge.runtime.app.cli import build_parser

    assert build_parser().parse_args(["--bundle", "b.ffn", "--video", "a.mp4", "--video", "cam1"]).video == [
        "a.mp4", "cam1"]
    assert build_parser().parse_args(["--bundle", "b.ffn", "--video", "a.mp4"]).video == ["a.mp4"]
