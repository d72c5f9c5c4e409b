"""The capture/decision loop every stream runs; what one turn of it does is the mode's.

``DecisionLoop`` owns what both modes share: the capture thread (started and stopped with the
iteration) and its ring of preprocessed frames, the wait for the first frame, the end of the stream
(``max_decisions`` results, ``duration_s`` of wall clock, ``close`` from any thread, or the mode's
``END``), the source events between two results, and iterating once. A *mode* is a strategy
(``window_mode.WindowMode``, ``online_mode.OnlineMode``) with two methods: ``begin(run)`` once the
first frame is in, then ``tick(run)`` per turn, returning a result to yield, ``None`` (nothing this
turn: a live ring lost its frames) or ``END``. ``run`` (a ``Run``) is all a mode may use: the capture
and its source, a wait for a frame by stamp and a sleep by wall clock (both ending early when the
stream stops), the hold that keeps a file's capture out of a timed run, and the pending events.

``StreamBase`` is what a public stream is on top of that: a loop running one mode with the
``FrameCountPolicy`` it decides with, iterable once, closable, a context manager.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Generic, Protocol, TypeVar

from ...bundle.preprocess import Preprocessor
from ...core.errors import ConfigError, SourceError
from ..control.budgets import Budgets
from ..control.policy import FrameCountPolicy
from ..media.capture import CaptureThread, SourceEvent
from ..media.sources import FrameSource, Opener
from .inbox import EventInbox, capture_for
from .options import LoopOptions

log = logging.getLogger("ffn_edge.runtime")

SLEEP_SLICE_S = 0.05  # a wall-clock sleep wakes this often to see a stop


class End(enum.Enum):
    END = "end"


END = End.END  # a mode's tick: the stream has ended (a file ran out)
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


class Run:
    """One iteration's capture and clocks, as a mode sees them (see the module docstring)."""

    def __init__(self, capture: CaptureThread, options: LoopOptions, stop: threading.Event, deadline: float | None,
                 events: Callable[[], tuple[str, ...]]) -> None:
        self.capture, self.source, self.options = capture, capture.source, options
        self._stop, self._deadline, self.events = stop, deadline, events

    @property
    def live(self) -> bool:
        return self.source.live

    @property
    def offline(self) -> bool:
        """Read as fast as decisions go (a file, not played in real time): decisions keep media time."""
        return not self.capture.realtime

    def wait_frame(self, t: float, what: str) -> bool:
        """Wait for a frame stamped ``t`` or later; False when a file has ended (an error or a timeout raises)."""
        if self.capture.wait_for(t, self.options.wait_timeout_s):
            return True
        self.raise_if_failed(what)
        return False

    def raise_if_failed(self, what: str) -> None:
        """After a wait that found no frame: the capture's error, a timeout, or (file ended) nothing."""
        self.raise_error()
        if not self.capture.finished:
            raise SourceError(f"{self.source.name}: {what} within {self.options.wait_timeout_s:g} s")

    def raise_error(self) -> None:
        if self.capture.error is not None:
            raise self.capture.error

    def sleep_until(self, t: float) -> None:
        """Sleep until wall time ``t`` (or the stream's end), waking early if the capture or the stream stops."""
        end = t if self._deadline is None else min(t, self._deadline)
        while (remaining := end - time.monotonic()) > 0 and self.capture.running and not self._stop.is_set():
            time.sleep(min(remaining, SLEEP_SLICE_S))

    def held(self) -> contextlib.AbstractContextManager[Any]:
        """Around a timed run: a file's capture is paused (its decode is not the run's cost), a camera's is not."""
        return self.capture.paused() if not self.live else contextlib.nullcontext()


class Mode(Protocol[R_co]):
    """A stream's mode: what one turn of the loop does (see the module docstring)."""

    def begin(self, run: Run) -> None: ...

    def tick(self, run: Run) -> R_co | End | None: ...


class DecisionLoop:
    """Capture, waits, limits, events and stop of one stream (see the module docstring). Runs once."""

    def __init__(self, preprocessor: Preprocessor, source: str | FrameSource, options: LoopOptions,
                 opener: Opener | None = None, on_event: Callable[[SourceEvent], None] | None = None) -> None:
        self.preprocessor, self.options = preprocessor, options
        self.source = source if isinstance(source, FrameSource) else FrameSource(source, opener=opener)
        self._inbox = EventInbox(on_event)
        self._stop = threading.Event()
        self._iterator: Iterator[Any] | None = None

    def iterate(self, mode: Mode[R]) -> Iterator[R]:
        if self._iterator is not None:
            raise ConfigError("a stream is iterated once; open another with rt.stream / rt.online_stream")
        iterator = self._results(mode)
        self._iterator = iterator
        return iterator

    def close(self) -> None:
        """Stop the loop (from any thread) and its capture thread. Idempotent."""
        self._stop.set()
        if self._iterator is not None:
            with contextlib.suppress(ValueError):  # running in another thread: it sees _stop
                self._iterator.close()  # type: ignore[attr-defined]

    def drain_events(self) -> tuple[str, ...]:
        """Source events not yet reported ("kind: message")."""
        return self._inbox.drain()

    def _results(self, mode: Mode[R]) -> Iterator[R]:
        o = self.options
        capture = capture_for(self.source, self.preprocessor, o, o.realtime, self._inbox)
        started = time.monotonic()
        run = Run(capture, o, self._stop, None if o.duration_s is None else started + o.duration_s, self.drain_events)
        count = 0
        with capture:
            if not capture.wait_for(-math.inf, o.wait_timeout_s):
                run.raise_if_failed("no frame")
                return
            mode.begin(run)
            while (o.max_decisions is None or count < o.max_decisions) and not self._stop.is_set():
                if o.duration_s is not None and time.monotonic() - started >= o.duration_s:
                    return
                result = mode.tick(run)
                if result is END:
                    return
                if result is not None:
                    yield result
                    count += 1


S = TypeVar("S", bound="StreamBase[Any]")


class StreamBase(Generic[R]):
    """A loop running one mode, with the policy that chooses its frame counts (see the module docstring)."""

    def __init__(self, loop: DecisionLoop, mode: Mode[R], policy: FrameCountPolicy) -> None:
        self._loop, self._mode, self.policy = loop, mode, policy

    @property
    def source(self) -> FrameSource:
        return self._loop.source

    @property
    def budgets(self) -> Budgets:
        """The budgets in force (the scheduler's)."""
        return self.policy.budgets

    def __iter__(self) -> Iterator[R]:
        return self._loop.iterate(self._mode)

    def close(self) -> None:
        """Stop the stream (from any thread) and its capture thread. Idempotent."""
        self._loop.close()

    def __enter__(self: S) -> S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def drain_events(self) -> tuple[str, ...]:
        """Source events not yet reported ("kind: message"); each result carries those before it, so
        after the last result this gives the rest (the end of a file, say)."""
        return self._loop.drain_events()
