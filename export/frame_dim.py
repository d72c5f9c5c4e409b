"""Static or dynamic frame dimension: measured, not guessed (``ffn-export --frame-dim auto``).

A static-T graph serves exactly the frame count it was traced at; a dynamic-T graph reads T from
its input, so one file per sub-network could serve several frame counts. With a dynamic batch
the shift's shape arithmetic stays in the graph either way (ONNX Runtime fuses the folded norms
into the convolutions in both). TensorRT needs an optimisation profile per engine in both cases;
a static T gives it one fixed shape to tune. ``measure`` times both variants of the same
sub-network in ONNX Runtime on CPU; the exporter records the figures (or, by default, the
measurement behind ``DEFAULT_CHOICE``) and the choice in the manifest (``extra["frame_dim"]``,
``GraphEntry.dynamic_frames``).
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import onnxruntime as ort

from ..models import VideoClassifier
from .onnx_export import INPUT_NAME, export_graph

DEFAULT_CHOICE = "static"
RATIONALE = (
    "ORT CPU, batch 1, median of 15 interleaved runs on a shared 2-core machine: TSM-MobileNetV2@160 "
    "T=4 static 49.6 / dynamic 53.2 ms, T=8 90.9 / 90.2 ms; TSM-ResNet-50@112 T=4 327 / 320 ms, "
    "T=8 629 / 654 ms. Equal within noise on CPU, so static: the simpler graph, one fixed T per TensorRT "
    "profile, and a graph file costs only its per-sub-network tensors; --frame-dim dynamic|auto stays available."
)


def _session(model_bytes: bytes, threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])


def interleaved_latency_ms(graphs: dict[str, bytes], frames: int, size: tuple[int, int], runs: int = 10,
                           threads: int = 0) -> dict[str, float]:
    """Median latency (ms, batch 1, CPU) of each serialized graph, runs alternating between graphs.

    Alternating makes load from other processes hit every variant alike, so the comparison holds
    on a busy machine where back-to-back timing of one variant then the other does not.
    """
    sessions = {name: _session(b, threads) for name, b in graphs.items()}
    x = np.random.default_rng(0).standard_normal((1, frames, 3, *size)).astype(np.float32)
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for s in sessions.values():
        s.run(None, {INPUT_NAME: x})  # warm-up: allocations, kernel selection
    for _ in range(runs):
        for name, s in sessions.items():
            t0 = time.perf_counter()
            s.run(None, {INPUT_NAME: x})
            times[name].append((time.perf_counter() - t0) * 1e3)
    return {name: round(statistics.median(t), 3) for name, t in times.items()}


def measure(model: VideoClassifier, subnet: int, frames: int, size: tuple[int, int], runs: int = 10,
            opset: int = 18) -> dict[str, float]:
    """ORT CPU median latency (ms) of sub-network ``subnet`` at ``frames`` frames, static vs dynamic T."""
    graphs = {name: export_graph(model, subnet, frames, size, dynamic_frames=dyn, opset=opset)[0].SerializeToString()
              for name, dyn in (("static", False), ("dynamic", True))}
    return interleaved_latency_ms(graphs, frames, size, runs)


def choose(latency_ms: dict[str, float], tolerance: float = 0.02) -> str:
    """Dynamic only if it is not slower than static by more than ``tolerance`` (it is more flexible)."""
    return "dynamic" if latency_ms["dynamic"] <= latency_ms["static"] * (1 + tolerance) else "static"
