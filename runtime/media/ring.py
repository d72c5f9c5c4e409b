"""FrameBuffer: the bounded ring of (timestamp, preprocessed frame) between a capture thread and a stream.

Live sources drop the oldest frame when the ring is full; files read offline block the producer instead,
and a ``window()`` call releases the frames older than its start (windows move forward).
"""

from __future__ import annotations

import collections
import math
import threading
import time

import numpy as np

from ...core.errors import SourceError

STAMP_TOLERANCE_S = 1e-6  # timestamps this close are equal (k / fps and t - duration round differently)


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


class RingReads:
    """The ring's read side on an object that owns one (``self.buffer``): what a stream asks a capture."""

    buffer: FrameBuffer

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

    def latest_time(self) -> float | None:
        """Timestamp of the newest captured frame, None before the first."""
        return self.buffer.latest_time()
