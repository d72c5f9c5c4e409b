"""What a stream needs from the session it runs on, as a Protocol.

Streams sit below the session (``FFNRuntime`` builds them), so they name the few things they call
on it here instead of importing it: the preprocessing of captured frames, a clip prediction, the
bundle's step graphs, a label from logits computed elsewhere, and (for a multi-stream's batches)
the routing of n frames and a raw graph run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from ...bundle.manifest import Manifest
from ...bundle.preprocess import Preprocessor
from ..backends.steps import StepGraphs
from ..results import Prediction, RunResult


class Session(Protocol):
    """The part of ``FFNRuntime`` a stream uses."""

    manifest: Manifest
    preprocessor: Preprocessor

    def predict(self, frames: Sequence[np.ndarray] | np.ndarray, n: int | None = None, topk: int = 5,
                timestamps: Sequence[float] | None = None) -> Prediction: ...

    def step_graphs(self) -> StepGraphs: ...

    def route(self, n: int) -> tuple[Any, int]: ...

    def run(self, n: int, clip: np.ndarray) -> RunResult: ...

    def label_prediction(self, logits: np.ndarray, frames: int, subnet: int, latency_ms: float,
                         stamps: tuple[float, ...], topk: int, cpu_ms: float | None = None) -> Prediction: ...
