"""Stream: one video source classified continuously on a session, one ``StreamResult`` per decision.

The stream owns what a session does not: the capture thread and its ring of preprocessed frames,
the frame-count policy (and through it the scheduler and its ``Budgets``), the decision clock and
the source events. ``FFNRuntime.stream(...)`` builds one; iterate it (once), change its budgets
from any thread with ``set_budget``, stop it with ``close`` (or a ``with`` block)::

    with rt.stream("cam0", budget_ms=30) as s:
        for r in s:
            ...                                  # s.set_budget(budget_ms=20) from anywhere

What a decision times is exactly the run it scheduled (``Prediction.latency_ms``): the n sampled
frames are gathered from the ring (never the whole window) and, for files, the capture thread is
held (``CaptureThread.paused``) while the run executes, so the stream never times its own decode and
preprocessing. A live camera keeps being drained; its capture is load on the machine like any
other, which the scheduler sees as slowdown (wall / CPU), not as the sub-network's own cost.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from ...core.errors import ConfigError, SourceError
from ..control.budgets import KEEP, BatteryPolicy, Budgets, ThermalPolicy, _Keep
from ..control.policy import FrameCountPolicy
from ..media.inputs import check_stream_options
from ..media.sources import CaptureThread, FrameSource, Opener, SourceEvent
from ..results import StreamResult
from .session_api import Session

log = logging.getLogger("ffn_edge.runtime")

WAIT_TIMEOUT_S = 10.0  # longest wait for a frame before a stream decision is skipped / ends
MAX_PENDING_EVENTS = 100  # source events kept between two decisions
REPORTED_EVENTS = ("lost", "retry", "reopened", "rejected", "error", "stuck")  # also logged as warnings


@dataclasses.dataclass(frozen=True)
class StreamOptions:
    """How a stream reads and paces its source (checked in ``Stream._check_options``)."""

    window_s: float = 1.0  # seconds of past video each decision looks at
    stride_ms: float = 500.0  # time between decisions
    topk: int = 5
    max_decisions: int | None = None
    duration_s: float | None = None  # wall clock
    realtime: bool | None = None  # files: paced like a camera (default: read offline)
    capacity: int | None = None  # ring size (default: a window at up to 60 fps, plus room)
    wait_timeout_s: float = WAIT_TIMEOUT_S
    backoff_s: float = 0.5  # first wait before reopening a lost live source


class Stream:
    """A source classified on ``session``; see the module docstring. Iterable once."""

    def __init__(self, session: Session, source: str | FrameSource, policy: FrameCountPolicy,
                 options: StreamOptions, opener: Opener | None = None,
                 on_event: Callable[[SourceEvent], None] | None = None) -> None:
        self._check_options(options)
        self.session, self.policy, self.options = session, policy, options
        self.source = source if isinstance(source, FrameSource) else FrameSource(source, opener=opener)
        self._on_event = on_event
        self._pending: collections.deque[str] = collections.deque(maxlen=MAX_PENDING_EVENTS)
        self._stop = threading.Event()
        self._iterator: Iterator[StreamResult] | None = None

    @staticmethod
    def _check_options(o: StreamOptions) -> None:
        """Every stream option check, in one place (ConfigError naming the option; limits in runtime.validate)."""
        check_stream_options(o.window_s, o.stride_ms, o.duration_s, max_decisions=o.max_decisions, topk=o.topk,
                             wait_timeout_s=o.wait_timeout_s, backoff_s=o.backoff_s, capacity=o.capacity)

    # -- budgets -----------------------------------------------------------------------------------
    @property
    def budgets(self) -> Budgets:
        """The budgets in force (the scheduler's)."""
        return self.policy.budgets

    def set_budget(self, budget_ms: float | None | _Keep = KEEP, *, power_w: float | None | _Keep = KEEP,
                   battery_policy: BatteryPolicy | str | None | _Keep = KEEP,
                   thermal_policy: ThermalPolicy | str | None | _Keep = KEEP) -> None:
        """Change this stream's budgets from its next decision (thread-safe); ``None`` turns one off."""
        self.policy.set_budget(budget_ms, power_w=power_w, battery_policy=battery_policy,
                               thermal_policy=thermal_policy)

    # -- lifecycle ---------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[StreamResult]:
        if self._iterator is not None:
            raise ConfigError("a stream is iterated once; start another with FFNRuntime.stream")
        self._iterator = self._decisions()
        return self._iterator

    def close(self) -> None:
        """Stop the stream (from any thread) and its capture thread. Idempotent."""
        self._stop.set()
        if self._iterator is not None:
            with contextlib.suppress(ValueError):  # running in another thread: it sees _stop
                self._iterator.close()  # type: ignore[attr-defined]

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def drain_events(self) -> tuple[str, ...]:
        """Source events not yet reported ("kind: message"); each result carries those before it, so
        after the last decision this gives the rest (the end of a file, say)."""
        return tuple(self._pending.popleft() for _ in range(len(self._pending)))  # deque ops are thread-safe

    # -- the decision loop -------------------------------------------------------------------------
    def _note(self, event: SourceEvent) -> None:
        """Capture-thread callback: keep the event for the next result, log the bad ones."""
        self._pending.append(f"{event.kind}: {event.message}")
        if event.kind in REPORTED_EVENTS:
            log.warning("%s", event.message)
        if self._on_event is not None:
            self._on_event(event)

    def _decisions(self) -> Iterator[StreamResult]:
        o, src = self.options, self.source
        cap = o.capacity or int(math.ceil(o.window_s * 60)) + 16  # room for a window at up to 60 fps
        capture = CaptureThread(src, self.session.preprocessor, capacity=cap, realtime=o.realtime,
                                on_event=self._note, backoff_s=o.backoff_s, max_backoff_s=max(8.0, o.backoff_s))
        stride_s = o.stride_ms / 1000.0
        started = time.monotonic()
        decision = 0
        with capture:
            offline = not capture.realtime
            if not capture.wait_for(-math.inf, o.wait_timeout_s):
                self._raise_if_failed(capture, "no frame")
                return
            first = float(capture.select(math.inf)[1][0]) if not src.live else src.clock()
            # Live stamps are src.clock(); a file played in real time has media-time stamps, so shift.
            stamp_offset = 0.0 if src.live else first - src.clock()
            end_t = first + o.window_s
            next_wall = time.monotonic() + o.window_s
            while (o.max_decisions is None or decision < o.max_decisions) and not self._stop.is_set():
                if o.duration_s is not None and time.monotonic() - started >= o.duration_s:
                    return
                if offline:
                    if not capture.wait_for(end_t, o.wait_timeout_s):
                        self._raise_if_failed(capture, f"no frame for t={end_t:.3f} s")
                        if decision > 0:
                            return
                        end_t = capture.latest_time() or end_t  # a file shorter than one window: one decision
                else:
                    self._sleep_until(next_wall, capture, deadline=started + o.duration_s if o.duration_s else None)
                    next_wall = max(next_wall + stride_s, time.monotonic())
                    if capture.error is not None:
                        raise capture.error
                    end_t = src.clock() + stamp_offset  # the stamps' clock: a stale ring gives an empty window
                frames, stamps = capture.select(o.window_s, end_t)
                if len(stamps) == 0:  # a live source lost its frames: report, keep going
                    if offline or capture.finished:  # a file (offline or real time) has ended
                        return
                    continue
                yield self._decide(decision, capture, frames, stamps, end_t)
                decision += 1
                end_t = first + o.window_s + decision * stride_s  # no float drift over long files

    def _decide(self, decision: int, capture: CaptureThread, frames: list, stamps: Any, end_t: float) -> StreamResult:
        """One decision: choose n, run exactly that (the capture of a file held), feed the latency back."""
        choice = self.policy.decide(time.monotonic())
        hold = capture.paused() if not self.source.live else contextlib.nullcontext()
        with hold:
            pred = self.session.predict(frames, n=choice.n, topk=self.options.topk, timestamps=stamps)
        self.policy.observe(pred.frames, pred.subnet, pred.latency_ms, time.monotonic(), cpu_ms=pred.cpu_ms)
        budget = self.policy.budget_ms
        within = None if budget is None else pred.latency_ms <= budget
        return StreamResult(decision, pred, (end_t - self.options.window_s, end_t), len(stamps), choice.n,
                            choice.reason, budget, within, self.drain_events(), choice.reasons, choice.predicted_ms,
                            choice.feasible, choice.budget)

    def _raise_if_failed(self, capture: CaptureThread, what: str) -> None:
        """After a wait that found no frame: the capture's error, a timeout, or (file ended) nothing."""
        if capture.error is not None:
            raise capture.error
        if not capture.finished:
            raise SourceError(f"{self.source.name}: {what} within {self.options.wait_timeout_s:g} s")

    def _sleep_until(self, t: float, capture: CaptureThread, deadline: float | None) -> None:
        """Sleep until wall time ``t`` (or ``deadline``), waking early if the capture or the stream stops."""
        end = t if deadline is None else min(t, deadline)
        while (remaining := end - time.monotonic()) > 0 and capture.running and not self._stop.is_set():
            time.sleep(min(remaining, 0.05))
