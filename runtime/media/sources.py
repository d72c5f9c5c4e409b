"""Video sources: parse a source string, capture in a thread into a ring of preprocessed frames.

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

import collections
import contextlib
import dataclasses
import functools
import math
import re
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from ...bundle.preprocess import Preprocessor
from ...core import validate as V
from ...core.errors import SourceError
from .images import ImageSequence, is_image_pattern, list_images

SOURCE_KINDS = ("camera", "file", "images", "url", "gstreamer")
URL_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://")
NETWORK_TIMEOUT_MS = 5000  # open and read timeouts for URL streams (OpenCV's FFMPEG backend)
MAX_EVENTS = 1000  # events kept in CaptureThread.events (oldest forgotten first)
MIN_FPS, MAX_FPS = 0.01, 1000.0  # a container's frame rate outside these is treated as unknown
STAMP_TOLERANCE_S = 1e-6  # timestamps this close are equal (k / fps and t - duration round differently)


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
                "e.g. JetPack's python3-opencv"
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


class FrameBuffer:
    """Bounded ring of (timestamp, preprocessed frame), shared by one producer and one consumer.

    ``block_when_full=False``: a full ring drops its oldest frame (counted in ``dropped``).
    ``block_when_full=True``: ``put`` waits until the consumer releases old frames (``window`` or
    ``release_before``), so nothing is lost. ``end()`` says no more frames will come and wakes
    everyone.
    """

    def __init__(self, capacity: int, frame_shape: tuple[int, ...], block_when_full: bool = False) -> None:
        if capacity < 1:
            raise ValueError(f"ring capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.frame_shape = tuple(frame_shape)
        self.block_when_full = block_when_full
        self.dropped = 0
        self._items: collections.deque[tuple[float, np.ndarray]] = collections.deque()
        self._released_before = -math.inf  # the consumer no longer needs frames older than this
        self._ended = False
        self._cond = threading.Condition()

    def put(self, frame: np.ndarray, stamp: float, timeout: float) -> bool:
        """Add a frame; False if the ring ended, or (blocking mode) no room came within ``timeout``."""
        frame.setflags(write=False)  # shared by every window that contains it
        with self._cond:
            if self.block_when_full and not self._cond.wait_for(self._has_room, timeout):
                return False
            if self._ended:
                return False
            if len(self._items) == self.capacity:
                self._items.popleft()  # blocking mode: a released frame; otherwise a dropped one
                if not self.block_when_full:
                    self.dropped += 1
            self._items.append((stamp, frame))
            self._cond.notify_all()
            return True

    def _has_room(self) -> bool:
        return self._ended or len(self._items) < self.capacity or self._items[0][0] < self._released_before

    def end(self) -> None:
        """No more frames: wakes a blocked producer and every waiting consumer. Idempotent."""
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    @property
    def ended(self) -> bool:
        return self._ended

    def latest_time(self) -> float | None:
        """Timestamp of the newest buffered frame (None while empty)."""
        with self._cond:
            return self._items[-1][0] if self._items else None

    def wait_for(self, t: float, timeout: float) -> bool:
        """Wait until a frame stamped >= ``t`` (within STAMP_TOLERANCE_S) is buffered.

        Returns False on timeout, or when the ring ended without reaching ``t``.

        In blocking mode, raises SourceError at once when the ring is full of frames the consumer
        still holds and none reaches ``t``: the producer could never deliver it (capacity too small).
        """

        def ready() -> bool:
            return self._ended or self._reached(t)

        with self._cond:
            deadline = time.monotonic() + timeout
            while not ready():
                if self.block_when_full and not self._has_room():
                    raise SourceError(
                        f"ring buffer of {self.capacity} frames is full of frames still needed "
                        f"(from t={self._items[0][0]:.3f} s) and cannot reach t={t:.3f} s: "
                        "use a capacity larger than the window length x fps"
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return self._reached(t)

    def _reached(self, t: float) -> bool:
        return bool(self._items) and self._items[-1][0] >= t - STAMP_TOLERANCE_S

    def window(self, duration_s: float, end_t: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Frames stamped in (end_t - duration_s, end_t] (end_t: newest frame), oldest first, stacked.

        Returns (frames (T, 3, H, W) float32, timestamps (T,) float64); T may be 0. See ``select``.
        """
        frames, stamps = self.select(duration_s, end_t)
        if not frames:
            return np.empty((0, *self.frame_shape), dtype=np.float32), stamps
        return np.stack(frames), stamps

    def select(self, duration_s: float, end_t: float | None = None) -> tuple[list[np.ndarray], np.ndarray]:
        """The frames of ``window`` as a list of the ring's own read-only arrays (no copy), and their stamps.

        Stamps within STAMP_TOLERANCE_S of a bound count as equal to it, so a window of k / fps
        seconds holds k frames of a file however the subtraction rounds. A consumer that uses only
        some frames (a decision samples n of them) copies only those. In blocking mode the frames
        before the window's start are released to the producer.
        """
        with self._cond:
            if end_t is None:
                end_t = self._items[-1][0] if self._items else -math.inf
            start = end_t - duration_s + STAMP_TOLERANCE_S
            end = end_t + STAMP_TOLERANCE_S
            picked = [(s, f) for s, f in self._items if start < s <= end]
            self.release_before(start)
        return [f for _, f in picked], np.array([s for s, _ in picked], dtype=np.float64)

    def first_at(self, t: float) -> tuple[np.ndarray, float] | None:
        """The oldest frame stamped at or after ``t`` (within STAMP_TOLERANCE_S) and its stamp; None if none is.

        Online streams sample one frame per stride this way; the frames before it are released.
        """
        with self._cond:
            for stamp, frame in self._items:
                if stamp >= t - STAMP_TOLERANCE_S:
                    self.release_before(stamp)
                    return frame, stamp
            return None

    def release_before(self, t: float) -> None:
        """Tell a blocking ring that frames stamped before ``t`` will not be asked for again."""
        with self._cond:
            if t > self._released_before:
                self._released_before = t
                self._cond.notify_all()


