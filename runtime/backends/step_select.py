"""Which step graphs a session opens: the implementation for the backend its clip graphs run on.

Native TensorRT engines -> TensorRT step engines of the same precision (``steps_tensorrt``); ONNX
Runtime on the CUDA EP, or on the TensorRT EP (whose engine cache would rebuild for every new buffer
shape), -> step graphs on the CUDA EP with the buffers on the GPU (``steps_ort_cuda``); anything
else -> ONNX Runtime on the CPU (``steps.StepGraphs``).
"""

from __future__ import annotations

import os

from ...bundle.manifest import Manifest
from .base import Backend
from .ort_options import CUDA_EP, TRT_EP
from .steps import StepGraphs


def open_step_graphs(bundle: str | os.PathLike[str], manifest: Manifest, backend: Backend, device: int,
                     threads: int | None) -> StepGraphs:
    """The step graphs for ``backend`` (a session's open clip backend) on GPU ``device``."""
    from .tensorrt import TensorRTBackend

    if isinstance(backend, TensorRTBackend):
        from .steps_tensorrt import TensorRTStepGraphs

        return TensorRTStepGraphs(bundle, manifest, device, backend.precision)
    providers = getattr(backend, "active_providers", None) or []
    if providers and providers[0] in (CUDA_EP, TRT_EP):
        from .steps_ort_cuda import OrtDeviceStepGraphs

        return OrtDeviceStepGraphs(bundle, manifest, device, threads)
    return StepGraphs(bundle, manifest, threads)
