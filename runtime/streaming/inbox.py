"""What every stream does with its source's capture: the capture thread it opens, and the events it keeps.

A single stream (``loop.DecisionLoop``) and each camera of a multi-stream (``cameras.Camera``) open their
capture the same way and report their source's events the same way, so both use these two pieces.
"""

from __future__ import annotations

import collections
import logging
import math
from collections.abc import Callable

from ...bundle.preprocess import Preprocessor
from ..media.capture import CaptureThread, SourceEvent
from ..media.sources import FrameSource
from .options import LoopOptions

log = logging.getLogger("ffn_edge.runtime")

MAX_PENDING_EVENTS = 100  # source events kept between two results
REPORTED_EVENTS = ("lost", "retry", "reopened", "rejected", "error", "stuck")  # also logged as warnings
RING_FPS, RING_SLACK = 60, 16  # default ring: a window at up to 60 fps, plus room
MAX_BACKOFF_S = 8.0  # longest wait between two reopenings of a lost live source (or backoff_s, if longer)


class EventInbox:
    """Source events kept until the next result takes them ("kind: message"); the bad ones also logged."""

    def __init__(self, on_event: Callable[[SourceEvent], None] | None = None) -> None:
        self._on_event = on_event
        self._pending: collections.deque[str] = collections.deque(maxlen=MAX_PENDING_EVENTS)

    def note(self, event: SourceEvent) -> None:
        """Capture-thread callback."""
        self._pending.append(f"{event.kind}: {event.message}")
        if event.kind in REPORTED_EVENTS:
            log.warning("%s", event.message)
        if self._on_event is not None:
            self._on_event(event)

    def add(self, text: str) -> None:
        """An event of the stream's own (a source that failed to start, a wait that timed out)."""
        self._pending.append(text)

    def drain(self) -> tuple[str, ...]:
        """The events not yet reported, oldest first."""
        return tuple(self._pending.popleft() for _ in range(len(self._pending)))  # deque ops are thread-safe


def capture_for(source: FrameSource, preprocessor: Preprocessor, options: LoopOptions, realtime: bool | None,
                inbox: EventInbox) -> CaptureThread:
    """The capture thread of a stream's source: a ring for one window (or ``options.capacity``), back-off."""
    o = options
    capacity = o.capacity or int(math.ceil(o.window_s * RING_FPS)) + RING_SLACK
    return CaptureThread(source, preprocessor, capacity=capacity, realtime=realtime, on_event=inbox.note,
                         backoff_s=o.backoff_s, max_backoff_s=max(MAX_BACKOFF_S, o.backoff_s), keep_raw=o.keep_frame)