@dataclasses.dataclass(frozen=True)
class SourceEvent:
    """Something the user should hear about: kind in opened, lost, retry, reopened, rejected,
    finished, error, stuck; ``time`` is time.monotonic() when it happened."""

    kind: str
    message: str
    time: float


class CaptureThread:
    """Reads a FrameSource in a daemon thread, preprocesses each frame once, fills a FrameBuffer."""

    def __init__(
        self,
        source: str | SourceSpec | FrameSource,
        preprocessor: Preprocessor,
        capacity: int = 64,
        realtime: bool | None = None,
        on_event: Callable[[SourceEvent], None] | None = None,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        self.source = source if isinstance(source, FrameSource) else FrameSource(source)
        if realtime is None:
            realtime = self.source.live
        if self.source.live and not realtime:
            raise ValueError(f"{self.source.name}: realtime=False applies to files only (a live source cannot wait)")
        if not 0 < backoff_s <= max_backoff_s:
            raise ValueError(f"need 0 < backoff_s <= max_backoff_s, got {backoff_s} and {max_backoff_s}")
        self.preprocessor = preprocessor
        self.realtime = realtime
        self.buffer = FrameBuffer(capacity, preprocessor.output_shape, block_when_full=not realtime)
        self.on_event = on_event
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.finished = False  # the file's end was reached (never set for live sources)
        self.error: SourceError | None = None  # why the capture thread stopped unexpectedly
        self.frames_captured = 0  # frames put into the ring
        self.frames_rejected = 0  # frames the preprocessor refused
        self.reopens = 0
        self._events: collections.deque[SourceEvent] = collections.deque(maxlen=MAX_EVENTS)
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait  # the default sleep wakes up at close()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._gate = threading.Condition()  # paused(): the consumer holds the producer between frames
        self._paused = False
        self._busy = False  # the producer is reading or preprocessing a frame
        self.started: float | None = None  # source.clock() when capture began (real-time files: media time 0)

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> CaptureThread:
        """Open the source (SourceError if it cannot be) and start capturing. Returns self."""
        if self._closed:
            raise SourceError(f"{self.source.name}: capture already closed")
        if self._thread is None:
            self.source.open()
            self._emit("opened", f"{self.source.name}: opened ({self.source.spec.kind})")
            self._thread = threading.Thread(target=self._run, name=f"capture {self.source.name}", daemon=True)
            self._thread.start()
        return self

    def close(self, timeout: float = 2.0) -> None:
        """Stop capturing and join the thread (at most ``timeout`` s). Idempotent; never hangs."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self.buffer.end()
        with self._gate:
            self._gate.notify_all()
        if self._thread is None:
            self.source.release()
            return
        self._thread.join(timeout)
        if self._thread.is_alive():  # stuck inside a driver call; it is a daemon and releases on exit
            self._emit("stuck", f"{self.source.name}: capture thread did not stop within {timeout:g} s")

    def __enter__(self) -> CaptureThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- consumer API ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def paused(self, timeout: float = 1.0) -> Iterator[None]:
        """Hold the producer while the block runs: it finishes the frame in hand, then reads nothing more.

        A stream wraps the run it times in this, so the measured latency never contains its own
        capture work (decode + preprocess). Never hangs: after ``timeout`` s waiting for the frame in
        hand the block runs anyway. Files only: a camera must be drained on time.
        """
        with self._gate:
            self._paused = True
            self._gate.wait_for(lambda: not self._busy, timeout)
        try:
            yield
        finally:
            with self._gate:
                self._paused = False
                self._gate.notify_all()

    @contextlib.contextmanager
    def _working(self) -> Iterator[None]:
        """The producer's side of ``paused``: wait while paused, then mark the frame in hand."""
        with self._gate:
            while self._paused and not self._stop.is_set():
                self._gate.wait(0.1)
            self._busy = True
        try:
            yield
        finally:
            with self._gate:
                self._busy = False
                self._gate.notify_all()

    def wait_for(self, t: float, timeout: float) -> bool:
        """True once a frame stamped >= ``t`` is buffered; False on timeout, end of file or error."""
        return self.buffer.wait_for(t, timeout)

    def window(self, duration_s: float, end_t: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The buffered frames of the last ``duration_s`` seconds up to ``end_t`` (see FrameBuffer)."""
        return self.buffer.window(duration_s, end_t)

    def select(self, duration_s: float, end_t: float | None = None) -> tuple[list[np.ndarray], np.ndarray]:
        """``window``'s frames uncopied, as a list (see FrameBuffer.select)."""
        return self.buffer.select(duration_s, end_t)

    def first_at(self, t: float) -> tuple[np.ndarray, float] | None:
        """The oldest buffered frame stamped at or after ``t`` (see FrameBuffer.first_at)."""
        return self.buffer.first_at(t)

    def clock_of(self, stamp: float) -> float | None:
        """When (``source.clock()`` time) the frame stamped ``stamp`` was captured; None for a file read offline.

        Live stamps are that time; a file played in real time delivers its frame at start + media time.
        """
        if self.source.live:
            return stamp
        if not self.realtime or self.started is None:
            return None
        return self.started + stamp

    def latest_time(self) -> float | None:
        """Timestamp of the newest captured frame, None before the first."""
        return self.buffer.latest_time()

    @property
    def running(self) -> bool:
        """Whether frames may still arrive."""
        return self._thread is not None and not self.buffer.ended

    @property
    def events(self) -> list[SourceEvent]:
        """A copy of the recent events, oldest first."""
        return list(self._events)

    @property
    def frames_dropped(self) -> int:
        """Frames evicted unread from a full ring (real-time mode only)."""
        return self.buffer.dropped

    # -- the capture thread ------------------------------------------------------------------------
    def _run(self) -> None:
        name = self.source.name
        started = self.started = self.source.clock()
        try:
            while not self._stop.is_set():
                with self._working():
                    item = self.source.read()
                    if item is not None:
                        try:
                            frame = self.preprocessor(item[0])
                        except SourceError as e:
                            self._reject(e)
                            continue
                if item is None:
                    if not self.source.live:
                        self.finished = True
                        self._emit("finished", f"{name}: end of file after {self.source.frame_index} frames")
                        return
                    self._emit("lost", f"{name}: read failed (source lost); reopening")
                    if not self._reopen():
                        return
                    continue
                stamp = item[1]
                if self.realtime and not self.source.live:
                    self._pace(started + stamp)
                while not self.buffer.put(frame, stamp, timeout=0.5):
                    if self._stop.is_set() or self.buffer.ended:
                        return
                self.frames_captured += 1
        except Exception as e:  # a bug or a driver failure: report it instead of dying silently
            self.error = SourceError(f"{name}: capture failed: {type(e).__name__}: {e}")
            self._emit("error", str(self.error))
        finally:
            self.source.release()
            self.buffer.end()

    def _reopen(self) -> bool:
        """Reopen a lost live source, doubling the wait up to max_backoff_s; False once closed."""
        self.source.release()
        delay = self.backoff_s
        attempt = 0
        while not self._stop.is_set():
            self._sleep(delay)
            if self._stop.is_set():
                return False
            attempt += 1
            try:
                self.source.open()
            except SourceError as e:
                delay = min(2 * delay, self.max_backoff_s)
                self._emit("retry", f"{e} (attempt {attempt}; next in {delay:g} s)")
                continue
            self.reopens += 1
            self._emit("reopened", f"{self.source.name}: reopened after {attempt} attempt(s)")
            return True
        return False

    def _pace(self, due: float) -> None:
        """Real-time file playback: do not deliver a frame before its media time."""
        delay = due - self.source.clock()
        if delay > 0:
            self._sleep(delay)

    def _reject(self, error: SourceError) -> None:
        """Count a frame the preprocessor refused; report the first and every 100th."""
        self.frames_rejected += 1
        if self.frames_rejected == 1 or self.frames_rejected % 100 == 0:
            self._emit("rejected", f"{self.source.name}: frame skipped ({self.frames_rejected} so far): {error}")

    def _emit(self, kind: str, message: str) -> None:
        event = SourceEvent(kind, message, time.monotonic())
        self._events.append(event)
        if self.on_event is not None:
            self.on_event(event)
