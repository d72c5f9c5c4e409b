"""FFNRuntime: the session. It opens a bundle and runs clips on its sub-networks (no torch).

Feels like an ``onnxruntime.InferenceSession``: one object, explicit backend and device, no hidden
state shared between objects. Live video is a separate object, a ``Stream`` (``streaming/``), that
runs on a session and owns capture, scheduler, budgets and events; its settings are one
``StreamOptions`` (``rt.stream(source, options)``), the online mode's one ``OnlineOptions``
(``rt.online_stream(source, options)``)::

    with FFNRuntime.open("model.ffn", backend="auto") as rt:
        print(rt.backend_name)                       # which backend "auto" picked
        p = rt.predict(frames)                       # one clip -> Prediction
        stream = rt.stream("cam0", budget_ms=30)     # a Stream: iterate it, set_budget on it
        for r in stream:                             # one StreamResult per decision
            print(r.prediction.label, r.prediction.frames, r.reason)

Every sub-network is loaded when the session opens, so changing the frame count between two
decisions costs no load. ``run`` and ``predict`` are thread-safe (one lock around the backend:
sessions and engines run one at a time, which is also what lets them share one activation arena).

n frames are served by the nearest rule (paper §5.3, tie -> higher; ``route``): the exported graph
for n if there is one, else the nearest sub-network's graph, with n frames if that graph takes any
frame count (``dynamic_frames``), else with its own count. ORT's intra-op threads default to the
CPUs this process may run on (``os.sched_getaffinity``), so ``taskset`` is honoured.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..bundle.manifest import GraphEntry, Manifest, load_manifest
from ..bundle.preprocess import Preprocessor
from ..core.cpus import usable_cpus
from ..core.errors import ClosedError
from ..core.sampling import nearest_subnet, segment_indices
from .backends.base import Backend
from .backends.select import open_backend
from .backends.step_select import open_step_graphs
from .backends.steps import StepGraphs
from .control.policy import FrameCountPolicy, SchedulerLike
from .media.capture import SourceEvent
from .media.inputs import (
    check_clip,
    check_finite,
    check_predict_args,
    check_run_clip,
    check_stream_options,
    preprocessed_limit,
)
from .media.sources import FrameSource, Opener
from .results import Prediction, RunResult
from .streaming.multi import MultiStream
from .streaming.multi_session import open_multi_stream
from .streaming.online_stream import OnlineStream, open_online_stream
from .streaming.options import OnlineOptions, StreamOptions
from .streaming.stream import Stream


def default_threads() -> int:
    """Intra-op threads: the CPUs this process may run on (honours ``taskset``/cgroups cpusets)."""
    return usable_cpus()


class FFNRuntime:
    """A verified bundle with every sub-network ready on one backend.

    ``bundle``: the bundle directory. ``backend``: "auto" | "onnxruntime" | "ort-cpu" | "ort-cuda" |
    "ort-tensorrt" | "tensorrt" (``backend_name`` says what "auto" picked). ``device``: GPU index for
    GPU backends. ``threads``: ORT intra-op threads (None: ``default_threads()``, the CPUs this
    process may use). ``share_weights``: one copy of the shared weights for all sessions. ``verify``: check every file's
    sha256 against the manifest (paths and format version are always checked). ``warmup``: run
    each graph once at open, so the first decision on any sub-network is not a cold run.
    """

    def __init__(self, bundle: str | os.PathLike[str], backend: str = "auto", device: int = 0,
                 threads: int | None = None, share_weights: bool = True, verify: bool = True,
                 warmup: bool = True) -> None:
        check_stream_options(threads=threads)  # bounded before any thread pool is made
        self.bundle = Path(bundle)
        self.manifest: Manifest = load_manifest(self.bundle, verify=verify)
        self.preprocessor = Preprocessor(self.manifest.input)
        self.threads, self.device = default_threads() if threads is None else threads, device
        self._backend: Backend | None = open_backend(self.bundle, self.manifest, backend, device, self.threads,
                                                     share_weights)
        self.backend_name: str = self._backend.name
        self._graphs = {g.frames: g for g in self.manifest.graphs if g.frames in self._backend.frame_counts}
        self._lock = threading.Lock()
        self._steps: StepGraphs | None = None  # the step graphs, loaded by the first online stream
        self._steps_lock, self._warm = threading.Lock(), warmup
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
        steps, self._steps = self._steps, None
        if steps is not None:
            steps.close()  # step graphs on a GPU free their device buffers

    def __enter__(self) -> FFNRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
            g = dynamic[0]
            # A backend may accept only part of a dynamic graph's frame axis (TensorRT: its profile's range).
            lo, hi = getattr(self._backend, "frame_ranges", {}).get(g.frames, (1, n))
            return g, min(max(n, lo), hi)
        counts = self.frame_counts
        g = self._graphs[counts[nearest_subnet(n, counts)]]
        return g, g.frames

    # -- inference ---------------------------------------------------------------------------------
    def run(self, n: int, clip: np.ndarray) -> RunResult:
        """Run the graph that serves n frames on ``clip`` (N, fed, 3, H, W) float32, ``fed = route(n)[1]``."""
        graph, fed = self.route(n)
        check_run_clip(clip, n, fed)
        with self._lock:
            if self._backend is None:
                raise ClosedError("FFNRuntime is closed (used after close() or the end of its with-block)")
            t0, c0 = time.perf_counter(), time.thread_time()
            logits = self._backend.run(graph.frames, clip)
            cpu_ms, latency_ms = (time.thread_time() - c0) * 1000.0, (time.perf_counter() - t0) * 1000.0
        return RunResult(logits, fed, graph.subnet, latency_ms, cpu_ms)

    def predict(self, frames: Sequence[np.ndarray] | np.ndarray, n: int | None = None, topk: int = 5,
                timestamps: Sequence[float] | None = None) -> Prediction:
        """Classify one clip of any length.

        ``frames``: either raw video frames — a list of BGR uint8 (h, w, 3) images (any size; gray and
        BGRA are converted) or a uint8 array (T, h, w, 3) — or already-preprocessed float32 frames
        (3, H, W), as a (T, 3, H, W) array or a list (what a stream's ring holds). ``n``: frames to
        look at (default: the exported count nearest to the clip length). n frames are sampled
        TSN-style (segment centres); only those are gathered (and preprocessed, if raw).
        ``timestamps`` (per input frame; default the frame indices) are reported for the sampled
        frames. ``Prediction.latency_ms`` is the run alone (see ``Prediction``).
        """
        kind = check_clip(frames, self.manifest.input.size)
        total = len(frames)
        check_predict_args(total, n, topk, timestamps)
        if n is None:
            n = self.frame_counts[nearest_subnet(total, self.frame_counts)]
        _, fed = self.route(n)
        idx = segment_indices(total, fed, train=False)
        clip = self._sampled_clip(frames, idx)
        if kind == "preprocessed":  # raw uint8 frames cannot hold NaN; only the n sampled frames are scanned
            check_finite(clip, preprocessed_limit(self.manifest.input.mean, self.manifest.input.std))
        result = self.run(n, clip)
        stamps = np.asarray(timestamps if timestamps is not None else np.arange(total), dtype=np.float64)
        return Prediction.from_run(self.manifest.class_names, result, tuple(float(s) for s in stamps[idx]), topk)

    def _sampled_clip(self, frames: Sequence[np.ndarray] | np.ndarray, idx: np.ndarray) -> np.ndarray:
        """``predict``'s input handling, all of it: (1, n, 3, H, W) float32 from the sampled frames only."""
        first = frames[0]
        if isinstance(first, np.ndarray) and first.dtype == np.float32:  # shapes checked by check_clip
            picked = frames[idx] if isinstance(frames, np.ndarray) else np.stack([frames[i] for i in idx])
            return np.ascontiguousarray(picked[None], dtype=np.float32)
        return np.stack([self.preprocessor(frames[i]) for i in idx])[None]

    def step_graphs(self) -> StepGraphs:
        """The step graphs for this session's backend (``step_select``), loaded on first use; BundleError if none."""
        with self._steps_lock:
            if self._backend is None:
                raise ClosedError("FFNRuntime is closed (used after close() or the end of its with-block)")
            if self._steps is None:
                self._steps = open_step_graphs(self.bundle, self.manifest, self._backend, self.device, self.threads)
                if self._warm:
                    self._steps.warmup()
            return self._steps

    def label_prediction(self, logits: np.ndarray, frames: int, subnet: int, latency_ms: float,
                         stamps: tuple[float, ...], topk: int, cpu_ms: float | None = None) -> Prediction:
        """A Prediction from class logits (classes,) computed elsewhere (an online stream's mean of n steps)."""
        run = RunResult(logits[None], frames, subnet, latency_ms, cpu_ms or 0.0)
        return Prediction.from_run(self.manifest.class_names, run, stamps, topk)

    # -- live video --------------------------------------------------------------------------------
    def stream(self, source: str | FrameSource, options: StreamOptions | None = None, *,
               scheduler: SchedulerLike | None = None, signals: Callable[[float], Any] | None = None,
               opener: Opener | None = None, on_event: Callable[[SourceEvent], None] | None = None,
               **shortcuts: Any) -> Stream:
        """A ``Stream`` classifying ``source`` on this session in window mode: one ``StreamResult`` per stride.

        ``options`` (``StreamOptions``: window, stride, frames, budgets and caps, topk, limits, pacing)
        holds every setting and its default; keyword shortcuts are its field names and replace them
        (``rt.stream("cam0", budget_ms=30)``; ``budgets=Budgets(...)`` gives its fields that are set).
        Each decision looks at the last ``window_s`` seconds and samples n frames: ``frames`` if fixed,
        else chosen by ``scheduler``, else by a ``Scheduler`` for the budgets, else the largest count.
        ``signals(now_s) -> Signals`` replaces the live sensors; ``opener`` opens the source's
        captures; ``on_event`` sees every source event. Online mode is ``online_stream`` (``online=True``
        here is refused with a one-line ConfigError pointing to it).
        """
        opts = StreamOptions.build(options, **shortcuts)
        dynamic = any(g.dynamic_frames for g in self._graphs.values())
        policy = FrameCountPolicy(self.manifest.subnet_frame_counts, opts.frames, opts.budgets(), scheduler, signals,
                                  candidates=None if dynamic else self.frame_counts)
        return Stream(self, source, policy, opts, opener=opener, on_event=on_event)

    def online_stream(self, source: str | FrameSource, options: OnlineOptions | None = None, *,
                      scheduler: SchedulerLike | None = None, signals: Callable[[float], Any] | None = None,
                      opener: Opener | None = None, on_event: Callable[[SourceEvent], None] | None = None,
                      **shortcuts: Any) -> OnlineStream:
        """An ``OnlineStream`` classifying ``source`` one frame at a time (causal bundles; BundleError otherwise).

        One step graph run per sampled frame, a stride of ``window_s / n``, one ``OnlineResult`` per
        step (``max_decisions`` counts steps). ``options`` is ``OnlineOptions``, keyword shortcuts and
        the other arguments as for ``stream``; the budget is ``cpu_share`` (step compute / wall time).
        """
        opts = OnlineOptions.build(options, **shortcuts)
        return open_online_stream(self, source, opts, scheduler, signals, opener=opener, on_event=on_event)

    def streams(self, sources: Sequence[str | FrameSource], options: StreamOptions | None = None, *,
                weights: Sequence[float] | None = None, min_accuracy: float | None = None, batching: bool = True,
                signals: Callable[[float], Any] | None = None, opener: Opener | None = None,
                on_event: Callable[[SourceEvent], None] | None = None, **shortcuts: Any) -> MultiStream:
        """A ``MultiStream``: several sources on this session, one round per stride, one budget for the round.

        ``options`` and keyword shortcuts as for ``stream`` (``budget_ms`` limits each ROUND's latency,
        all streams together); ``weights`` (one per source, default 1) weigh each stream's predicted
        accuracy in the joint allocation; ``min_accuracy=A``: per stream, the least count whose
        predicted accuracy is >= A x the best count's. ``batching=False`` runs every stream alone.
        """
        opts = StreamOptions.build(options, **shortcuts)
        dynamic = any(g.dynamic_frames for g in self._graphs.values())
        return open_multi_stream(self, list(sources), opts, weights, min_accuracy, batching,
                                 None if dynamic else self.frame_counts, (signals, opener, on_event))
