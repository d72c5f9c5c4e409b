"""Torch-free runtime: FFNRuntime, inference backends, frame sources, budget scheduler, ffn-run.

``from ffn_edge.runtime import FFNRuntime`` loads numpy, OpenCV and this package's own modules only;
onnxruntime is imported when a runtime opens a bundle, TensorRT only when its backend is chosen.
"""

from .errors import BundleError, ConfigError, FFNError, SourceError
from .ffn_runtime import FFNRuntime, FrameCountPolicy, Prediction, StreamResult

__all__ = ["BundleError", "ConfigError", "FFNError", "FFNRuntime", "FrameCountPolicy", "Prediction",
           "SourceError", "StreamResult"]
