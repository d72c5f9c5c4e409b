"""Torch-free runtime: FFNRuntime (the session), Stream, inference backends, frame sources, budget scheduler, ffn-run.

``from ffn_edge.runtime import FFNRuntime`` loads numpy, OpenCV and this package's own modules only;
onnxruntime is imported when a runtime opens a bundle, TensorRT only when its backend is chosen.
The names below are resolved on first use (PEP 562), so the training side importing
``ffn_edge.runtime.errors`` does not load the runtime (OpenCV, capture threads) with it.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BundleError": "errors", "ConfigError": "errors", "FFNError": "errors", "SourceError": "errors",
    "FFNRuntime": "ffn_runtime", "Prediction": "ffn_runtime", "RunResult": "ffn_runtime",
    "FrameCountPolicy": "policy", "Stream": "stream", "StreamResult": "stream", "Budgets": "budgets",
    "OnlineStream": "online_stream", "OnlineResult": "online_stream", "StepRunner": "online",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
