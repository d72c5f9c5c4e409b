"""OnlineStream: a stream in online mode, one frame at a time through a causal bundle's step graphs.

``FFNRuntime.stream(source, online=True, cpu_share=...)`` builds one (``ffn-run --online``). The
policy (scheduler, budgets, caps: the same ``FrameCountPolicy`` a window stream uses) picks n among the
sub-networks' frame counts once per *window* (n steps, ``window_s`` of video); n fixes the stride,
``window_s / n`` of source time, and each sampled frame runs once through sub-network n's step graph.
Every step gives a result; its label is the mean of the last n per-frame logits (``OnlineLabels``).

State, all of it in the stream: the running sub-network's shift buffers and its logit ring. A switch
to another sub-network starts it from zero buffers; until n frames of it have run the label is the
previous warm label marked stale (``warm=False``), or none at the very start.

The budget is compute, not latency: every sub-network's step costs about the same (shared convolutions),
so what n changes is how many steps run per second. The scheduler therefore sees one run per window,
the n steps of it (wall and CPU ms summed), and its latency budget is the step compute allowed per
window: ``cpu_share x window``. A share at most 1 also keeps every step, on average, within its stride.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..sampling import nearest_subnet
from . import validate as V
from .budgets import KEEP, BatteryPolicy, Budgets, ThermalPolicy, _Keep
from .errors import ConfigError
from .inputs import check_stream_options
from .online import StepGraphs
from .online_labels import OnlineLabels
from .policy import Choice, FrameCountPolicy, SchedulerLike
from .sources import CaptureThread, FrameSource, Opener, SourceEvent
from .stream import Stream, StreamOptions

if TYPE_CHECKING:
    from .ffn_runtime import FFNRuntime, Prediction

MAX_CPU_SHARE = 1.0  # more than all of one stream's wall time cannot be spent on its steps


def check_cpu_share(value: Any) -> float:
    """A compute share in (0, MAX_CPU_SHARE] (ConfigError otherwise)."""
    try:
        return V.check_float("cpu share", value, 0.0, MAX_CPU_SHARE, lo_open=True)
    except ValueError as e:
        raise ConfigError(str(e)) from None


@dataclasses.dataclass(frozen=True)
class OnlineResult:
    """One step of an online stream: what ran, and the label in force after it."""

    step: int  # 0, 1, 2, ...
    prediction: Prediction | None  # the label in force: fresh if ``warm``, else the last warm one (or None)
    warm: bool  # the label is the mean of the last n logits of the sub-network that ran this step
    subnet: int  # the sub-network that ran
    frames: int  # its n: logits per label, steps per window
    stride_ms: float  # source time between two steps: window / n
    latency_ms: float  # wall time of this step's run (one frame)
    cpu_ms: float  # CPU time of that run
    warm_steps: int  # frames of this sub-network in its logit ring (n once warm)
    switched: bool  # this step is the first of a newly started sub-network (buffers from zeros)
    stamp: float  # of the frame that ran (seconds)
    capture_to_label_ms: float | None  # frame captured -> this result; None for a file read offline
    reason: str
    reasons: tuple[str, ...]
    budget_ms: float | None  # step compute allowed per window (cpu_share x window), None without
    cpu_share: float | None
    within_budget: bool | None  # this step's rate fits: latency_ms x n <= budget_ms
    predicted_ms: float | None  # the scheduler's prediction for the window (n steps)
    feasible: bool | None
    budget: dict[str, Any]
    events: tuple[str, ...]

    @property
    def window(self) -> tuple[float, float]:
        """(first, last) stamp of the frames behind the label in force (the step's frame alone without one)."""
        return (self.prediction.timestamps[0] if self.prediction else self.stamp), self.stamp

    def to_json(self) -> dict[str, Any]:
        def r3(v: float | None) -> float | None:
            return None if v is None else round(v, 3)

        return {
            "step": self.step,
            "prediction": None if self.prediction is None else self.prediction.to_json(),
            **{k: getattr(self, k) for k in ("warm", "subnet", "frames", "warm_steps", "switched", "reason",
                                             "budget_ms", "cpu_share", "within_budget", "feasible", "budget")},
            "label": None if self.prediction is None else self.prediction.label,
            "stride_ms": r3(self.stride_ms), "latency_ms": r3(self.latency_ms), "cpu_ms": r3(self.cpu_ms),
            "stamp": round(self.stamp, 4), "capture_to_label_ms": r3(self.capture_to_label_ms),
            "reasons": list(self.reasons), "predicted_ms": r3(self.predicted_ms), "events": list(self.events),
        }


@dataclasses.dataclass
class _Window:
    """The n steps one decision covers: which sub-network, and what they cost so far."""

    choice: Choice
    frames: int
    subnet: int
    t0: float  # stamp the first step aims at
    steps: int = 0
    wall_ms: float = 0.0
    cpu_ms: float = 0.0


class OnlineStream(Stream):
    """A source classified online on ``session``'s step graphs; see the module docstring. Iterable once."""

    def __init__(self, session: FFNRuntime, source: str | FrameSource, policy: FrameCountPolicy,
                 options: StreamOptions, graphs: StepGraphs, opener: Opener | None = None,
                 on_event: Callable[[SourceEvent], None] | None = None) -> None:
        super().__init__(session, source, policy, options, opener=opener, on_event=on_event)
        self.graphs = graphs
        self.subnet_counts = session.manifest.subnet_frame_counts

    @property
    def window_ms(self) -> float:
        return self.options.window_s * 1000.0

    @property
    def cpu_share(self) -> float | None:
        """The compute share in force (budget per window / window), None without a budget."""
        b = self.policy.budget_ms
        return None if b is None else b / self.window_ms

    def set_budget(self, cpu_share: float | None | _Keep = KEEP, *,  # type: ignore[override]
                   power_w: float | None | _Keep = KEEP,
                   battery_policy: BatteryPolicy | str | None | _Keep = KEEP,
                   thermal_policy: ThermalPolicy | str | None | _Keep = KEEP,
                   budget_ms: float | None | _Keep = KEEP) -> None:
        """Change budgets from the next window on (thread-safe): the compute share, caps; ``None`` turns one off.

        ``budget_ms`` (what ``Stream.set_budget`` takes) is accepted too: here it is the step compute
        allowed per window, as ``Budgets.budget_ms`` is for online streams; give it or ``cpu_share``."""
        if budget_ms is not KEEP and cpu_share is not KEEP:
            raise ConfigError("give cpu_share or budget_ms (the step compute per window), not both")
        if budget_ms is not KEEP and budget_ms is not None:
            try:
                budget_ms = V.check_float("budget_ms", budget_ms, 0.0, V.MAX_STRIDE_MS, lo_open=True)
            except ValueError as e:
                raise ConfigError(str(e)) from None
        if budget_ms is KEEP:
            budget_ms = cpu_share
        if cpu_share is not KEEP and cpu_share is not None:
            budget_ms = check_cpu_share(cpu_share) * self.window_ms
        self.policy.set_budget(budget_ms, power_w=power_w, battery_policy=battery_policy,
                               thermal_policy=thermal_policy)

    # -- the step loop -----------------------------------------------------------------------------
    def _decisions(self) -> Iterator[OnlineResult]:  # type: ignore[override]
        o, src = self.options, self.source
        cap = o.capacity or int(math.ceil(o.window_s * 60)) + 16
        capture = CaptureThread(src, self.session.preprocessor, capacity=cap, realtime=o.realtime,
                                on_event=self._note, backoff_s=o.backoff_s, max_backoff_s=max(8.0, o.backoff_s))
        started = time.monotonic()
        labels = OnlineLabels()
        last: Prediction | None = None
        window: _Window | None = None
        state: dict = {}
        step = 0
        with capture:
            if not capture.wait_for(-math.inf, o.wait_timeout_s):
                self._raise_if_failed(capture, "no frame")
                return
            oldest = capture.first_at(-math.inf)
            t = oldest[1] if oldest is not None else capture.latest_time() or 0.0
            while (o.max_decisions is None or step < o.max_decisions) and not self._stop.is_set():
                if o.duration_s is not None and time.monotonic() - started >= o.duration_s:
                    return
                if window is None or window.steps == window.frames:
                    window = self._next_window(window, t)
                    if labels.subnet != window.subnet or labels.frames != window.frames:
                        labels.start(window.subnet, window.frames)
                        state = self.graphs.zero_state(window.subnet)
                stride_s = o.window_s / window.frames
                t = window.t0 + window.steps * stride_s
                if not capture.wait_for(t, o.wait_timeout_s):
                    self._raise_if_failed(capture, f"no frame for t={t:.3f} s")
                    return  # the file has ended
                got = capture.first_at(t)
                if got is None:  # a live ring lost its frames in between: wait for the next one
                    continue
                frame, stamp = got
                hold = capture.paused() if not src.live else contextlib.nullcontext()
                with hold:
                    run = self.graphs.run(frame, window.subnet, state)
                state = run.state
                switched = labels.warm_steps == 0
                label = labels.add(run.logits, stamp)
                if label is not None:
                    last = self.session.label_prediction(label.logits, label.frames, label.subnet, run.latency_ms,
                                                         label.stamps, self.options.topk, cpu_ms=run.cpu_ms)
                captured = capture.clock_of(stamp)
                age = None if captured is None else (src.clock() - captured) * 1000.0
                window.steps += 1
                window.wall_ms += run.latency_ms
                window.cpu_ms += run.cpu_ms
                yield self._result(step, window, run.latency_ms, run.cpu_ms, last, label is not None, labels.warm_steps,
                                   switched, stamp, age)
                step += 1
                if src.live:  # fallen more than a stride behind the camera: skip ahead instead of lagging
                    newest = capture.latest_time()
                    if newest is not None and newest - (window.t0 + window.steps * stride_s) > stride_s:
                        window.t0 = newest - window.steps * stride_s

    def _next_window(self, done: _Window | None, t: float) -> _Window:
        """Feed the finished window's n steps back to the policy as one run; decide the next n."""
        now = time.monotonic()
        if done is not None:
            self.policy.observe(done.frames, done.subnet, done.wall_ms, now, cpu_ms=done.cpu_ms)
            t = done.t0 + done.steps * self.options.window_s / done.frames
        choice = self.policy.decide(now)
        k = nearest_subnet(choice.n, self.subnet_counts)
        return _Window(choice, self.subnet_counts[k], k, t)

    def _result(self, step: int, w: _Window, latency_ms: float, cpu_ms: float, pred: Prediction | None, warm: bool,
                warm_steps: int, switched: bool, stamp: float, age: float | None) -> OnlineResult:
        budget = self.policy.budget_ms
        c = w.choice
        return OnlineResult(step, pred, warm, w.subnet, w.frames, self.window_ms / w.frames, latency_ms, cpu_ms,
                            warm_steps, switched, stamp, age, c.reason, c.reasons, budget,
                            None if budget is None else budget / self.window_ms,
                            None if budget is None else latency_ms * w.frames <= budget, c.predicted_ms, c.feasible,
                            c.budget, self.drain_events())


def online_stream(session: FFNRuntime, source: str | FrameSource, options: StreamOptions, *,
                  frames: int | None, cpu_share: float | None, budgets: Budgets | None,
                  scheduler: SchedulerLike | None, signals: Callable[[float], Any] | None,
                  opener: Opener | None, on_event: Callable[[SourceEvent], None] | None) -> OnlineStream:
    """The OnlineStream ``FFNRuntime.stream(online=True)`` returns (BundleError without step graphs)."""
    graphs = session.step_graphs()
    counts = session.manifest.subnet_frame_counts
    served = tuple(counts[k] for k in graphs.subnets)
    if cpu_share is not None:
        budgets = (budgets or Budgets()).replace(budget_ms=check_cpu_share(cpu_share) * options.window_s * 1000.0)
    if frames is not None:
        check_stream_options(frames=frames)
        frames = served[nearest_subnet(frames, served)]
    policy = FrameCountPolicy(counts, frames, budgets, scheduler, signals, candidates=served)
    return OnlineStream(session, source, policy, options, graphs, opener=opener, on_event=on_event)
