"""The backend interface: what the session needs from an inference engine, and the backend names."""

from __future__ import annotations

from typing import Protocol

import numpy as np

BACKENDS = ("auto", "onnxruntime", "ort-cpu", "ort-cuda", "ort-tensorrt", "ort-tensorrt-fp16", "tensorrt")


class Backend(Protocol):
    """What FFNRuntime needs from an inference backend."""

    name: str  # e.g. "onnxruntime[CPUExecutionProvider]", "tensorrt[fp16]": said in logs and results
    frame_counts: tuple[int, ...]  # the exported graphs' frame counts, ascending

    def run(self, frames: int, clip: np.ndarray) -> np.ndarray:
        """Logits (N, K) float32 for ``clip`` (N, frames, 3, H, W) float32."""
        ...

    def close(self) -> None:
        """Free sessions / engines; idempotent."""
        ...
