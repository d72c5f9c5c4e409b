"""Exporter: FFN checkpoint -> bundle of per-frame-count ONNX graphs sharing one weight file.

``from ffn_edge.export import export_bundle`` (imports torch on first use). The submodules
``errors`` and ``tensorrt`` stay importable without torch, so the runtime can use them on a device.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ExportOptions", "export_bundle"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import bundle

        return getattr(bundle, name)
    raise AttributeError(f"module 'ffn_edge.export' has no attribute {name!r}")
