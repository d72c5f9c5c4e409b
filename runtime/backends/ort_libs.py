"""Why ONNX Runtime's CUDA or TensorRT execution provider cannot start: the library that is missing.

onnxruntime-gpu lists the CUDA and TensorRT EPs as available whenever they are compiled in; a
session asked for one then falls back to the CPU when the provider library cannot be loaded, and
ONNX Runtime prints the reason to its own log. Loading the provider library here the way ONNX
Runtime does (its shared provider bridge first, globally) gives that reason back as a string: the
loader's message names the first missing dependency (``libcublasLt.so.12``, ``libcudnn.so.9``,
``libnvinfer.so.10``). Torch-free; only called on the failure path.
"""

from __future__ import annotations

import ctypes
import sys
from pathlib import Path

PROVIDER_LIBS = {"CUDAExecutionProvider": "onnxruntime_providers_cuda",
                 "TensorrtExecutionProvider": "onnxruntime_providers_tensorrt"}
SHARED_LIB = "onnxruntime_providers_shared"


def _lib_file(capi: Path, name: str) -> Path:
    return capi / (f"{name}.dll" if sys.platform == "win32" else f"lib{name}.so")


def provider_load_error(ep: str, capi: Path | None = None) -> str | None:
    """The loader's one-line reason ``ep``'s provider library cannot load, or None when it loads.

    ``capi``: ONNX Runtime's ``capi`` folder (default: the installed onnxruntime's).
    """
    name = PROVIDER_LIBS.get(ep)
    if name is None:
        return None
    if capi is None:
        import onnxruntime

        capi = Path(onnxruntime.__file__).parent / "capi"
    lib = _lib_file(capi, name)
    if not lib.is_file():
        return f"{lib.name} is not in this onnxruntime (the CPU build; the GPU one is onnxruntime-gpu)"
    try:
        shared = _lib_file(capi, SHARED_LIB)
        if shared.is_file():
            ctypes.CDLL(str(shared), mode=ctypes.RTLD_GLOBAL)
        ctypes.CDLL(str(lib))
    except OSError as e:
        return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return None
