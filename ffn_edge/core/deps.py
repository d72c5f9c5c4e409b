"""Optional packages: what to install when one is missing, said in one line, in the same words everywhere.

ONNX Runtime and OpenCV are extras (``[cpu]``, ``[cpu-headless]``, ``[gpu-cu12]``, ``[gpu-cu13]``, ...), not
base dependencies, so that a device keeps the builds it has (onnxruntime-gpu, the Jetson wheel,
JetPack's OpenCV); torch, onnx and the rest of the training tools come with ``[train]``. ffn-edge is
installed from a checkout or a wheel, not an index, so a hint names the packages pip can fetch and
the extra that carries them. The hints live here, below every layer, so a backend, an exporter or a
CLI names the fix for a missing package the same way.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterable
from typing import NoReturn

from .errors import ConfigError
from .version import version_line

_EXTRA = "the [{extra}] extra of ffn-edge (README: Install)"
_TRAIN = _EXTRA.format(extra="train")
ORT_HINT = ("pip install onnxruntime (CPU) or onnxruntime-gpu (NVIDIA GPU; one of the two, never both), "
            "as in the [cpu] / [gpu-cu12] / [gpu-cu13] extras of ffn-edge (the CUDA major of your driver); on "
            "Jetson, the onnxruntime-gpu wheel built for your JetPack")
TENSORRT_HINT = ("pip install 'tensorrt-cu13>=11,<12' 'cuda-bindings>=13,<14' (x86, CUDA 13 driver: the "
                 "[tensorrt-cu13] extra) or 'tensorrt-cu12>=10.3,<11' 'cuda-bindings>=12.8,<13' (CUDA 12 driver: "
                 "[tensorrt-cu12]); on JetPack 6 the apt TensorRT plus [jetson] (README: GPU and Jetson)")
HINTS = {
    "onnxruntime": f"ONNX Runtime is not installed: {ORT_HINT}",
    "cv2": ("OpenCV is not installed: pip install opencv-python-headless (servers, boards) or opencv-python "
            "(windows for --show), as in the [cpu-headless] / [cpu] extras of ffn-edge; on Jetson, JetPack's "
            "OpenCV (apt nvidia-opencv: libopencv-python) seen from a venv made with --system-site-packages"),
    "tensorrt": f"TensorRT is not installed: {TENSORRT_HINT}",
    "torch": ("PyTorch is not installed: pip install torch --index-url https://download.pytorch.org/whl/cpu "
              f"(or a CUDA build), then {_TRAIN}"),
    "onnx": f"onnx is not installed: pip install 'onnx>=1.16,<2', or {_TRAIN}",
    "onnxscript": f"onnxscript is not installed: pip install onnxscript, or {_TRAIN}",
    "onnxconverter_common": f"onnxconverter-common is not installed: pip install onnxconverter-common, or {_TRAIN}",
    "safetensors": f"safetensors is not installed: pip install safetensors, or {_TRAIN}",
    "tqdm": f"tqdm is not installed: pip install tqdm, or {_TRAIN}",
    "matplotlib": f"matplotlib is not installed (needed for plots): pip install matplotlib, or {_TRAIN}",
    "prometheus_client": ("prometheus-client is not installed (needed for --metrics-port): pip install "
                          "'prometheus-client>=0.17,<1' (the [metrics] extra of ffn-edge)"),
}


def missing_message(module: str) -> str | None:
    """The one-line install hint when ``module`` (a key of HINTS) cannot be found, else None."""
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a module set to None in sys.modules, a broken install
        found = False
    return None if found else HINTS[module]


def first_missing(modules: Iterable[str]) -> str | None:
    """The install hint of the first of ``modules`` that cannot be found, else None."""
    return next((m for m in map(missing_message, modules) if m is not None), None)


def require_modules(modules: Iterable[str]) -> None:
    """Raise ConfigError with the install hint of the first of ``modules`` that cannot be imported."""
    message = first_missing(modules)
    if message is not None:
        raise ConfigError(message)


def require(prog: str, modules: Iterable[str], argv: list[str] | None = None) -> None:
    """Exit 2 with ``PROG: error: HINT`` (one line, stderr) unless every one of ``modules`` can be imported.

    For console entries, before they import the modules that need the packages (a traceback otherwise).
    ``--version`` is answered here, so it works before those packages are installed.
    """
    argv = sys.argv[1:] if argv is None else argv
    message = first_missing(modules)
    if message is not None and "--version" in argv:
        print(version_line(prog))
        sys.exit(0)
    if message is not None:
        _fail(prog, message)


def _fail(prog: str, message: str) -> NoReturn:
    print(f"{prog}: error: {message}", file=sys.stderr)
    sys.exit(2)
