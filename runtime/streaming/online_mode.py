"""Online mode: one frame at a time through a causal bundle's step graphs, a label every step.

The policy (scheduler, budgets, caps: the same ``FrameCountPolicy`` a window stream uses) picks n among
the sub-networks' frame counts once per *window* (n steps, ``window_s`` of video); n fixes the stride,
``window_s / n`` of source time, and each sampled frame runs once through sub-network n's step graph.
Every step gives a result; its label is the mean of the last n per-frame logits (``OnlineLabels``).

State, all of it here: the running sub-network's shift buffers (opaque: passed from one step to the
next, started by ``zero_state``; on a GPU backend they never leave the device) and its logit ring. A switch to
another sub-network starts it from zero buffers; until n frames of it have run the label is the
previous warm label marked stale (``warm=False``), or none at the very start. With ``reset_on_cut``,
a frame that starts a new scene (``SceneCut``) restarts the running sub-network the same way before
it runs: zero buffers, an empty logit ring (``OnlineResult.cut``). The scheduler sees one run per
window, the n steps of it (wall and CPU ms summed). A live source that has run more than a stride
ahead of the steps is caught up with (the steps skip ahead instead of lagging).
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np

from ...core.sampling import nearest_subnet
from ..backends.steps import State, StepGraphs, StepRun
from ..control.policy import Choice, FrameCountPolicy
from ..media.scene_cut import SceneCut
from ..results import OnlineResult, Prediction
from .loop import END, End, Run
from .online_labels import OnlineLabels
from .options import OnlineOptions
from .session_api import Session


@dataclasses.dataclass
class Window:
    """The n steps one decision covers: which sub-network, and what they cost so far."""

    choice: Choice
    frames: int
    subnet: int
    t0: float  # stamp the first step aims at
    steps: int = 0
    wall_ms: float = 0.0
    cpu_ms: float = 0.0

    def next_t(self, window_s: float) -> float:
        """The stamp the window's next step aims at (steps are ``window_s / frames`` apart from ``t0``)."""
        return self.t0 + self.steps * window_s / self.frames


class OnlineMode:
    """The online mode's turn of the loop (``loop.Mode``): one ``OnlineResult`` per step."""

    def __init__(self, session: Session, policy: FrameCountPolicy, options: OnlineOptions, graphs: StepGraphs) -> None:
        self.session, self.policy, self.options, self.graphs = session, policy, options, graphs
        self.subnet_counts = session.manifest.subnet_frame_counts
        self.labels = OnlineLabels()
        self.last: Prediction | None = None
        self.window: Window | None = None
        self.state: State = None  # opaque: the state the last step returned, or zero_state after a switch
        self.step = 0
        self.t = 0.0  # the stamp the next step aims at
        self._stepped = False  # a step ran since the last catch-up check
        spec = session.manifest.input
        self.scene = None if options.reset_on_cut is None else SceneCut(float(options.reset_on_cut), mean=spec.mean,
                                                                         std=spec.std)

    def begin(self, run: Run) -> None:
        oldest = run.capture.first_at(-math.inf)
        self.t = oldest[1] if oldest is not None else run.capture.latest_time() or 0.0

    def tick(self, run: Run) -> OnlineResult | End | None:
        if self._stepped and run.live:
            self._catch_up(run)
        self._stepped = False
        if self.window is None or self.window.steps == self.window.frames:
            self.window = self._next_window(self.window)
        w = self.window
        self.t = w.next_t(self.options.window_s)
        if not run.wait_frame(self.t, f"no frame for t={self.t:.3f} s"):
            return END  # the file has ended
        got = run.capture.first_at(self.t)
        if got is None:  # a live ring lost its frames in between: wait for the next one
            return None
        frame, stamp = got
        switched = self.labels.warm_steps == 0
        cut = self._reset_on_cut(frame, w)
        with run.held():
            step = self.graphs.run(frame, w.subnet, self.state)
        result = self._label(run, w, step, stamp, switched, cut)
        self.step += 1
        self._stepped = True
        return result

    def _next_window(self, done: Window | None) -> Window:
        """Feed the finished window's n steps back to the policy as one run; decide the next n."""
        now = time.monotonic()
        t = self.t
        if done is not None:
            self.policy.observe(done.frames, done.subnet, done.wall_ms, now, cpu_ms=done.cpu_ms)
            t = done.next_t(self.options.window_s)
        choice = self.policy.decide(now)
        k = nearest_subnet(choice.n, self.subnet_counts)
        window = Window(choice, self.subnet_counts[k], k, t)
        if self.labels.subnet != window.subnet or self.labels.frames != window.frames:
            self.labels.start(window.subnet, window.frames)
            self.state = self.graphs.zero_state(window.subnet)
        return window

    def _reset_on_cut(self, frame: np.ndarray, w: Window) -> bool:
        """True when ``frame`` starts a new scene: the running sub-network then restarts from zero buffers
        and an empty logit ring, so nothing of the previous scene reaches the new one's labels."""
        if self.scene is None or not self.scene.is_cut(frame):
            return False
        self.state = self.graphs.zero_state(w.subnet)
        self.labels.start(w.subnet, w.frames)
        return True

    def _catch_up(self, run: Run) -> None:
        """Live: fallen more than a stride behind the camera, skip ahead instead of lagging."""
        w = self.window
        newest = run.capture.latest_time()
        stride_s = self.options.window_s / w.frames
        if newest is not None and newest - (w.t0 + w.steps * stride_s) > stride_s:
            w.t0 = newest - w.steps * stride_s

    def _label(self, run: Run, w: Window, step: StepRun, stamp: float, switched: bool, cut: bool) -> OnlineResult:
        """The step's logits into the ring; the result with the label in force."""
        self.state = step.state
        label = self.labels.add(step.logits, stamp)
        if label is not None:
            self.last = self.session.label_prediction(label.logits, label.frames, label.subnet, step.latency_ms,
                                                      label.stamps, self.options.topk, cpu_ms=step.cpu_ms)
        captured = run.capture.clock_of(stamp)
        age = None if captured is None else (run.source.clock() - captured) * 1000.0
        w.steps += 1
        w.wall_ms += step.latency_ms
        w.cpu_ms += step.cpu_ms
        budget = self.policy.budget_ms
        window_ms, c = self.options.window_ms, w.choice
        return OnlineResult(self.step, self.last, label is not None, w.subnet, w.frames, window_ms / w.frames,
                            step.latency_ms, step.cpu_ms, self.labels.warm_steps, switched, stamp, age, c.reason,
                            c.reasons, budget, None if budget is None else budget / window_ms,
                            None if budget is None else step.latency_ms * w.frames <= budget, c.predicted_ms,
                            c.feasible, c.budget, run.events(), cut, origin=run.capture.origin,
                            frame=run.capture.raw_frame(stamp))
