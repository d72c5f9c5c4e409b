"""Read a released ``.pth`` / ``.pth.tar`` / ``.pyth`` file: tensors only, no code from the file.

``torch.load(weights_only=True)``: a file whose pickle needs any global beyond tensors and plain
containers (numpy arrays, a yacs CfgNode, a pickled class) is refused with one line, never run.
Wrappers the source repositories save are unwrapped by an explicit list (``WRAPPER_KEYS``), and the
DataParallel prefix ``module.`` is removed from every name when all names carry it.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import torch

from ..core.errors import FFNError
from ..core.files import read_regular

MAX_SOURCE_BYTES = 1 << 34  # 16 GiB: larger than any released video checkpoint
# Keys under which the repositories store the model's state dict (checked in this order):
# TSM / FFN-pytorch 2D: "state_dict"; PySlowFast / FFN-pytorch 3D / UniFormer: "model_state"; some: "model".
WRAPPER_KEYS = ("state_dict", "model_state", "model")
DATA_PARALLEL = "module."


class ImportRefused(FFNError):
    """A source file cannot be imported (unreadable, foreign, or its tensors do not fit the table)."""


def read_source(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], str, str]:
    """(state dict, sha256 of the file, which wrapper held it) of a released checkpoint file."""
    import io

    path = Path(path)
    blob = read_regular(path, MAX_SOURCE_BYTES, ImportRefused, follow_symlinks=True)
    digest = hashlib.sha256(blob).hexdigest()
    try:
        obj = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - pickle, zipfile and torch raise many types for foreign files
        text = str(e)
        glob = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        if glob:
            raise ImportRefused(f"{path}: loading needs the pickled global {glob.group(1)} (refused: only "
                                "tensors are read, no code from the file runs); re-save its state dict") from None
        detail = re.search(r"WeightsUnpickler error: ([^\n]*)", text)
        first = (detail.group(1) if detail and detail.group(1).strip() else
                 (text.strip().splitlines() or [type(e).__name__])[0])
        raise ImportRefused(f"{path}: not a readable torch checkpoint ({type(e).__name__}: {first[:160]})") from None
    state, wrapper = _unwrap(path, obj)
    if state and all(k.startswith(DATA_PARALLEL) for k in state):
        state = {k[len(DATA_PARALLEL):]: v for k, v in state.items()}
        wrapper += "+module."
    return state, digest, wrapper


def _unwrap(path: Path, obj: object) -> tuple[dict[str, torch.Tensor], str]:
    if not isinstance(obj, dict):
        raise ImportRefused(f"{path}: holds a {type(obj).__name__}, not a state dict")
    wrapper = "none"
    for key in WRAPPER_KEYS:
        if isinstance(obj.get(key), dict):
            obj, wrapper = obj[key], key
            break
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad or not obj:
        what = f"entry {bad[0]!r} is not a named tensor" if bad else "it is empty"
        raise ImportRefused(f"{path}: not a state dict of named tensors ({what}; wrappers tried: "
                            f"{', '.join(WRAPPER_KEYS)})")
    return dict(obj), wrapper
