"""What this machine has: a CUDA device, and which optional libraries import. Each answer is a skip reason or None."""

from __future__ import annotations

import importlib
import importlib.util
import platform
import sys
from typing import Any

import torch

# The libraries each part of the check needs beyond torch and numpy (module -> package to install).
TRAINING = {"safetensors": "safetensors", "tqdm": "tqdm", "cv2": "opencv-python-headless"}
EXPORT = {"onnx": "onnx", "onnxscript": "onnxscript", "onnxruntime": "onnxruntime"}


def no_cuda(device: str) -> str | None:
    """Why torch cannot run on CUDA here (``skipped: no CUDA device``), or None; ``device`` cpu never skips."""
    if device == "cpu":
        return None
    if not torch.cuda.is_available():
        return "skipped: no CUDA device"
    return None


def missing(modules: dict[str, str]) -> str | None:
    """``skipped: <package> not installed`` for the first module of ``modules`` that cannot be found, or None."""
    for module, package in modules.items():
        if importlib.util.find_spec(module) is None:
            return f"skipped: {package} not installed"
    return None


def ort_provider(name: str) -> str | None:
    """Why ONNX Runtime's ``name`` execution provider is not here, or None."""
    if importlib.util.find_spec("onnxruntime") is None:
        return "skipped: onnxruntime not installed"
    import onnxruntime as ort

    if name not in ort.get_available_providers():
        return f"skipped: onnxruntime-gpu not installed ({name} not in this onnxruntime build)"
    return None


def tensorrt_missing() -> str | None:
    """Why the native TensorRT backend cannot start here (library, then cuda-python, then device), or None."""
    try:
        importlib.import_module("tensorrt")
    except Exception:  # not installed, or libnvinfer missing: both mean no TensorRT
        return "skipped: tensorrt not installed"
    if importlib.util.find_spec("cuda") is None or importlib.util.find_spec("cuda.bindings") is None:
        return "skipped: cuda-python not installed"
    from ..export.tensorrt import gpu_name

    return None if gpu_name() is not None else "skipped: no CUDA device"


def describe(device: str) -> dict[str, Any]:
    """Python, torch, the device and the optional libraries, for the report's header."""
    env: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                           "cuda": torch.version.cuda or "none"}
    if device != "cpu" and torch.cuda.is_available():
        env["device"] = torch.cuda.get_device_name(0)
    else:
        env["device"] = "cpu"
    for module in ("onnxruntime", "tensorrt", "onnx", "safetensors", "cv2"):
        if importlib.util.find_spec(module) is None:
            env[module] = "not installed"
            continue
        try:
            env[module] = getattr(importlib.import_module(module), "__version__", "installed")
        except Exception as e:  # present but broken (a missing shared library): say so, do not stop
            env[module] = f"broken ({type(e).__name__})"
    env["executable"] = sys.executable
    return env
