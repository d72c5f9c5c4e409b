"""An INT8 bundle's quantization scales, checked when it opens.

The sha256 and meaning checks catch a graph edited after export; they cannot catch a bundle sealed with
a bad scale (an exporter bug, a hand edit re-sealed with ``manifest.seal``). ONNX Runtime runs a zero,
negative, infinite or NaN QuantizeLinear / DequantizeLinear scale without complaint and the labels come
out finite and wrong, so every scale must be a finite positive number before a graph is used.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.errors import BundleError
from .onnx_refs import read_qdq_scales


def check_scales(root: Path, rel: str, data: bytes) -> int:
    """The number of Q/DQ scales in graph ``rel`` (its bytes ``data``); BundleError names the first bad one."""
    try:
        scales = read_qdq_scales(data)
    except ValueError as e:
        raise BundleError(f"{root}: {rel} is not a readable ONNX graph ({e})") from None
    for name, values in scales.items():
        bad = values[~(np.isfinite(values) & (values > 0))]
        if bad.size:
            raise BundleError(f"{root}: {rel}: quantization scale {name[:120]!r} is {float(bad[0])!r}; every scale "
                              "must be a finite positive number (edited or exported wrongly: re-export the bundle)")
    return len(scales)
