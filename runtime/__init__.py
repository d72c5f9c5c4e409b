"""Torch-free runtime: FFNRuntime (the session), Stream, inference backends, frame sources, budget scheduler, ffn-run.

``from ffn_edge.runtime import FFNRuntime`` loads numpy, OpenCV and this package's own modules only;
onnxruntime is imported when a runtime opens a bundle, TensorRT only when its backend is chosen.
The names below are resolved on first use (PEP 562), so importing one subpackage (say
``ffn_edge.runtime.control`` for the scheduler) does not load the rest (OpenCV, capture threads).

Layers, bottom to top (a test walks the imports and fails on an upward one): ``ffn_edge.core`` and
``ffn_edge.bundle`` below everything; ``results``, ``backends``, ``media``, ``control`` beside each
other; ``streaming`` on those; ``session`` (``FFNRuntime``) on streaming; ``app`` (``ffn-run``) on top.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BundleError": "..core.errors", "ConfigError": "..core.errors", "FFNError": "..core.errors",
    "SourceError": "..core.errors", "FFNRuntime": ".session", "Prediction": ".results", "RunResult": ".results",
    "StreamResult": ".results", "OnlineResult": ".results", "FrameCountPolicy": ".control.policy",
    "Budgets": ".control.budgets", "Scheduler": ".control.scheduler", "Stream": ".streaming.stream",
    "StreamOptions": ".streaming.options", "OnlineOptions": ".streaming.options",
    "OnlineStream": ".streaming.online_stream", "MultiStream": ".streaming.multi", "MultiResult": ".results",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
