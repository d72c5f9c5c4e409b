"""FFNRuntime: the session. It opens a bundle and runs clips on its sub-networks (no torch).

Feels like an ``onnxruntime.InferenceSession``: one object, explicit backend and device, no hidden
state shared between objects. Live video is a separate object, a ``Stream`` (``stream.py``), that
runs on a session and owns capture, scheduler, budgets and events::

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

import dataclasses
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..sampling import nearest_subnet, segment_indices
from .backends import Backend, open_backend
from .budgets import Budgets
from .errors import ConfigError, InputError
from .inputs import check_clip, check_finite, check_predict_args, check_stream_options, preprocessed_limit
from .manifest import GraphEntry, Manifest, load_manifest
from .online import StepGraphs
from .online_stream import online_stream
from .policy import FrameCountPolicy, SchedulerLike
from .preprocess import Preprocessor
from .sources import FrameSource, Opener, SourceEvent
from .stream import WAIT_TIMEOUT_S, Stream, StreamOptions


def default_threads() -> int:
    """Intra-op threads: the CPUs this process may run on (honours ``taskset``/cgroups cpusets)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclasses.dataclass(frozen=True)
class RunResult:
    """One run of a graph: its logits and what it cost."""

    logits: np.ndarray  # (N, K) float32
    frames: int  # frames fed
    subnet: int  # sub-network index that ran
    latency_ms: float  # wall time of the backend run (see Prediction.latency_ms)
    cpu_ms: float  # CPU time of the calling thread during the run (the run's own cost)


@dataclasses.dataclass(frozen=True)
class Prediction:
    """The answer for one clip.

    ``latency_ms`` means one thing everywhere (``predict``, streams, the scheduler, budgets): the wall
    time of the backend run on the n sampled, preprocessed frames, i.e. the part a frame-count decision
    changes. It does not include preprocessing raw frames (``predict``) or capture (streams).
    """

    label: str
    index: int
    score: float  # softmax probability of ``label``
    topk: list[tuple[str, float]]  # (label, probability), best first
    frames: int  # frames fed to the network
    subnet: int  # sub-network index that ran (into manifest.subnet_frame_counts)
    latency_ms: float  # the backend run (see above)
    timestamps: tuple[float, ...]  # of the frames used (seconds; frame indices for plain predict)
    cpu_ms: float | None = None  # CPU time of the calling thread during that run

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "index": self.index,
            "score": round(self.score, 6),
            "topk": [[lbl, round(s, 6)] for lbl, s in self.topk],
            "frames": self.frames,
            "subnet": self.subnet,
            "latency_ms": round(self.latency_ms, 3),
            "cpu_ms": None if self.cpu_ms is None else round(self.cpu_ms, 3),
            "timestamps": [round(t, 4) for t in self.timestamps],
        }


