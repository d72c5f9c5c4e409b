"""What a path given as a bundle is when it is not one this ffn-edge reads, said with the fix.

A checkpoint (``.safetensors`` from ffn-train) passed as ``--bundle`` needs ``ffn-export`` first; a
bundle from a newer format needs a newer ffn-edge, not a re-export; an older one needs a re-export.
Reads at most a bounded header, never the whole file; torch-free.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from ..core import validate as V
from ..core.version import __version__

CHECKPOINT_META_KEY = "ffn_edge"  # the key ffn-train's checkpoints keep their metadata under
_MAX_HEADER = 1 << 20  # enough for a checkpoint's header; a file is identified, not loaded
_VERSION = re.compile(r"\d+(\.\d+){0,3}")


def file_given_as_bundle(path: Path) -> str:
    """The one-line message for a regular file where a bundle directory was expected."""
    if _is_checkpoint(path):
        return (f"{path}: this is a checkpoint, not a bundle: run ffn-export first "
                f"(ffn-export --ckpt {path} --frames 4 8 16 --out model.ffn), then pass --bundle model.ffn")
    if path.name == "manifest.json" or path.suffix == ".onnx":
        return f"{path}: pass the bundle directory ({path.parent}), not a file inside it"
    return f"{path}: is a file, not a bundle directory (ffn-export writes one)"


def _is_checkpoint(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if not 2 <= n <= min(_MAX_HEADER, os.fstat(f.fileno()).st_size - 8):
                return False
            header = json.loads(f.read(n))
    except (OSError, ValueError):
        return False
    return isinstance(header, dict) and CHECKPOINT_META_KEY in (header.get("__metadata__") or {})


def format_version_message(found: Any, supported: int, manifest: dict[str, Any]) -> str:
    """Why format version ``found`` cannot be read, with the fix: upgrade for a newer one, re-export for an older."""
    is_int = isinstance(found, int) and not isinstance(found, bool)
    shown = V._show_int(found) if is_int else repr(found)[:40]  # a 100,000-digit int cannot even be repr'd
    base = f"bundle format version {shown} is not supported (ffn-edge {__version__} reads up to version {supported})"
    if isinstance(found, int) and not isinstance(found, bool) and found > supported:
        writer = _writer_version(manifest)
        at_least = f" to >= {writer}, the version that wrote it" if writer else " (this bundle is newer)"
        return f"{base}: upgrade ffn-edge{at_least}"
    return f"{base}: re-export the bundle with this ffn-edge (ffn-export)"


def _writer_version(manifest: dict[str, Any]) -> str | None:
    """The ffn-edge version the exporter recorded (``extra.exporter.ffn_edge``), if it looks like one."""
    exporter = (manifest.get("extra") or {}).get("exporter") if isinstance(manifest.get("extra"), dict) else None
    v = exporter.get("ffn_edge") if isinstance(exporter, dict) else None
    if not (isinstance(v, str) and _VERSION.fullmatch(v)):
        return None
    return v if _numbers(v) > _numbers(__version__) else None  # "upgrade to >= this one" would not help


def _numbers(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version)[:4])
