"""FFNRuntime: one object that opens a bundle and classifies clips or live video (no torch).

Feels like an ``onnxruntime.InferenceSession``: one object, explicit backend and device, no hidden
state shared between objects::

    with FFNRuntime.open("model.ffn", backend="auto") as rt:
        print(rt.backend_name)                       # which backend "auto" picked
        p = rt.predict(frames)                       # one clip -> Prediction
        for r in rt.stream("cam0", budget_ms=30):    # one StreamResult per decision
            print(r.prediction.label, r.prediction.frames, r.reason)

Every sub-network is loaded when the runtime opens, so changing the frame count between two
decisions costs no load. ``predict`` is thread-safe (one lock around the backend: sessions and
engines run one at a time, which is also what lets them share one activation arena).

How many frames n a decision uses is chosen in ONE place, ``FrameCountPolicy.choose``: a fixed
count, the budget scheduler (``ffn_edge.runtime.scheduler.Scheduler``) for a latency budget, or any
scheduler object with ``decide``/``observe`` passed in. n is then served by the nearest rule (paper §5.3,
tie -> higher): the exported graph for n if there is one, else the nearest sub-network's graph,
with n frames if that graph takes any frame count (``dynamic_frames``), else with its own count.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..sampling import nearest_subnet, segment_indices
from .backends import Backend, open_backend
from .errors import ConfigError, SourceError
from .manifest import GraphEntry, Manifest, load_manifest
from .preprocess import Preprocessor
from .scheduler import KEEP, BatteryPolicy, Scheduler, ThermalPolicy, _Keep
from .signals import Signals, default_providers, read_signals
from .sources import CaptureThread, FrameSource, Opener, SourceEvent

log = logging.getLogger("ffn_edge.runtime")

BUDGET_NAMES = ("budget_ms", "power_w", "battery_policy", "thermal_policy")  # set_budget's budgets
WAIT_TIMEOUT_S = 10.0  # longest wait for a frame before a stream decision is skipped / ends


@dataclasses.dataclass(frozen=True)
class Prediction:
    """The answer for one clip."""

    label: str
    index: int
    score: float  # softmax probability of ``label``
    topk: list[tuple[str, float]]  # (label, probability), best first
    frames: int  # frames fed to the network
    subnet: int  # sub-network index that ran (into manifest.subnet_frame_counts)
    latency_ms: float  # sampling + inference, the part a frame-count decision changes
    timestamps: tuple[float, ...]  # of the frames used (seconds; frame indices for plain predict)

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "index": self.index,
            "score": round(self.score, 6),
            "topk": [[lbl, round(s, 6)] for lbl, s in self.topk],
            "frames": self.frames,
            "subnet": self.subnet,
            "latency_ms": round(self.latency_ms, 3),
            "timestamps": [round(t, 4) for t in self.timestamps],
        }


@dataclasses.dataclass(frozen=True)
class StreamResult:
    """One decision of ``stream``: the prediction plus why that frame count and the budget state."""

    decision: int  # 0, 1, 2, ...
    prediction: Prediction
    window: tuple[float, float]  # (start, end) seconds of the video the decision looked at
    frames_available: int  # frames in the window (the prediction sampled ``frames`` of them)
    requested_frames: int  # n the policy asked for (served by the nearest sub-network)
    reason: str  # "fixed", "max", or the scheduler's reasons joined by "," ("warmup", "budget", ...)
    budget_ms: float | None
    within_budget: bool | None  # latency <= budget (None without a budget)
    events: tuple[str, ...]  # source events since the previous decision (lost, reopened, ...)
    reasons: tuple[str, ...] = ()  # the same reasons as a list (scheduler.REASONS, "fixed" or "max")
    predicted_ms: float | None = None  # the scheduler's high-percentile latency prediction for n
    feasible: bool | None = None  # False: even the smallest count was predicted over the budget
    budget: dict[str, Any] = dataclasses.field(default_factory=dict)  # budgets in force + sensor readings

    def to_json(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            **self.prediction.to_json(),
            "window": [round(self.window[0], 4), round(self.window[1], 4)],
            "frames_available": self.frames_available,
            "requested_frames": self.requested_frames,
            "reason": self.reason,
            "budget_ms": self.budget_ms,
            "within_budget": self.within_budget,
            "events": list(self.events),
            "reasons": list(self.reasons),
            "predicted_ms": None if self.predicted_ms is None else round(self.predicted_ms, 3),
            "feasible": self.feasible,
            "budget": self.budget,
        }


@dataclasses.dataclass(frozen=True)
class Choice:
    """One frame-count decision of ``FrameCountPolicy``: n and why, with the budget state it saw."""

    n: int
    reasons: tuple[str, ...]
    predicted_ms: float | None = None
    feasible: bool | None = None
    budget: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def reason(self) -> str:
        return ",".join(self.reasons)


class SchedulerLike(Protocol):
    """What stream() needs from a frame-count scheduler (ffn_edge.runtime.scheduler.Scheduler)."""

    def decide(self, now_s: float, signals: Any) -> Any: ...

    def observe(self, n: int, subnet: int, latency_ms: float, now_s: float) -> None: ...


class FrameCountPolicy:
    """THE place where a stream decision's frame count is chosen (``decide``; ``choose`` is its short form).

    * ``frames`` fixed: always that count (reason "fixed").
    * ``scheduler``: any object with ``decide(now_s, signals) -> decision`` (with ``.n`` and
      ``.reasons``) and ``observe(n, subnet, latency_ms, now_s)``.
    * any of ``budget_ms``, ``battery_policy`` (a ``BatteryPolicy`` or ``"PERCENT:FRAMES"``),
      ``power_w``, ``thermal_policy``: ``ffn_edge.runtime.scheduler.Scheduler`` with those (warm-up,
      online latency model, caps, hysteresis; reasons "warmup", "budget", "battery", ...).
    * nothing: the largest count (reason "max").

    ``signals(now_s) -> Signals`` feeds a scheduler its sensor readings; by default the live sensors
    of this machine (``signals.default_providers``: battery, INA3221 rails, thermal zones, each
    optional), found once. ``candidates``: the counts the scheduler may pick (default: every count
    between the smallest and the largest sub-network's); the runtime passes the exported counts when
    its graphs are static. ``set_budget`` may be called from another thread while a stream runs.
    """

    def __init__(self, subnet_counts: Sequence[int], frames: int | None = None, budget_ms: float | None = None,
                 scheduler: SchedulerLike | None = None, signals: Callable[[float], Any] | None = None,
                 candidates: Sequence[int] | None = None, *, battery_policy: BatteryPolicy | str | None = None,
                 power_w: float | None = None, thermal_policy: ThermalPolicy | None = None) -> None:
        if frames is not None and frames < 1:
            raise ConfigError(f"frames must be >= 1, got {frames}")
        self.subnet_counts, self.candidates = tuple(subnet_counts), candidates
        self.largest = max(candidates or subnet_counts)
        self.frames = frames
        self.budget_ms: float | None = None
        self.power_w: float | None = None
        self.battery_policy: BatteryPolicy | None = None
        self.thermal_policy: ThermalPolicy | None = None
        self.scheduler = scheduler
        self._signals = signals
        self._lock = threading.Lock()  # set_budget (any thread) vs decide/observe (the stream's)
        given = {"power_w": power_w, "battery_policy": battery_policy, "thermal_policy": thermal_policy}
        # None here means "not given": a scheduler passed in keeps the budgets it was built with.
        self.set_budget(KEEP if budget_ms is None else budget_ms,
                        **{name: value for name, value in given.items() if value is not None})

    def set_budget(self, budget_ms: float | None | _Keep = KEEP, *, power_w: float | None | _Keep = KEEP,
                   battery_policy: BatteryPolicy | str | None | _Keep = KEEP,
                   thermal_policy: ThermalPolicy | None | _Keep = KEEP) -> None:
        """Change budgets while a stream runs (from its next decision); ``None`` turns one off.

        An omitted budget stays as it is. The first budget given to a stream without one starts the
        Scheduler (with a warm-up), unless the frame count is fixed.
        """
        if budget_ms is not KEEP and budget_ms is not None and not budget_ms > 0:
            raise ConfigError(f"budget must be > 0 ms, got {budget_ms}")
        if isinstance(battery_policy, str):
            battery_policy = BatteryPolicy.parse(battery_policy)
        values = (budget_ms, power_w, battery_policy, thermal_policy)
        changes = {name: value for name, value in zip(BUDGET_NAMES, values, strict=True) if value is not KEEP}
        with self._lock:
            if self.scheduler is None and self.frames is None and any(v is not None for v in changes.values()):
                self.scheduler = Scheduler(self.subnet_counts, None, candidates=self.candidates)
            if self.scheduler is not None and hasattr(self.scheduler, "set_budget"):
                self.scheduler.set_budget(**changes)  # raises on a bad value before the policy keeps any
            for name in BUDGET_NAMES:  # what is in force: the scheduler's own where it has one
                setattr(self, name, getattr(self.scheduler, name, changes.get(name, getattr(self, name))))

    def _read_signals(self, now_s: float) -> Signals:
        if self._signals is None:
            providers = default_providers()  # sysfs paths found once per stream, not per decision
            self._signals = lambda t: read_signals(t, providers)
        return self._signals(now_s)

    def _budget_state(self, signals: Signals | None) -> dict[str, Any]:
        """The budgets in force and the sensor readings the decision saw (for results and --json)."""
        state: dict[str, Any] = {"latency_ms": self.budget_ms, "power_w": self.power_w,
                                 "battery_policy": None, "thermal_policy": None}
        if self.battery_policy is not None:
            state["battery_policy"] = f"{self.battery_policy.threshold_percent:g}:{self.battery_policy.cap_frames}"
        if self.thermal_policy is not None:
            state["thermal_policy"] = f"{self.thermal_policy.threshold_c:g}:{self.thermal_policy.cap_frames}"
        if signals is not None:
            state["signals"] = dataclasses.asdict(signals)
        return state

    def decide(self, now_s: float) -> Choice:
        """The frame count n for the next decision, its reasons and the budget state."""
        if self.frames is not None:
            return Choice(self.frames, ("fixed",))
        with self._lock:
            if self.scheduler is None:
                return Choice(self.largest, ("max",), budget=self._budget_state(None))
            signals = self._read_signals(now_s)
            d = self.scheduler.decide(now_s, signals)
            return Choice(int(d.n), tuple(str(r) for r in d.reasons), getattr(d, "predicted_ms", None),
                          getattr(d, "feasible", None), self._budget_state(signals))

    def choose(self, now_s: float) -> tuple[int, str]:
        """(frame count n, reasons joined by ",") for the next decision."""
        c = self.decide(now_s)
        return c.n, c.reason

    def observe(self, n: int, subnet: int, latency_ms: float, now_s: float) -> None:
        """Feed a measured latency back to the scheduler (if one decides)."""
        with self._lock:
            if self.scheduler is not None:
                self.scheduler.observe(n, subnet, max(latency_ms, 1e-6), now_s)


class FFNRuntime:
    """A verified bundle with every sub-network ready on one backend.

    ``bundle``: the bundle directory. ``backend``: "auto" | "onnxruntime" | "ort-cpu" | "ort-cuda" |
    "ort-tensorrt" | "tensorrt" (``backend_name`` says what "auto" picked). ``device``: GPU index for
    GPU backends. ``threads``: ORT intra-op threads (None: ORT's default). ``share_weights``: one
    copy of the shared weights for all sessions (see backends). ``verify``: check every file's
    sha256 against the manifest (paths and format version are always checked). ``warmup``: run
    each graph once at open, so the first decision on any sub-network is not a cold run.
    """

    def __init__(self, bundle: str | os.PathLike[str], backend: str = "auto", device: int = 0,
                 threads: int | None = None, share_weights: bool = True, verify: bool = True,
                 warmup: bool = True) -> None:
        self.bundle = Path(bundle)
        self.manifest: Manifest = load_manifest(self.bundle, verify=verify)
        self.preprocessor = Preprocessor(self.manifest.input)
        self._backend: Backend | None = open_backend(self.bundle, self.manifest, backend, device, threads,
                                                     share_weights)
        self.backend_name: str = self._backend.name
        self._graphs = {g.frames: g for g in self.manifest.graphs if g.frames in self._backend.frame_counts}
        self._lock = threading.Lock()
        self._policy: FrameCountPolicy | None = None  # the latest stream's, for set_budget
        if warmup:
            self._warmup()

    def _warmup(self) -> None:
        """Run every graph once: first runs allocate and plan, which must not land on a decision."""
        h, w = self.manifest.input.size
        for g in self._graphs.values():
            self._backend.run(g.frames, np.zeros((1, g.frames, 3, h, w), dtype=np.float32))

    @classmethod
    def open(cls, bundle: str | os.PathLike[str], backend: str = "auto", device: int = 0,
             threads: int | None = None, **kwargs: Any) -> FFNRuntime:
        """Same as the constructor; reads like ``onnxruntime.InferenceSession(path, providers=...)``."""
        return cls(bundle, backend=backend, device=device, threads=threads, **kwargs)

    # -- lifecycle ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Free every session / engine. Idempotent."""
        with self._lock:
            if self._backend is not None:
                self._backend.close()
                self._backend = None

    def __enter__(self) -> FFNRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- properties --------------------------------------------------------------------------------
    @property
    def frame_counts(self) -> tuple[int, ...]:
        """Frame counts with an exported graph, ascending."""
        return tuple(sorted(self._graphs))

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.manifest.class_names

    # -- routing: n frames -> (graph, frames actually fed, sub-network) -----------------------------
    def route(self, n: int) -> tuple[GraphEntry, int]:
        """The graph that serves n frames and how many frames it gets (nearest rule, tie -> higher)."""
        if n < 1:
            raise ValueError(f"frame count must be >= 1, got {n}")
        if n in self._graphs:
            return self._graphs[n], n
        subnet = nearest_subnet(n, self.manifest.subnet_frame_counts)
        dynamic = [g for g in self._graphs.values() if g.subnet == subnet and g.dynamic_frames]
        if dynamic:
            return dynamic[0], n
        counts = self.frame_counts
        g = self._graphs[counts[nearest_subnet(n, counts)]]
        return g, g.frames

    # -- inference ---------------------------------------------------------------------------------
    def predict(self, frames: Sequence[np.ndarray] | np.ndarray, n: int | None = None, topk: int = 5,
                timestamps: Sequence[float] | None = None) -> Prediction:
        """Classify one clip of any length.

        ``frames``: either raw video frames — a list of BGR uint8 (h, w, 3) images (any size; gray and
        BGRA are converted) or a uint8 array (T, h, w, 3) — or an already-preprocessed float32 array
        (T, 3, H, W) as ``stream``'s ring buffer holds it. ``n``: frames to look at (default: the
        exported count nearest to the clip length). n frames are sampled TSN-style (segment centres);
        raw frames are preprocessed only once sampled. ``timestamps`` (per input frame; default the
        frame indices) are reported for the sampled frames.
        """
        total = len(frames)
        if total == 0:
            raise ValueError("predict() needs at least one frame")
        if n is None:
            n = self.frame_counts[nearest_subnet(total, self.frame_counts)]
        t0 = time.perf_counter()
        graph, fed = self.route(n)
        idx = segment_indices(total, fed, train=False)
        clip = self._clip(frames, idx)
        with self._lock:
            if self._backend is None:
                raise RuntimeError("FFNRuntime is closed")
            logits = self._backend.run(graph.frames, clip)
        latency_ms = (time.perf_counter() - t0) * 1000.0
        stamps = np.asarray(timestamps if timestamps is not None else np.arange(total), dtype=np.float64)
        return self._prediction(logits[0], fed, graph.subnet, latency_ms, tuple(float(s) for s in stamps[idx]), topk)

    def _clip(self, frames: Sequence[np.ndarray] | np.ndarray, idx: np.ndarray) -> np.ndarray:
        """(1, n, 3, H, W) float32 from the sampled frames (preprocessing raw ones)."""
        h, w = self.manifest.input.size
        first = frames[0]
        if isinstance(first, np.ndarray) and first.dtype == np.float32:
            if first.shape != (3, h, w):
                raise ValueError(f"preprocessed frames must be (3, {h}, {w}) float32, got {first.shape}")
            picked = frames[idx] if isinstance(frames, np.ndarray) else np.stack([frames[i] for i in idx])
            return np.ascontiguousarray(picked[None], dtype=np.float32)
        return np.stack([self.preprocessor(frames[i]) for i in idx])[None]

    def _prediction(self, logits: np.ndarray, fed: int, subnet: int, latency_ms: float,
                    stamps: tuple[float, ...], topk: int) -> Prediction:
        z = logits.astype(np.float64) - float(np.max(logits))
        probs = np.exp(z) / np.sum(np.exp(z))
        order = np.argsort(-probs, kind="stable")[: max(1, topk)]
        names = self.manifest.class_names
        best = int(order[0])
        return Prediction(label=names[best], index=best, score=float(probs[best]),
                          topk=[(names[int(i)], float(probs[i])) for i in order], frames=fed, subnet=subnet,
                          latency_ms=latency_ms, timestamps=stamps)

    # -- live video --------------------------------------------------------------------------------
    def stream(
        self,
        source: str | FrameSource,
        budget_ms: float | None = None,
        frames: int | None = None,
        window_s: float = 1.0,
        stride_ms: float = 500.0,
        *,
        scheduler: SchedulerLike | None = None,
        signals: Callable[[float], Any] | None = None,
        battery_policy: BatteryPolicy | str | None = None,
        power_w: float | None = None,
        thermal_policy: ThermalPolicy | None = None,
        topk: int = 5,
        max_decisions: int | None = None,
        duration_s: float | None = None,
        realtime: bool | None = None,
        opener: Opener | None = None,
        on_event: Callable[[SourceEvent], None] | None = None,
        capacity: int | None = None,
        wait_timeout_s: float = WAIT_TIMEOUT_S,
        backoff_s: float = 0.5,
    ) -> Iterator[StreamResult]:
        """Classify a video source continuously: one ``StreamResult`` every ``stride_ms``.

        Each decision looks at the last ``window_s`` seconds (frames preprocessed once, in the
        capture thread) and samples n of them; n comes from ``FrameCountPolicy`` (``frames`` fixed,
        else ``scheduler``, else a Scheduler for ``budget_ms`` / ``battery_policy`` (e.g. ``"20:4"``) /
        ``power_w`` / ``thermal_policy``, else the largest count); ``signals(now_s) -> Signals`` replaces
        the live sensors (battery, power rails, thermal zones); ``set_budget`` changes the budgets
        while the stream runs. Each result carries the decision's reasons, predicted latency,
        feasibility and budget state. Files are read
        offline by default (every decision at media times window_s, window_s + stride, ... until the
        file ends; ``realtime=True`` paces them like a camera); live sources decide on wall-clock
        strides and survive a lost camera (reopened with back-off; events are reported in the next
        result). Ends at the end of a file, after ``max_decisions`` or ``duration_s`` (wall clock), or
        when the generator is closed; the capture thread is always stopped.
        """
        if window_s <= 0 or stride_ms <= 0:
            raise ConfigError(f"window and stride must be > 0 (got {window_s} s, {stride_ms} ms)")
        dynamic = any(g.dynamic_frames for g in self._graphs.values())
        policy = FrameCountPolicy(self.manifest.subnet_frame_counts, frames, budget_ms, scheduler, signals,
                                  candidates=None if dynamic else self.frame_counts, battery_policy=battery_policy,
                                  power_w=power_w, thermal_policy=thermal_policy)
        self._policy = policy
        src = source if isinstance(source, FrameSource) else FrameSource(source, opener=opener)
        pending: collections.deque[str] = collections.deque(maxlen=100)  # filled by the capture thread

        def note(event: SourceEvent) -> None:
            pending.append(f"{event.kind}: {event.message}")
            if event.kind in ("lost", "retry", "reopened", "rejected", "error", "stuck"):
                log.warning("%s", event.message)
            if on_event is not None:
                on_event(event)

        cap = capacity or int(math.ceil(window_s * 60)) + 16  # room for a window at up to 60 fps
        capture = CaptureThread(src, self.preprocessor, capacity=cap, realtime=realtime, on_event=note,
                                backoff_s=backoff_s, max_backoff_s=max(8.0, backoff_s))
        stride_s = stride_ms / 1000.0
        started = time.monotonic()
        decision = 0
        with capture:
            offline = not capture.realtime
            if not capture.wait_for(-math.inf, wait_timeout_s):
                if capture.error is not None:
                    raise capture.error
                if not capture.finished:
                    raise SourceError(f"{src.name}: no frame within {wait_timeout_s:g} s")
                return
            first = float(capture.window(math.inf)[1][0]) if not src.live else src.clock()
            # Live stamps are src.clock(); a file played in real time has media-time stamps, so shift.
            stamp_offset = 0.0 if src.live else first - src.clock()
            end_t = first + window_s
            next_wall = time.monotonic() + window_s
            while max_decisions is None or decision < max_decisions:
                if duration_s is not None and time.monotonic() - started >= duration_s:
                    return
                if offline:
                    if not capture.wait_for(end_t, wait_timeout_s):
                        if capture.error is not None:
                            raise capture.error
                        if not capture.finished:
                            raise SourceError(f"{src.name}: no frame for t={end_t:.3f} s within {wait_timeout_s:g} s")
                        if decision > 0:
                            return
                        end_t = capture.latest_time() or end_t  # a file shorter than one window: one decision
                    clip, stamps = capture.window(window_s, end_t)
                else:
                    self._sleep_until(next_wall, capture, deadline=started + duration_s if duration_s else None)
                    next_wall = max(next_wall + stride_s, time.monotonic())
                    if capture.error is not None:
                        raise capture.error
                    end_t = src.clock() + stamp_offset  # the stamps' clock: a stale ring gives an empty window
                    clip, stamps = capture.window(window_s, end_t)
                if len(stamps) == 0:  # a live source lost its frames: report, keep going
                    if offline or capture.finished:  # a file (offline or real time) has ended
                        return
                    continue
                now = time.monotonic()
                choice = policy.decide(now)
                n = choice.n
                pred = self.predict(clip, n=n, topk=topk, timestamps=stamps)
                policy.observe(pred.frames, pred.subnet, pred.latency_ms, time.monotonic())
                budget = policy.budget_ms
                within = None if budget is None else pred.latency_ms <= budget
                events = tuple(pending.popleft() for _ in range(len(pending)))  # deque ops are thread-safe
                yield StreamResult(decision, pred, (end_t - window_s, end_t), int(len(stamps)), n, choice.reason,
                                   budget, within, events, choice.reasons, choice.predicted_ms, choice.feasible,
                                   choice.budget)
                decision += 1
                end_t = first + window_s + decision * stride_s  # no float drift over long files

    def set_budget(self, budget_ms: float | None | _Keep = KEEP, *, power_w: float | None | _Keep = KEEP,
                   battery_policy: BatteryPolicy | str | None | _Keep = KEEP,
                   thermal_policy: ThermalPolicy | None | _Keep = KEEP) -> None:
        """Change the budgets of the most recently started stream (from its next decision; thread-safe).

        ``None`` turns a budget off; an omitted one stays as it is (see ``FrameCountPolicy.set_budget``).
        """
        if self._policy is None:
            raise ConfigError("set_budget: no stream has been started on this runtime")
        self._policy.set_budget(budget_ms, power_w=power_w, battery_policy=battery_policy,
                                thermal_policy=thermal_policy)

    @staticmethod
    def _sleep_until(t: float, capture: CaptureThread, deadline: float | None) -> None:
        """Sleep until wall time ``t`` (or ``deadline``), waking early if the capture stops."""
        end = t if deadline is None else min(t, deadline)
        while (remaining := end - time.monotonic()) > 0 and capture.running:
            time.sleep(min(remaining, 0.05))
