"""RawFrames: the frames as the source gave them (BGR), kept by stamp for a stream that hands its app the
frame each result was decided on (``keep_frame=True``).

The ring holds preprocessed frames (small, float, network-sized); an app that draws on what it saw
wants the camera's own picture. Bounded like the ring: at most ``capacity`` frames, and every frame
older than the last one taken is dropped (decisions move forward), so what stays is the frames read
since the last result, plus a file's read-ahead (at most the ring's capacity), and the last frame handed out.
"""

from __future__ import annotations

import collections
import threading

import numpy as np

from .ring import STAMP_TOLERANCE_S
from .sources import FrameSource


class RawFrames:
    """(stamp, frame as read) for one capture: ``add`` from the capture thread, ``take`` from the stream."""

    def __init__(self, capacity: int) -> None:
        self._items: collections.deque[tuple[float, np.ndarray]] = collections.deque(maxlen=capacity)
        self._lock = threading.Lock()
        self._last: tuple[float, np.ndarray] | None = None  # what ``take`` handed out last

    def add(self, stamp: float, frame: np.ndarray) -> None:
        """A frame read (capacity 0: dropped at once)."""
        with self._lock:
            self._items.append((stamp, frame))

    def take(self, stamp: float) -> np.ndarray | None:
        """The frame stamped ``stamp``, handed over with every frame before it dropped (None if not kept).

        A result decided on the same frame as the one before (a camera that sent nothing new) gets the
        same array again.
        """
        with self._lock:
            if self._last is not None and abs(self._last[0] - stamp) <= STAMP_TOLERANCE_S:
                return self._last[1]
            while self._items and self._items[0][0] < stamp - STAMP_TOLERANCE_S:
                self._items.popleft()
            if not self._items or abs(self._items[0][0] - stamp) > STAMP_TOLERANCE_S:
                return None
            self._last = self._items.popleft()
            return self._last[1]

    def __len__(self) -> int:
        return len(self._items)


class DecidedFrameReads:
    """What a stream asks a capture (``self.source``, ``self.started``, ``self.raw``) about the frame it decided on."""

    source: FrameSource
    started: float | None
    raw: RawFrames

    @property
    def origin(self) -> float:
        """The stamp of second 0 of the source: 0 for a file (media time); for a live source, when its capture
        began (its stamps are ``source.clock()``, seconds since boot)."""
        return (self.started or 0.0) if self.source.live else 0.0

    def raw_frame(self, stamp: float) -> np.ndarray | None:
        """The frame stamped ``stamp`` as the source gave it (BGR), with ``keep_raw``; older ones are dropped."""
        return self.raw.take(stamp)
