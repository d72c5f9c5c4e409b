"""A causal bundle's step graphs, one frame at a time (torch-free).

``StepGraphs`` holds the ONNX Runtime sessions and nothing else: ``run`` takes a frame and the shift
buffers and returns the frame's logits and the new buffers, so the state lives with whoever streams
(an online stream keeps its own; a session's ``StepGraphs``, ``FFNRuntime.step_graphs()``, is shared
by all its streams and is the one way to open them). Feeding a clip's n frames to sub-network k from
``zero_state(k)``, each with the buffers the previous one returned, and averaging the logits gives
sub-network k's clip-graph logits for that clip.

The state is opaque to whoever streams: it only passes the state a run returned to the next run
and asks ``zero_state`` for a fresh one. This class is the interface and its ONNX Runtime CPU
implementation (a dict of host arrays); ``steps_ort_cuda`` and ``steps_tensorrt`` keep the buffers
on the GPU (``step_state.DeviceState``), and ``step_select.open_step_graphs`` picks the one for a
session's backend.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from ...bundle.manifest import Manifest, resolve
from ...bundle.sections import STEP_SUBNET_META, StepGraph
from ...core.errors import BundleError, InputError
from .ort_options import import_onnxruntime, session_options
from .trt_engine import first_line

# One stream's shift buffers, opaque to the stream. ORT CPU: graph input name -> (1, C, H, W) float32
# host array; GPU implementations: a ``step_state.DeviceState``.
State = Any


@dataclasses.dataclass(frozen=True)
class StepRun:
    """One frame through a step graph: its logits, the buffers for the next frame, what it cost."""

    logits: np.ndarray  # (classes,) float32
    state: State
    latency_ms: float  # wall time of the run
    cpu_ms: float  # CPU time of the calling thread during the run


class StepGraphs:
    """Sessions of every step graph of a verified causal bundle; thread-safe, the state lives with the caller.

    Subclasses (one per backend) override ``_open``, ``zero_state``, ``_step`` and ``close``.
    """

    name = "onnxruntime[CPUExecutionProvider]"

    def __init__(self, bundle: str | os.PathLike[str], manifest: Manifest, threads: int | None = None) -> None:
        self.bundle = Path(bundle)
        spec = manifest.step
        if spec is None:
            raise BundleError(f"{self.bundle}: no step graphs, so no online mode (the bundle was not exported "
                              "from a causal checkpoint: train with --shift causal and export that)")
        self.spec = spec
        self.size = manifest.input.size
        self.classes = len(manifest.class_names)
        self._graphs: dict[int, StepGraph] = {g.subnet: g for g in spec.graphs}
        self._lock = threading.Lock()  # sessions may run concurrently, but timings must not overlap
        self._open(manifest, threads)

    def _open(self, manifest: Manifest, threads: int | None) -> None:
        """One CPU ONNX Runtime session per step graph."""
        ort = import_onnxruntime()
        self._sessions: dict[int, Any] = {}
        for k, g in self._graphs.items():
            self._sessions[k] = load_session(ort, self.bundle, g.file, session_options(threads, shared=False),
                                             ["CPUExecutionProvider"])
            check_step_subnet(self._sessions[k], self.bundle / g.file, k)

    @property
    def subnets(self) -> tuple[int, ...]:
        return tuple(sorted(self._graphs))

    def zero_state(self, subnet: int) -> State:
        """The buffers of a stream's first frame on ``subnet`` (nothing before it)."""
        return {b.input: np.zeros((1, *b.shape), np.float32) for b in self._graphs[self.check_subnet(subnet)].buffers}

    def warmup(self) -> None:
        """Run every step graph once, so a stream's first frame on a sub-network is not a cold run."""
        h, w = self.size
        for k in self.subnets:
            self.run(np.zeros((3, h, w), np.float32), k, self.zero_state(k))

    def run(self, frame: np.ndarray, subnet: int, state: State) -> StepRun:
        """One preprocessed frame (3, H, W) float32 on ``subnet`` with the buffers ``state``."""
        k = self.check_subnet(subnet)
        want = (3, *self.size)
        if not isinstance(frame, np.ndarray) or frame.dtype != np.float32 or frame.shape != want:
            got = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
            raise InputError(f"step() takes one preprocessed float32 frame of shape {want}, got {got}")
        if not np.isfinite(frame).all():
            raise InputError("step() frame has NaN or infinite values")
        with self._lock:
            t0, c0 = time.perf_counter(), time.thread_time()
            logits, new_state = self._step(frame, k, state)
            cpu_ms, wall_ms = (time.thread_time() - c0) * 1000.0, (time.perf_counter() - t0) * 1000.0
        return StepRun(logits, new_state, wall_ms, cpu_ms)

    def _step(self, frame: np.ndarray, subnet: int, state: State) -> tuple[np.ndarray, State]:
        """The frame's logits (classes,) and the next state; called under the lock."""
        g = self._graphs[subnet]
        self.check_state(g, state)
        try:
            out = self._sessions[subnet].run([self.spec.output_name, *(b.output for b in g.buffers)],
                                             {self.spec.input_name: frame[None], **state})
        except (MemoryError, RecursionError):
            raise
        except Exception as e:  # ORT's own types: the inputs are checked, so the graph cannot compute
            raise BundleError(f"{self.bundle / g.file}: ONNX Runtime failed running it: "
                              f"{first_line(e)[:200]}") from None
        return out[0][0], {b.input: o for b, o in zip(g.buffers, out[1:], strict=True)}

    @staticmethod
    def check_state(g: StepGraph, state: State) -> None:
        """``state`` holds exactly ``g``'s buffers, each finite float32 (1, C, H, W); InputError otherwise."""
        if not isinstance(state, dict):
            raise InputError(f"step() state must be a dict of sub-network {g.subnet}'s buffers (zero_state(), then "
                             f"each StepRun.state), got {type(state).__name__}")
        want = {b.input: (1, *b.shape) for b in g.buffers}
        if set(state) != set(want):
            odd = sorted(map(str, set(state) ^ set(want)))
            raise InputError(f"step() state for sub-network {g.subnet} must hold its {len(want)} buffers; missing or "
                             f"unknown: {', '.join(odd[:3])}{', ...' if len(odd) > 3 else ''}")
        for name, shape in want.items():
            v = state[name]
            if not isinstance(v, np.ndarray) or v.dtype != np.float32 or v.shape != shape:
                got = f"{v.dtype} {v.shape}" if isinstance(v, np.ndarray) else type(v).__name__
                raise InputError(f"step() buffer {name!r} must be float32 {shape}, got {got}")
            if not np.isfinite(v).all():
                raise InputError(f"step() buffer {name!r} has NaN or infinite values")

    def check_subnet(self, subnet: int) -> int:
        """``subnet`` if it has a step graph; InputError otherwise."""
        if isinstance(subnet, bool) or not isinstance(subnet, int) or subnet not in self._graphs:
            raise InputError(f"no step graph for sub-network {subnet!r} (have {list(self.subnets)})")
        return subnet

    def close(self) -> None:
        """Drop the sessions (and, on a GPU, every buffer); idempotent."""
        self._sessions = {}


def load_session(ort: Any, bundle: Path, file: str, options: Any, providers: list[Any]) -> Any:
    """An ONNX Runtime session of one step graph; BundleError in one line when ORT cannot load it."""
    try:
        return ort.InferenceSession(str(resolve(bundle, file)), options, providers=providers)
    except Exception as e:  # ORT raises its own types
        raise BundleError(f"{bundle / file}: ONNX Runtime cannot load the graph: "
                          f"{first_line(e)[:200]}") from None


def check_step_subnet(session: Any, path: Path, subnet: int) -> None:
    """The step graph at ``path`` says it is sub-network ``subnet``'s (files swapped or renamed: BundleError).

    Older bundles' step graphs do not say; nothing to compare then.
    """
    declared = session.get_modelmeta().custom_metadata_map.get(STEP_SUBNET_META)
    if declared is not None and declared != str(subnet):
        raise BundleError(f"{path}: is the step graph of sub-network {declared[:20]}, the manifest lists it for "
                          f"sub-network {subnet} (files swapped or renamed: re-export)")
