"""Video sources: parse a source string and open it (the capture thread is ``capture.py``, its ring ``ring.py``).

API (all torch-free)::

    parse_source("cam0" | "0" | "/dev/video0" | "clip.mp4" | "frames/" | "frames/*.jpg" | "rtsp://..."
                 | "... ! appsink") -> SourceSpec
    FrameSource(source, opener=None, clock=time.monotonic)     one cv2.VideoCapture: open/read/release
    CaptureThread(source, preprocessor, capacity=64, realtime=None, on_event=None,
                  backoff_s=0.5, max_backoff_s=8.0, sleep=None)   context manager
        .start() / .close()                    open (SourceError if impossible) / stop and join
        .wait_for(t, timeout) -> bool          until a frame with timestamp >= t is buffered
        .window(duration_s, end_t=None) -> (frames (T, 3, H, W) float32, timestamps (T,) float64)
        .select(duration_s, end_t=None) -> (list of T (3, H, W) frames, not copied, timestamps)
        .paused()                              context: the producer reads nothing while it runs
        .latest_time() -> float | None
        .finished, .error, .events, counters   end of file reached / thread failure / reports
    FrameBuffer(capacity, frame_shape, block_when_full)   the ring itself (used by CaptureThread)

Timestamps are seconds: media time for files (frame index / fps, or the container's position when
fps is unknown), ``clock()`` (``time.monotonic``) at capture for live sources. Each frame is
preprocessed exactly once, in the capture thread, so overlapping windows cost only a copy.

Live sources (camera, URL, GStreamer) always run in real time: the ring drops its oldest frame when
full, and a failed read is a *loss*: the source is released and reopened with exponential back-off
(``backoff_s`` doubling up to ``max_backoff_s``) until it works or the thread is closed; every loss,
failed attempt and reopen is reported as a ``SourceEvent``. A file ends cleanly at its end
(``finished``). By default a file is read offline (``realtime=False``): no frame is ever dropped;
the producer blocks while the ring is full of frames the consumer may still ask for, and a
``window()`` call releases the frames older than its start (windows move forward). With
``realtime=True`` a file is paced to its media time and drops oldest frames, like a camera.

Frames of any size are accepted (the preprocessor resizes); gray and BGRA are converted; a frame
that cannot be an image is counted in ``frames_rejected``, reported, and skipped.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from ...core import validate as V
from ...core.errors import SourceError
from .images import ImageSequence, is_image_pattern, list_images

SOURCE_KINDS = ("camera", "file", "images", "url", "gstreamer")
URL_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://")
NETWORK_TIMEOUT_MS = 5000  # open and read timeouts for URL streams (OpenCV's FFMPEG backend)
MIN_FPS, MAX_FPS = 0.01, 1000.0  # a container's frame rate outside these is treated as unknown


@dataclasses.dataclass(frozen=True)
class SourceSpec:
    """A parsed source: ``kind`` in SOURCE_KINDS, ``target`` (device index, path, URL or pipeline)."""

    kind: str
    target: int | str
    text: str  # what the user wrote, for messages

    @property
    def live(self) -> bool:
        """Live sources run in real time and are reopened when lost; files and image sequences end."""
        return self.kind not in ("file", "images")


@functools.lru_cache(maxsize=1)
def opencv_has_gstreamer() -> bool:
    """Whether this OpenCV build can run GStreamer pipelines (pip wheels cannot)."""
    match = re.search(r"^\s*GStreamer:\s*(\S+)", cv2.getBuildInformation(), re.MULTILINE)
    return bool(match) and match.group(1).upper().startswith("YES")


MAX_CAMERA_INDEX = 1023  # OpenCV device indices (V4L: /dev/video0 .. ; higher ones overflow its int)


def _short(text: str) -> str:
    """A source string for a message: at most 80 characters (a 100,000-character argument stays one line)."""
    return text if len(text) <= 80 else f"{text[:80]}... ({len(text)} characters)"


def parse_source(spec: str) -> SourceSpec:
    """Classify a ``--video`` string so errors surface before any capture starts."""
    text = spec.strip()
    if not text:
        raise SourceError("empty video source (expected camN, a file, an rtsp:// or http(s):// URL, or a pipeline)")
    if text.lower().startswith(URL_SCHEMES):
        return SourceSpec("url", text, text)
    if "!" in text:
        if not opencv_has_gstreamer():
            raise SourceError(
                f"{text!r} looks like a GStreamer pipeline, but this OpenCV ({cv2.__version__}) is built "
                "without GStreamer (pip's opencv-python is); install an OpenCV built with GStreamer, "
                "e.g. JetPack's (apt nvidia-opencv)"
            )
        return SourceSpec("gstreamer", text, text)
    camera = re.fullmatch(r"(?:cam|/dev/video)?(\d+)", text)  # cam0, 0, /dev/video0: OpenCV device 0
    if camera:
        digits = camera.group(1)
        if len(digits) > 4 or int(digits) > MAX_CAMERA_INDEX:
            raise SourceError(f"{_short(text)}: camera index must be in [0, {MAX_CAMERA_INDEX}]")
        return SourceSpec("camera", int(digits), text)
    if is_image_pattern(text):
        list_images(text)  # refuses a pattern that matches no image now, not at the first read
        return SourceSpec("images", text, text)
    path = Path(text).expanduser()
    try:
        exists, is_file = path.exists(), path.is_file()
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte
        exists = is_file = False
    if not exists:
        raise SourceError(
            f"{_short(text)}: no such file (a source is a video file, a folder or glob of images, camN or "
            "/dev/videoN, an rtsp:// or http(s):// URL, or a GStreamer pipeline)"
        )
    if path.is_dir():
        list_images(text)
        return SourceSpec("images", str(path), text)
    if stat.S_ISCHR(path.stat().st_mode):  # a V4L2 device under another name (/dev/v4l/by-id/...)
        return SourceSpec("camera", str(path.resolve()), text)
    if not is_file:
        raise SourceError(f"{_short(text)}: not a video file (a FIFO, socket or other special file)")
    return SourceSpec("file", str(path), text)


class Capture(Protocol):
    """What FrameSource needs from a capture object (cv2.VideoCapture, or a fake in tests)."""

    def isOpened(self) -> bool: ...

    def read(self) -> tuple[bool, Any]: ...

    def get(self, prop_id: int) -> float: ...

    def release(self) -> None: ...


Opener = Callable[[SourceSpec], Capture]


def open_capture(spec: SourceSpec) -> Capture:
    """The default opener: a cv2.VideoCapture with the right backend (URLs get network timeouts)."""
    if spec.kind == "url":
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            NETWORK_TIMEOUT_MS,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            NETWORK_TIMEOUT_MS,
        ]
        return cv2.VideoCapture(spec.target, cv2.CAP_FFMPEG, params)
    if spec.kind == "gstreamer":
        return cv2.VideoCapture(spec.target, cv2.CAP_GSTREAMER)
    if spec.kind == "images":
        return ImageSequence(list_images(str(spec.target)))
    return cv2.VideoCapture(spec.target)


class FrameSource:
    """One opened capture of a source: raw frames with their timestamps. Not thread-safe."""

    def __init__(
        self,
        source: str | SourceSpec,
        opener: Opener | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec = parse_source(source) if isinstance(source, str) else source
        self.opener = opener or open_capture
        self.clock = clock
        self.fps: float | None = None  # files: frames per second from the container, if sane
        self.frame_index = 0  # frames read from the current capture
        self._capture: Capture | None = None

    @property
    def name(self) -> str:
        return self.spec.text

    @property
    def live(self) -> bool:
        return self.spec.live

    def open(self) -> None:
        """Open (or reopen) the capture; SourceError naming the source when it cannot be opened."""
        self.release()
        try:
            capture = self.opener(self.spec)
        except cv2.error:  # some backends raise instead of returning a closed capture
            raise SourceError(f"{self.name}: cannot open {self._describe()}") from None
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"{self.name}: cannot open {self._describe()}")
        self._capture = capture
        self.frame_index = 0
        fps = capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if math.isfinite(fps) and MIN_FPS <= fps <= MAX_FPS else None

    def read(self) -> tuple[np.ndarray, float] | None:
        """Next raw frame and its timestamp (s); None at the end of a file or when a live read fails."""
        if self._capture is None:
            raise SourceError(f"{self.name}: read before open")
        ok, frame = self._capture.read()
        if not ok:
            return None
        if self.live:
            stamp = self.clock()
        elif self.fps is not None:
            stamp = self.frame_index / self.fps
        else:
            stamp = self._capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            if not (isinstance(stamp, float) and math.isfinite(stamp) and 0.0 <= stamp <= V.MAX_DURATION_S):
                raise SourceError(f"{self.name}: frame {self.frame_index} has no usable position ({stamp!r:.40} s) "
                                  "and the file states no frame rate: cannot time its frames")
        self.frame_index += 1
        return frame, stamp

    def release(self) -> None:
        """Release the capture; safe to call any number of times."""
        capture, self._capture = self._capture, None
        if capture is not None:
            capture.release()

    def _describe(self) -> str:
        if self.spec.kind == "camera":
            return f"camera {self.spec.target} (OpenCV device index): is it connected and not in use?"
        if self.spec.kind == "file":
            return "the file as a video (unsupported or corrupt format?)"
        if self.spec.kind == "images":
            return "the images (the folder or pattern is empty now?)"
        if self.spec.kind == "url":
            return f"the stream (unreachable, or no answer within {NETWORK_TIMEOUT_MS} ms?)"
        return "the GStreamer pipeline (check it with gst-launch-1.0)"