class FFNRuntime:
    """A verified bundle with every sub-network ready on one backend.

    ``bundle``: the bundle directory. ``backend``: "auto" | "onnxruntime" | "ort-cpu" | "ort-cuda" |
    "ort-tensorrt" | "tensorrt" (``backend_name`` says what "auto" picked). ``device``: GPU index for
    GPU backends. ``threads``: ORT intra-op threads (None: ``default_threads()``, the CPUs this
    process may use). ``share_weights``: one
    copy of the shared weights for all sessions (see backends). ``verify``: check every file's
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
        self.threads = default_threads() if threads is None else threads
        self._backend: Backend | None = open_backend(self.bundle, self.manifest, backend, device, self.threads,
                                                     share_weights)
        self.backend_name: str = self._backend.name
        self._graphs = {g.frames: g for g in self.manifest.graphs if g.frames in self._backend.frame_counts}
        self._lock = threading.Lock()
        self._steps: StepGraphs | None = None  # the step graphs, loaded by the first online stream
        self._steps_lock = threading.Lock()
        self._warm = warmup
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
        self._steps = None

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
        if clip.ndim != 5 or clip.shape[1] != fed:
            raise ValueError(f"{n} frames are served with {fed} frames; got a clip of shape {clip.shape}")
        with self._lock:
            if self._backend is None:
                raise RuntimeError("FFNRuntime is closed")
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
        return self._prediction(result, tuple(float(s) for s in stamps[idx]), topk)

    def _sampled_clip(self, frames: Sequence[np.ndarray] | np.ndarray, idx: np.ndarray) -> np.ndarray:
        """``predict``'s input handling, all of it: (1, n, 3, H, W) float32 from the sampled frames only."""
        first = frames[0]
        if isinstance(first, np.ndarray) and first.dtype == np.float32:  # shapes checked by check_clip
            picked = frames[idx] if isinstance(frames, np.ndarray) else np.stack([frames[i] for i in idx])
            return np.ascontiguousarray(picked[None], dtype=np.float32)
        return np.stack([self.preprocessor(frames[i]) for i in idx])[None]

    def step_graphs(self) -> StepGraphs:
        """The bundle's step graphs (CPU ONNX Runtime), loaded on first use; BundleError if it has none."""
        with self._steps_lock:
            if self._backend is None:
                raise RuntimeError("FFNRuntime is closed")
            if self._steps is None:
                steps = StepGraphs(self.bundle, self.manifest, self.threads)
                if self._warm:
                    steps.warmup()
                self._steps = steps
            return self._steps

    def label_prediction(self, logits: np.ndarray, frames: int, subnet: int, latency_ms: float,
                         stamps: tuple[float, ...], topk: int, cpu_ms: float | None = None) -> Prediction:
        """A Prediction from class logits (classes,) computed elsewhere (an online stream's mean of n steps)."""
        return self._prediction(RunResult(logits[None], frames, subnet, latency_ms, cpu_ms or 0.0), stamps, topk)

    def _prediction(self, result: RunResult, stamps: tuple[float, ...], topk: int) -> Prediction:
        logits = result.logits[0]
        if not np.isfinite(logits).all():
            raise InputError("the network's scores for this clip are not finite (NaN or infinity)")
        z = logits.astype(np.float64) - float(np.max(logits))
        probs = np.exp(z) / np.sum(np.exp(z))
        order = np.argsort(-probs, kind="stable")[: max(1, topk)]
        names = self.manifest.class_names
        best = int(order[0])
        return Prediction(label=names[best], index=best, score=float(probs[best]),
                          topk=[(names[int(i)], float(probs[i])) for i in order], frames=result.frames,
                          subnet=result.subnet, latency_ms=result.latency_ms, timestamps=stamps,
                          cpu_ms=result.cpu_ms)


    # -- live video --------------------------------------------------------------------------------
    def stream(self, source: str | FrameSource, budget_ms: float | None = None, frames: int | None = None,
               window_s: float = 1.0, stride_ms: float = 500.0, *, budgets: Budgets | None = None,
               scheduler: SchedulerLike | None = None, signals: Callable[[float], Any] | None = None,
               topk: int = 5, max_decisions: int | None = None, duration_s: float | None = None,
               realtime: bool | None = None, opener: Opener | None = None,
               on_event: Callable[[SourceEvent], None] | None = None, capacity: int | None = None,
               wait_timeout_s: float = WAIT_TIMEOUT_S, backoff_s: float = 0.5, online: bool = False,
               cpu_share: float | None = None) -> Stream:
        """A ``Stream`` classifying ``source`` on this session: one ``StreamResult`` every ``stride_ms``.

        Each decision looks at the last ``window_s`` seconds (frames preprocessed once, in the capture
        thread) and samples n of them; n is ``frames`` if fixed, else chosen by ``scheduler``, else by
        a ``Scheduler`` for ``budgets`` (``budget_ms`` is short for ``Budgets(budget_ms=...)``), else the
        largest count. ``signals(now_s) -> Signals`` replaces the live sensors. Files are read offline
        by default (decisions at media times window_s, window_s + stride, ... until the file ends;
        ``realtime=True`` paces them like a camera); live sources decide on wall-clock strides and
        survive a lost camera (reopened with back-off; events come in the next result). Ends at the end
        of a file, after ``max_decisions`` or ``duration_s`` (wall clock), or at ``Stream.close``.

        ``online=True`` (causal bundles, ``online_stream.OnlineStream``): one step graph run per sampled
        frame, a stride of window_s / n, one ``OnlineResult`` per step (``max_decisions`` counts steps,
        ``stride_ms`` does not apply); the budget is ``cpu_share`` (step compute / wall time), not
        ``budget_ms``; ``budgets.budget_ms`` there is the step compute allowed per window.
        """
        options = StreamOptions(window_s, stride_ms, topk, max_decisions, duration_s, realtime, capacity,
                                wait_timeout_s, backoff_s)
        if online:
            if budget_ms is not None:
                raise ConfigError("online streams are budgeted in compute (cpu_share), not in latency per "
                                  "decision (budget_ms)")
            return online_stream(self, source, options, frames=frames, cpu_share=cpu_share, budgets=budgets,
                                 scheduler=scheduler, signals=signals, opener=opener, on_event=on_event)
        if cpu_share is not None:
            raise ConfigError("cpu_share budgets online streams only (online=True); a window stream takes budget_ms")
        if budget_ms is not None:
            budgets = (budgets or Budgets()).replace(budget_ms=budget_ms)
        dynamic = any(g.dynamic_frames for g in self._graphs.values())
        policy = FrameCountPolicy(self.manifest.subnet_frame_counts, frames, budgets, scheduler, signals,
                                  candidates=None if dynamic else self.frame_counts)
        return Stream(self, source, policy, options, opener=opener, on_event=on_event)
