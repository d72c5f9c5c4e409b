"""One source of a multi-stream: its capture thread, its events and its window clock.

Every source keeps what a single ``Stream`` gives it: its own ``CaptureThread`` (reading, reconnect
with back-off, events), never waited on by the others. The multi-stream asks each camera, once per
round, for the frames of its last window:

* **offline** (files read as fast as decisions go): windows end at media times ``window_s``,
  ``window_s + stride``, ... of each file; the round waits for every file's frames (a file's decode
  is the only thing that can hold a round up, and only by ``wait_timeout_s``).
* **real time** (cameras, URLs, files played in real time): the window ends now, on each source's
  own clock; a camera that lost its frames (or has none yet) has an empty window this round and the
  others run without it. Nothing waits on a live source.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import numpy as np

from ...bundle.preprocess import Preprocessor
from ..media.capture import SourceEvent
from ..media.sources import FrameSource
from .inbox import EventInbox, capture_for
from .options import StreamOptions

log = logging.getLogger("ffn_edge.runtime")


class Camera:
    """A source in a multi-stream (see the module docstring). Started by ``start``, stopped by ``close``."""

    def __init__(self, source: FrameSource, weight: float, preprocessor: Preprocessor, options: StreamOptions,
                 realtime: bool, on_event: Callable[[SourceEvent], None] | None = None) -> None:
        self.source, self.weight, self.options = source, weight, options
        self.name = source.name
        self.inbox = EventInbox(on_event)
        self.capture = capture_for(source, preprocessor, options, realtime, self.inbox)
        self.decisions = 0  # windows this camera has been given (offline: its media clock)
        self._first: float | None = None  # first stamp (offline) / source clock at the first frame (live)
        self._offset = 0.0  # real-time files: media stamps minus the source clock
        self.done = False  # the file ended or the capture failed: the camera leaves the multi-stream

    def start(self) -> None:
        self.capture.start()

    def close(self) -> None:
        self.capture.close()

    def fail_to_start(self, error: Exception) -> None:
        """The source did not open: the camera leaves at the first round, saying why."""
        self.inbox.add(f"error: {error}")
        self.done = True

    @property
    def offline(self) -> bool:
        return not self.capture.realtime

    def drain_events(self) -> tuple[str, ...]:
        return self.inbox.drain()

    def wait_ready(self) -> None:
        """Offline only: wait for this round's window end (a file that ended or failed is ``done``)."""
        o = self.options
        if self._first is None:
            if not self.capture.wait_for(-math.inf, o.wait_timeout_s):
                self._fail("no frame")
                return
            self._first = float(self.capture.select(math.inf)[1][0])
        end_t = self._first + o.window_s + self.decisions * o.stride_ms / 1000.0
        if not self.capture.wait_for(end_t, o.wait_timeout_s):
            if self.decisions == 0 and self.capture.error is None and self.capture.finished:
                return  # a file shorter than one window: one decision on what it has
            self._fail(f"no frame for t={end_t:.3f} s")

    def window(self) -> tuple[list[np.ndarray], np.ndarray, tuple[float, float]]:
        """The frames (preprocessed), their stamps and the (start, end) of this round's window."""
        o = self.options
        if self.capture.error is not None:
            self._fail("capture failed")
        if self.done:
            return [], np.zeros(0), (0.0, 0.0)
        if self.offline:
            assert self._first is not None
            end_t = self._first + o.window_s + self.decisions * o.stride_ms / 1000.0
            if self.decisions == 0 and self.capture.finished:
                end_t = min(end_t, self.capture.latest_time() or end_t)
        else:
            if self._first is None:
                latest = self.capture.latest_time()
                if latest is None:
                    return [], np.zeros(0), (0.0, 0.0)  # no frame yet: not in this round
                self._first = self.source.clock()
                self._offset = 0.0 if self.source.live else latest - self._first
            end_t = self.source.clock() + self._offset
        frames, stamps = self.capture.select(o.window_s, end_t)
        if len(stamps) == 0 and (self.offline or self.capture.finished):
            self.done = True  # a file has ended
        return frames, stamps, (end_t - o.window_s, end_t)

    def _fail(self, what: str) -> None:
        """The camera leaves the round: its capture's error, a timeout, or the end of its file."""
        self.done = True
        if self.capture.error is not None:
            self.inbox.add(f"error: {self.capture.error}")
        elif not self.capture.finished:
            self.inbox.add(f"error: {self.name}: {what} within {self.options.wait_timeout_s:g} s")
