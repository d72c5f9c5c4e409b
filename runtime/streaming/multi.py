"""MultiStream: several sources on one session, one decision round per stride, one device budget.

``rt.streams(["cam0", "cam1", "rtsp://..."], StreamOptions(budget_ms=60), weights=[1, 1, 2])``. Every
``stride_ms`` one round: each source gives its last ``window_s`` (``cameras.Camera``: own capture
thread, reconnect and events; a lost camera sits the round out, nobody waits for it), the joint
allocator (``control.allocator.JointAllocator``) chooses every stream's n for the round's budget,
and streams that chose the same n run as ONE batch through the session (``batching.run_group``).
Iterating yields one ``MultiResult`` per stream per round, tagged with its source.

**The budget is per round**: ``budget_ms`` limits the round's latency, all its runs together. A
round is what the device does once per stride for every camera, so that is what must fit the
stride; a per-stream budget would let N streams take N budgets of the one device and would hide
what batching saves (one run for many streams). With one stream, round and stream are the same and
the decisions are the single-stream Scheduler's.

Without any budget (nor ``min_accuracy``) every stream runs the largest count (reason ``"max"``);
``frames`` fixes every stream's count (``"fixed"``). ``set_budget``, ``set_weight``, ``add`` and
``remove`` may be called from any thread; they take effect from the next round.

A source that fails (does not open at the start, its capture errs, its file ends) leaves the
multi-stream with its last ``MultiResult`` saying why; the others go on. Only when no source opens
does iterating raise (the first one's SourceError).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from ...core.errors import ConfigError, SourceError
from ..control.allocator import JointAllocator, RoundDecision, RunRecord
from ..control.budgets import KEEP, SchedulerError, _Keep
from ..control.signals import Signals, default_providers, read_signals
from ..media.capture import SourceEvent
from ..media.sources import FrameSource, Opener
from ..results import MultiResult, StreamResult
from .batching import Clip, run_group
from .cameras import Camera
from .multi_checks import check_sources
from .options import StreamOptions
from .session_api import Session


class MultiStream:
    """Sources classified together on ``session``; see the module docstring. Iterable once."""

    def __init__(self, session: Session, sources: list[str | FrameSource], weights: list[float] | None,
                 options: StreamOptions, allocator: JointAllocator, signals: Callable[[float], Any] | None = None,
                 opener: Opener | None = None, on_event: Callable[[SourceEvent], None] | None = None) -> None:
        self.session, self.options, self.allocator = session, options, allocator
        self._opener, self._on_event = opener, on_event
        opened = [s if isinstance(s, FrameSource) else FrameSource(s, opener=opener) for s in sources]
        self._weights = check_sources([s.name for s in opened], weights)
        self.realtime = options.realtime if options.realtime is not None else any(s.live for s in opened)
        if not self.realtime and any(s.live for s in opened):
            raise ConfigError("realtime=False applies to files only: a live source cannot wait")
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self.cameras: dict[str, Camera] = {}
        self._iterated = False
        self._signals = signals
        for src, w in zip(opened, self._weights, strict=True):
            self._add(src, w)

    # ----------------------------------------------------------------- run-time changes (any thread)

    @property
    def sources(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(self.cameras)

    def set_budget(self, budget_ms: float | None | _Keep = KEEP, *, power_w: float | None | _Keep = KEEP,
                   battery_policy: Any = KEEP, thermal_policy: Any = KEEP,
                   min_accuracy: float | None | _Keep = KEEP) -> None:
        """Change the device's budgets from the next round; ``None`` turns one off."""
        with self._lock, _config_errors():
            self.allocator.set_budget(budget_ms=budget_ms, power_w=power_w, battery_policy=battery_policy,
                                      thermal_policy=thermal_policy, min_accuracy=min_accuracy)

    def set_weight(self, source: str, weight: float) -> None:
        with self._lock, _config_errors():
            self.allocator.set_weight(source, weight)
            self.cameras[source].weight = weight

    def add(self, source: str | FrameSource, weight: float = 1.0) -> None:
        """A new source from the next round (its capture starts now; SourceError if it cannot open)."""
        src = source if isinstance(source, FrameSource) else FrameSource(source, opener=self._opener)
        with self._lock:
            check_sources([*self.cameras, src.name], [*(c.weight for c in self.cameras.values()), weight])
            camera = self._add(src, weight)
            if self._iterated:
                camera.start()

    def remove(self, source: str) -> None:
        """Stop serving ``source`` (its capture is closed)."""
        with self._lock:
            if source not in self.cameras:
                raise ConfigError(f"no stream {source!r} (streams: {', '.join(self.cameras)})")
            self.cameras.pop(source).close()
            self.allocator.remove(source)

    def _add(self, src: FrameSource, weight: float) -> Camera:
        camera = Camera(src, weight, self.session.preprocessor, self.options, self.realtime, self._on_event)
        with _config_errors():
            self.allocator.add(src.name, weight)
        self.cameras[src.name] = camera
        return camera

    # ----------------------------------------------------------------- iteration

    def close(self) -> None:
        """Stop the rounds and every capture (from any thread). Idempotent."""
        self._stop.set()
        with self._lock:
            for camera in self.cameras.values():
                camera.close()

    def __enter__(self) -> MultiStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[MultiResult]:
        if self._iterated:
            raise ConfigError("a multi-stream is iterated once; open another with rt.streams")
        self._iterated = True
        return self._rounds()

    def _rounds(self) -> Iterator[MultiResult]:
        o = self.options
        started = next_wall = time.monotonic()
        with contextlib.ExitStack() as stack:
            stack.callback(self.close)
            self._start_all()
            rnd = 0
            while not self._stop.is_set() and (o.max_decisions is None or rnd < o.max_decisions):
                if self.realtime:
                    next_wall += o.window_s if rnd == 0 else o.stride_ms / 1000.0
                    while (left := next_wall - time.monotonic()) > 0 and not self._stop.is_set():
                        time.sleep(min(left, 0.05))
                    next_wall = max(next_wall, time.monotonic())
                if o.duration_s is not None and time.monotonic() - started >= o.duration_s:
                    return
                results = self._round(rnd)
                if results is None:
                    return
                yield from results
                rnd += 1

    def _start_all(self) -> None:
        """Open every source; one that cannot open leaves (its error is its first result's event), unless none can."""
        with self._lock:
            errors = []
            for camera in self.cameras.values():
                try:
                    camera.start()
                except SourceError as e:
                    camera.fail_to_start(e)
                    errors.append(e)
            if errors and len(errors) == len(self.cameras):
                raise errors[0]

    def _round(self, rnd: int) -> list[MultiResult] | None:
        """One round: windows, decisions, runs, feedback. None when every source is gone."""
        with self._lock:
            cameras = list(self.cameras.values())
        if not cameras:
            return None
        if not self.realtime:
            for camera in cameras:
                camera.wait_ready()
        with self._lock:
            cameras = [c for c in cameras if c.name in self.cameras]
            windows = {c.name: c.window() for c in cameras}
            rd = self._decide(time.monotonic())
            clips = {k: Clip(k, w[0], w[1]) for k, w in windows.items() if len(w[1])}
            with self._held(cameras):
                runs = [r for g in rd.groups if (members := [clips[k] for k in g.keys if k in clips])
                        for r in run_group(self.session, g.n, members, self.options.topk, self.allocator.batching)]
            preds = {k: p for r in runs for k, p in r.predictions.items()}
            batch_of = {k: r.batch for r in runs for k in r.predictions}
            if self._allocating:
                self.allocator.observe([RunRecord(r.n, r.subnet, r.batch, max(r.latency_ms, 1e-6), r.cpu_ms)
                                        for r in runs], time.monotonic())
            total = sum(r.latency_ms for r in runs)
            budget = self.allocator.budget_ms
            within = None if budget is None or not runs else total <= budget
            state = self.allocator.budgets.state()
            out = []
            for c in cameras:
                d = rd.decisions.get(c.name)
                result = None
                if c.name in preds and d is not None:
                    w = windows[c.name]
                    newest = float(w[1][-1])  # the decision's frame: the window's newest
                    result = StreamResult(rnd, preds[c.name], w[2], len(w[1]), d.n, ",".join(d.reasons), budget,
                                          within, (), tuple(d.reasons), d.predicted_ms, d.feasible, state,
                                          stamp=newest, origin=c.capture.origin, frame=c.capture.raw_frame(newest))
                    c.decisions += 1
                if c.done:  # closed first, so the events of its end are in its last result
                    self.cameras.pop(c.name, None)
                    with contextlib.suppress(SchedulerError):
                        self.allocator.remove(c.name)
                    c.close()
                out.append(MultiResult(c.name, rnd, result, c.drain_events(), batch_of.get(c.name, 0), c.weight,
                                       total, rd.predicted_ms, within))
            return out

    @property
    def _allocating(self) -> bool:
        a = self.allocator
        return self.options.frames is None and (a.budgets.any or a.min_accuracy is not None)

    def _decide(self, now_s: float) -> RoundDecision:
        """The allocator's round, or every stream at the fixed / largest count."""
        if self._allocating:
            return self.allocator.decide(now_s, self._read_signals(now_s))
        n = self.options.frames or self.allocator.candidates[-1]
        reasons = ["fixed"] if self.options.frames else ["max"]
        return self.allocator.uniform_round(n, reasons)

    def _read_signals(self, now_s: float) -> Signals:
        if self._signals is None:
            providers = default_providers()
            self._signals = lambda t: read_signals(t, providers)
        return self._signals(now_s)

    def _held(self, cameras: list[Camera]) -> contextlib.ExitStack:
        """Files read offline are paused while the round's runs are timed (their decode is not the runs' cost)."""
        stack = contextlib.ExitStack()
        for c in cameras:
            if c.offline and not c.done:
                stack.enter_context(c.capture.paused())
        return stack


@contextlib.contextmanager
def _config_errors() -> Iterator[None]:
    """The allocator's SchedulerError (a bad weight, an unknown stream) as the API's ConfigError."""
    try:
        yield
    except SchedulerError as e:
        raise ConfigError(str(e)) from None
    except KeyError as e:
        raise ConfigError(f"no stream {e}") from None


__all__ = ["MultiStream"]
