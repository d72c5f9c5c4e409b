"""The runtime's optional packages: what to install when one is missing, said in one line.

ONNX Runtime and OpenCV are extras (``ffn-edge[cpu]`` or ``ffn-edge[gpu]``), not base dependencies,
so that a device keeps the builds it has (onnxruntime-gpu, the Jetson wheel, JetPack's OpenCV).
The hints live here, below every layer, so a backend, an exporter or a CLI can name the fix
for a missing package in the same words.
"""

from __future__ import annotations

import importlib.util

ORT_HINT = ("pip install 'ffn-edge[cpu]' (CPU) or 'ffn-edge[gpu]' (NVIDIA GPU; one of the two, never both); "
            "on Jetson, the onnxruntime-gpu wheel built for your JetPack")
HINTS = {
    "onnxruntime": f"ONNX Runtime is not installed: {ORT_HINT}",
    "cv2": ("OpenCV is not installed: pip install 'ffn-edge[cpu]' (or [gpu]); on Jetson, JetPack's python3-opencv "
            "seen from a venv made with --system-site-packages"),
}


def missing_message(module: str) -> str | None:
    """The one-line install hint when ``module`` (a key of HINTS) cannot be found, else None."""
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a module set to None in sys.modules, a broken install
        found = False
    return None if found else HINTS[module]
