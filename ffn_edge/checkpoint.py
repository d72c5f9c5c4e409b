"""The checkpoint: one ``.safetensors`` file, tensors plus JSON metadata in its header.

Metadata (key ``ffn_edge`` of the safetensors header): format version, the ModelConfig
(architecture and sub-network frame counts included), class names, input size, normalisation
mean/std and whatever the trainer adds (epoch, method, ...). Loading parses JSON and raw tensors
only — nothing is unpickled, so a checkpoint cannot execute code. A missing, truncated, corrupt or
foreign file raises CheckpointError with one line naming the file and what is wrong.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .models import ModelConfig, VideoClassifier, create_model
from .runtime.atomic import atomic_write_bytes
from .runtime.errors import FFNError

FORMAT = "ffn-edge-checkpoint"
FORMAT_VERSION = 1
META_KEY = "ffn_edge"
HASH_KEY = "ffn_edge_data_sha256"  # sha256 of the tensor data: catches corruption past the header


class CheckpointError(FFNError):
    """A checkpoint cannot be read: missing, truncated, corrupt, foreign or incompatible."""


@dataclasses.dataclass
class CheckpointMeta:
    config: ModelConfig
    class_names: list[str]
    input_size: int = 224  # square crop fed to the network
    resize_shorter: int = 256  # shorter side before the centre crop
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)  # trainer's notes

    def to_json(self) -> str:
        d = dataclasses.asdict(self)
        d["config"] = self.config.to_dict()
        return json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION, **d}, sort_keys=True)

    @staticmethod
    def from_json(text: str) -> CheckpointMeta:
        d = json.loads(text)
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ValueError("metadata is not ffn-edge checkpoint metadata")
        if d.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"format version {d.get('format_version')!r} is not supported "
                             f"(this ffn-edge reads version {FORMAT_VERSION})")
        return CheckpointMeta(
            config=ModelConfig.from_dict(d["config"]),
            class_names=[str(c) for c in d["class_names"]],
            input_size=int(d["input_size"]),
            resize_shorter=int(d["resize_shorter"]),
            mean=tuple(float(v) for v in d["mean"]),
            std=tuple(float(v) for v in d["std"]),
            extra=dict(d.get("extra", {})),
        )


def save_checkpoint(
    path: str | os.PathLike[str],
    model: VideoClassifier,
    meta: CheckpointMeta,
    extra_tensors: dict[str, torch.Tensor] | None = None,
) -> None:
    """Atomically write the model's tensors (plus optional ``extra_tensors``) and ``meta``."""
    if model.num_classes_out() != len(meta.class_names):
        raise ValueError(f"model has {model.num_classes_out()} classes but {len(meta.class_names)} class names")
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    for k, v in (extra_tensors or {}).items():
        if k in tensors:
            raise ValueError(f"extra tensor {k!r} collides with a model tensor")
        tensors[k] = v.detach().cpu().contiguous()
    # Tensor offsets do not depend on the metadata, so the data section is the same in both saves.
    digest = hashlib.sha256(_data_section(st_save(tensors))).hexdigest()
    atomic_write_bytes(path, st_save(tensors, metadata={META_KEY: meta.to_json(), HASH_KEY: digest}))


def _data_section(blob: bytes) -> bytes:
    header_len = int.from_bytes(blob[:8], "little")
    return blob[8 + header_len :]


def read_meta(path: str | os.PathLike[str]) -> CheckpointMeta:
    """The metadata of a checkpoint, without reading its tensors."""
    path = Path(path)
    with _open(path) as f:
        return _meta(path, f)


def load_checkpoint(
    path: str | os.PathLike[str], with_extra: bool = False
) -> tuple[VideoClassifier, CheckpointMeta] | tuple[VideoClassifier, CheckpointMeta, dict[str, torch.Tensor]]:
    """Rebuild the model a checkpoint describes and load its tensors (strictly, shapes checked)."""
    path = Path(path)
    with _open(path) as f:
        meta = _meta(path, f)
        want = (f.metadata() or {}).get(HASH_KEY)
    blob = path.read_bytes()
    if want is not None and hashlib.sha256(_data_section(blob)).hexdigest() != want:
        raise CheckpointError(f"{path}: tensor data does not match its checksum (the file is corrupt)")
    try:
        tensors = st_load(blob)
    except SafetensorError as e:
        raise CheckpointError(f"{path}: tensor data is corrupt ({e})") from None
    model = create_model(meta.config)
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    if missing:
        raise CheckpointError(f"{path}: {len(missing)} tensors missing for {meta.config.arch} "
                              f"(e.g. {', '.join(missing[:3])}): the file does not match its metadata")
    bad = [k for k in own if tensors[k].shape != own[k].shape]
    if bad:
        raise CheckpointError(f"{path}: tensor {bad[0]} has shape {tuple(tensors[bad[0]].shape)}, "
                              f"the model expects {tuple(own[bad[0]].shape)}")
    model.load_state_dict({k: tensors[k] for k in own})
    model.eval()
    if with_extra:
        return model, meta, {k: v for k, v in tensors.items() if k not in own}
    return model, meta


def _open(path: Path):
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        return safe_open(str(path), framework="pt")
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors checkpoint ({str(e).splitlines()[0]})") from None


def _meta(path: Path, f: Any) -> CheckpointMeta:
    raw = (f.metadata() or {}).get(META_KEY)
    if raw is None:
        raise CheckpointError(f"{path}: safetensors file without ffn-edge metadata (not an ffn-edge checkpoint)")
    try:
        return CheckpointMeta.from_json(raw)
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: bad ffn-edge metadata ({e})") from None
