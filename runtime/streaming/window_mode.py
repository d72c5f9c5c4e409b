"""Window mode: every stride, n frames sampled from the last window run through a clip graph.

Files read offline decide at media times ``window_s``, ``window_s + stride``, ... until the file ends
(a file shorter than one window gets one decision on what it has); live sources (and files played in
real time) decide on wall-clock strides and keep going through a lost camera, reporting empty
windows as events. What a decision times is exactly the run it scheduled (``Prediction.latency_ms``):
the n sampled frames are gathered from the ring (never the whole window), and a file's capture is
held while the run executes.
"""

from __future__ import annotations

import math
import time
from typing import Any

from ..control.policy import FrameCountPolicy
from ..results import StreamResult
from .loop import END, End, Run
from .options import StreamOptions
from .session_api import Session


class WindowMode:
    """The window mode's turn of the loop (``loop.Mode``): one ``StreamResult`` per decision."""

    def __init__(self, session: Session, policy: FrameCountPolicy, options: StreamOptions) -> None:
        self.session, self.policy, self.options = session, policy, options
        self.stride_s = options.stride_ms / 1000.0
        self.decision = 0
        self.newest = -math.inf  # stamp of the newest frame decided on so far
        self.first = self.end_t = self.next_wall = self.stamp_offset = 0.0

    def begin(self, run: Run) -> None:
        """The decision clock: window ends at ``first + window_s + k x stride``."""
        src = run.source
        self.first = float(run.capture.select(float("inf"))[1][0]) if not src.live else src.clock()
        # Live stamps are src.clock(); a file played in real time has media-time stamps, so shift.
        self.stamp_offset = 0.0 if src.live else self.first - src.clock()
        self.end_t = self.first + self.options.window_s
        self.next_wall = time.monotonic() + self.options.window_s

    def tick(self, run: Run) -> StreamResult | End | None:
        capture = run.capture
        if run.offline:
            if not run.wait_frame(self.end_t, f"no frame for t={self.end_t:.3f} s"):
                if self.decision > 0:
                    return END
                self.end_t = capture.latest_time() or self.end_t  # a file shorter than one window: one decision
        else:
            run.sleep_until(self.next_wall)
            self.next_wall = max(self.next_wall + self.stride_s, time.monotonic())
            run.raise_error()
            self.end_t = run.source.clock() + self.stamp_offset  # the stamps' clock: a stale ring gives an empty window
        frames, stamps = capture.select(self.options.window_s, self.end_t)
        if len(stamps) == 0:  # a live source lost its frames: report, keep going
            return END if run.offline or capture.finished else None  # a file (offline or real time) has ended
        if not run.offline and capture.finished and stamps[-1] <= self.newest:  # a real-time file ended: its last
            return END  # frame was decided on (its capture no longer paces the loop: nothing would wait)
        self.newest = float(stamps[-1])
        result = self._decide(run, frames, stamps)
        self.decision += 1
        self.end_t = self.first + self.options.window_s + self.decision * self.stride_s  # no float drift
        return result

    def _decide(self, run: Run, frames: list, stamps: Any) -> StreamResult:
        """One decision: choose n, run exactly that (the capture of a file held), feed the latency back."""
        choice = self.policy.decide(time.monotonic())
        with run.held():
            pred = self.session.predict(frames, n=choice.n, topk=self.options.topk, timestamps=stamps)
        self.policy.observe(pred.frames, pred.subnet, pred.latency_ms, time.monotonic(), cpu_ms=pred.cpu_ms)
        budget = self.policy.budget_ms
        within = None if budget is None else pred.latency_ms <= budget
        end_t, newest = self.end_t, float(stamps[-1])  # the decision's frame: the window's newest
        return StreamResult(self.decision, pred, (end_t - self.options.window_s, end_t), len(stamps), choice.n,
                            choice.reason, budget, within, run.events(), choice.reasons, choice.predicted_ms,
                            choice.feasible, choice.budget, stamp=newest, origin=run.capture.origin,
                            frame=run.capture.raw_frame(newest))
