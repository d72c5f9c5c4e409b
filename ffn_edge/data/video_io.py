"""Decoding the frames a sampling asks for, with OpenCV: from JPEG folders or from video files.

Both readers return ``{frame index: BGR uint8 image}`` for exactly the requested indices, so a clip
sampled at several frame counts decodes each frame once. Anything unreadable raises DatasetError
naming the file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import cv2
import numpy as np

from .errors import DatasetError

Frames = dict[int, np.ndarray]


def read_frame_folder(folder: Path, indices: Iterable[int], template: str, start_index: int) -> Frames:
    """Read 0-based frame ``indices`` from ``folder``, whose files are ``template.format(i + start_index)``."""
    frames = {}
    for i in sorted(set(indices)):
        path = folder / template.format(i + start_index)
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise DatasetError(f"{path}: frame missing or not a readable image")
        frames[i] = image
    return frames


def read_video(path: Path, plan: Callable[[int], list[np.ndarray]]) -> tuple[list[np.ndarray], Frames]:
    """Decode the frames ``plan(num_frames)`` asks for; return the plan and the frames.

    The plan (one index array per frame count) needs the video's length, which only the file knows,
    so the reader calls it once the length is known. Frames are decoded sequentially up to the last
    wanted one (``grab`` skips the rest without colour conversion). When the container reports no
    length, or a wrong one (the stream ends early), the video is decoded once in full and the plan
    is made again over the frames that really exist.
    """
    if not path.is_file():
        raise DatasetError(f"{path}: video not found")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise DatasetError(f"{path}: cannot open video")
        reported = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        if reported > 0:
            indices = plan(reported)
            frames = _decode_wanted(cap, set(np.concatenate(indices).tolist()))
            if frames is not None:
                return indices, frames
    finally:
        cap.release()
    every = _decode_all(path)
    if not every:
        raise DatasetError(f"{path}: no decodable frames")
    indices = plan(len(every))
    return indices, {i: every[i] for i in set(np.concatenate(indices).tolist())}


def _decode_wanted(cap: cv2.VideoCapture, wanted: set[int]) -> Frames | None:
    """The wanted frames, decoding forward from the start; None if the stream ends before the last one."""
    frames = {}
    position = 0  # index of the frame the next grab() returns
    for i in sorted(wanted):
        while position < i:
            if not cap.grab():
                return None
            position += 1
        ok, image = cap.read()
        if not ok:
            return None
        position += 1
        frames[i] = image
    return frames


def _decode_all(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    try:
        frames = []
        ok, image = cap.read()
        while ok:
            frames.append(image)
            ok, image = cap.read()
        return frames
    finally:
        cap.release()
