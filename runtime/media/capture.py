"""CaptureThread: reads one source in a daemon thread, preprocesses each frame once, fills a FrameBuffer.

A live source that fails is released and reopened with exponential back-off until it works or the
thread is closed; a file ends cleanly at its end. Every loss, retry, reopen, rejected frame and end is
reported as a ``SourceEvent`` (``events``, ``on_event``). See ``media/sources.py`` for the sources.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable, Iterator

from ...bundle.preprocess import Preprocessor
from ...core.errors import SourceError
from .raw_frames import DecidedFrameReads, RawFrames
from .ring import FrameBuffer, RingReads
from .sources import FrameSource, SourceSpec

MAX_EVENTS = 1000  # events kept in CaptureThread.events (oldest forgotten first)


@dataclasses.dataclass(frozen=True)
class SourceEvent:
    """Something the user should hear about: kind in opened, lost, retry, reopened, rejected,
    finished, error, stuck; ``time`` is time.monotonic() when it happened."""

    kind: str
    message: str
    time: float


class CaptureThread(RingReads, DecidedFrameReads):
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
        keep_raw: bool = False,
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
        self.raw = RawFrames(capacity + 1 if keep_raw else 0)  # the frames as read, for raw_frame() (0: none)
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

    def clock_of(self, stamp: float) -> float | None:
        """When (``source.clock()`` time) the frame stamped ``stamp`` was captured; None for a file read offline.

        Live stamps are that time; a file played in real time delivers its frame at start + media time.
        """
        if self.source.live:
            return stamp
        if not self.realtime or self.started is None:
            return None
        return self.started + stamp

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
                self.raw.add(stamp, item[0])  # before the ring, so a stream never misses it
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
        """Reopen a lost live source (``reopen_with_backoff``); False once closed."""
        if not reopen_with_backoff(self.source, self._stop, self._sleep, self.backoff_s, self.max_backoff_s,
                                   self._emit):
            return False
        self.reopens += 1
        return True

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


def reopen_with_backoff(source: FrameSource, stop: threading.Event, sleep: Callable[[float], object],
                        backoff_s: float, max_backoff_s: float, emit: Callable[[str, str], None]) -> bool:
    """Release ``source`` and reopen it, doubling the wait up to ``max_backoff_s``; False once ``stop`` is set.

    Every failed attempt is reported (``retry``), and the reopen that works (``reopened``)."""
    source.release()
    delay = backoff_s
    attempt = 0
    while not stop.is_set():
        sleep(delay)
        if stop.is_set():
            return False
        attempt += 1
        try:
            source.open()
        except SourceError as e:
            delay = min(2 * delay, max_backoff_s)
            emit("retry", f"{e} (attempt {attempt}; next in {delay:g} s)")
            continue
        emit("reopened", f"{source.name}: reopened after {attempt} attempt(s)")
        return True
    return False
