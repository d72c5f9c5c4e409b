"""The checkpoint: one ``.safetensors`` file, tensors plus JSON metadata in its header.

Metadata (key ``ffn_edge`` of the safetensors header): format version, the ModelConfig
(architecture and sub-network frame counts included), class names, input size, normalisation
mean/std and whatever the trainer adds (epoch, method, ...). Loading parses JSON and raw tensors
only — nothing is unpickled, so a checkpoint cannot execute code. A missing, truncated, corrupt or
foreign file raises CheckpointError with one line naming the file and what is wrong.

Integrity (format version 2): the header key ``ffn_edge_sha256`` is mandatory and is the sha256 of
the canonical safetensors header without that key (tensor names, dtypes, shapes, offsets and the
metadata) followed by the tensor data, so a changed byte anywhere (data, a dtype, a shape, the
metadata) is refused. Version 1 hashed the data only, and optionally: such files are refused with
the command that converts them (``python -m ffn_edge.checkpoint upgrade OLD NEW``, which requires
their data checksum to be present and to match). Every metadata value is checked against the limits
in ``ffn_edge.core.validate`` before a model is built.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .core import defaults as D
from .core import validate as V
from .core.atomic import atomic_write_bytes
from .core.errors import FFNError
from .core.files import open_regular, parse_json, read_regular
from .models import ModelConfig, VideoClassifier, create_model

FORMAT = "ffn-edge-checkpoint"
FORMAT_VERSION = 2
META_KEY = "ffn_edge"
HASH_KEY = "ffn_edge_sha256"  # sha256 of the canonical header (without this key), then the tensor data
V1_HASH_KEY = "ffn_edge_data_sha256"  # format 1: sha256 of the tensor data only
MAX_CHECKPOINT_BYTES = 1 << 36  # 64 GiB
UPGRADE = "python -m ffn_edge.checkpoint upgrade OLD NEW"


class CheckpointError(FFNError):
    """A checkpoint cannot be read: missing, truncated, corrupt, foreign or incompatible."""


@dataclasses.dataclass
class CheckpointMeta:
    config: ModelConfig
    class_names: list[str]
    input_size: int = D.INPUT_SIZE  # square crop fed to the network
    resize_shorter: int = D.RESIZE_SHORTER  # shorter side before the centre crop
    mean: tuple[float, float, float] = D.IMAGENET_MEAN
    std: tuple[float, float, float] = D.IMAGENET_STD
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)  # trainer's notes

    def to_json(self) -> str:
        d = dataclasses.asdict(self)
        d["config"] = self.config.to_dict()
        return json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION, **d}, sort_keys=True)

    @staticmethod
    def from_json(text: str) -> CheckpointMeta:
        """Parse and check metadata (types, ranges, consistency); ValueError names the first bad field."""
        d = parse_json(text, "metadata", CheckpointError)
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ValueError("metadata is not ffn-edge checkpoint metadata")
        if d.get("format_version") == 1:
            raise ValueError(f"format version 1 has no checksum over its header; convert it once with `{UPGRADE}`")
        if d.get("format_version") != FORMAT_VERSION:
            newer = isinstance(d.get("format_version"), int) and d["format_version"] > FORMAT_VERSION
            raise ValueError(f"format version {d.get('format_version')!r} is not supported "
                             f"(this ffn-edge reads version {FORMAT_VERSION})"
                             + ("; it was written by a newer ffn-edge: upgrade ffn-edge" if newer else ""))
        return CheckpointMeta.from_dict(d)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> CheckpointMeta:
        """Metadata from its parsed JSON, every value checked (ranges in ``runtime.validate``)."""
        for key in ("config", "class_names", "input_size", "resize_shorter", "mean", "std"):
            if key not in d:
                raise ValueError(f"metadata has no {key!r}")
        config = ModelConfig.from_dict(d["config"])
        V.check_preprocessing(d["input_size"], d["resize_shorter"], d["mean"], d["std"])
        extra = d.get("extra", {})
        if not isinstance(extra, dict):
            raise ValueError("extra must be an object")
        return CheckpointMeta(
            config=config,
            class_names=V.check_class_names(d["class_names"], config.num_classes),
            input_size=d["input_size"],
            resize_shorter=d["resize_shorter"],
            mean=tuple(float(v) for v in d["mean"]),
            std=tuple(float(v) for v in d["std"]),
            extra=dict(extra),
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
    atomic_write_bytes(path, _sealed(tensors, {META_KEY: meta.to_json()}))


def _sealed(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """The safetensors bytes with HASH_KEY added (tensor offsets do not depend on the metadata)."""
    header, data = _split(Path("<new checkpoint>"), st_save(tensors, metadata=metadata))
    return st_save(tensors, metadata={**metadata, HASH_KEY: _digest(header, data)})


def _digest(header: dict[str, Any], data: memoryview | bytes) -> str:
    """sha256 of the canonical header without HASH_KEY, then of the tensor data."""
    meta = {k: v for k, v in (header.get("__metadata__") or {}).items() if k != HASH_KEY}
    canon = {**{k: v for k, v in header.items() if k != "__metadata__"}, "__metadata__": meta}
    h = hashlib.sha256(json.dumps(canon, sort_keys=True, separators=(",", ":")).encode("utf-8"))
    h.update(data)
    return h.hexdigest()


def _split(path: Path, blob: bytes) -> tuple[dict[str, Any], memoryview]:
    """(parsed safetensors header, tensor data) of a whole file; lengths and types checked."""
    if len(blob) < 8:
        raise CheckpointError(f"{path}: not a readable safetensors checkpoint (only {len(blob)} bytes)")
    n = int.from_bytes(blob[:8], "little")
    if n > min(V.MAX_SAFETENSORS_HEADER, len(blob) - 8):
        raise CheckpointError(f"{path}: not a readable safetensors checkpoint (header length {n} "
                              f"in a {len(blob)}-byte file)")
    header, data = _header(path, blob[8 : 8 + n]), memoryview(blob)[8 + n :]
    offsets = [e.get("data_offsets") for k, e in header.items() if k != "__metadata__" and isinstance(e, dict)]
    need = max((o[-1] for o in offsets if isinstance(o, list) and o and isinstance(o[-1], int)), default=0)
    if len(data) < need:
        raise CheckpointError(f"{path}: not a readable safetensors checkpoint (truncated: {len(data)} bytes of "
                              f"tensor data, the header describes {need})")
    return header, data


def _header(path: Path, raw: bytes) -> dict[str, Any]:
    header = parse_json(raw, f"{path}: not a readable safetensors checkpoint: header", CheckpointError)
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(header, dict) or not isinstance(meta if meta is not None else {}, dict) \
            or not all(isinstance(v, str) for v in (meta or {}).values()):
        raise CheckpointError(f"{path}: not a readable safetensors checkpoint (malformed header)")
    header["__metadata__"] = meta or {}
    return header


def read_meta(path: str | os.PathLike[str]) -> CheckpointMeta:
    """The checked metadata of a checkpoint, reading only its header (the checksum is not verified)."""
    path = Path(path)
    fd = open_regular(path, CheckpointError, follow_symlinks=True)
    with os.fdopen(fd, "rb") as f:
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if not 0 <= n <= min(V.MAX_SAFETENSORS_HEADER, os.fstat(f.fileno()).st_size - 8):
            raise CheckpointError(f"{path}: not a readable safetensors checkpoint (bad header length)")
        header = _header(path, f.read(n))
    return _meta(path, header)


def load_checkpoint(
    path: str | os.PathLike[str], with_extra: bool = False
) -> tuple[VideoClassifier, CheckpointMeta] | tuple[VideoClassifier, CheckpointMeta, dict[str, torch.Tensor]]:
    """Rebuild the model a checkpoint describes and load its tensors (strictly, shapes checked).

    Order: read the regular file (bounded), parse and check the header and the metadata, verify the
    mandatory checksum, parse the tensors, and only then build the model.
    """
    path = Path(path)
    blob = read_regular(path, MAX_CHECKPOINT_BYTES, CheckpointError, follow_symlinks=True)
    header, data = _split(path, blob)
    meta = _meta(path, header)
    want = header["__metadata__"].get(HASH_KEY)
    if want is None:
        raise CheckpointError(f"{path}: no {HASH_KEY} checksum (it is mandatory): the file was altered or "
                              "not written by ffn-edge")
    if _digest(header, data) != want:
        raise CheckpointError(f"{path}: header or tensor data does not match its checksum (the file is corrupt)")
    tensors = _tensors(path, blob)
    model = create_model(meta.config)
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    if missing:
        raise CheckpointError(f"{path}: {len(missing)} tensors missing for {meta.config.arch} "
                              f"(e.g. {', '.join(missing[:3])}): the file does not match its metadata")
    bad = [k for k in own if tensors[k].shape != own[k].shape or tensors[k].dtype != own[k].dtype]
    if bad:
        raise CheckpointError(f"{path}: tensor {bad[0]} is {tuple(tensors[bad[0]].shape)} {tensors[bad[0]].dtype}, "
                              f"the model expects {tuple(own[bad[0]].shape)} {own[bad[0]].dtype}")
    model.load_state_dict({k: tensors[k] for k in own})
    model.eval()
    if with_extra:
        return model, meta, {k: v for k, v in tensors.items() if k not in own}
    return model, meta


def _tensors(path: Path, blob: bytes) -> dict[str, torch.Tensor]:
    try:
        return st_load(blob)
    except (SafetensorError, ValueError, RuntimeError, TypeError) as e:
        raise CheckpointError(f"{path}: tensor data is corrupt ({str(e).splitlines()[0][:200]})") from None


def _meta(path: Path, header: dict[str, Any]) -> CheckpointMeta:
    raw = header["__metadata__"].get(META_KEY)
    if raw is None:
        raise CheckpointError(f"{path}: safetensors file without ffn-edge metadata (not an ffn-edge checkpoint)")
    try:
        return CheckpointMeta.from_json(raw)
    except (ValueError, KeyError, TypeError, CheckpointError) as e:
        raise CheckpointError(f"{path}: bad ffn-edge metadata ({str(e).splitlines()[0]})") from None


def upgrade_checkpoint(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Rewrite a format-1 checkpoint as format 2; its data checksum must be present and match."""
    src = Path(src)
    blob = read_regular(src, MAX_CHECKPOINT_BYTES, CheckpointError, follow_symlinks=True)
    header, data = _split(src, blob)
    d = parse_json(header["__metadata__"].get(META_KEY, "null"), f"{src}: metadata", CheckpointError)
    if not isinstance(d, dict) or d.get("format") != FORMAT or d.get("format_version") != 1:
        raise CheckpointError(f"{src}: not a format-1 ffn-edge checkpoint")
    want = header["__metadata__"].get(V1_HASH_KEY)
    if want is None or hashlib.sha256(data).hexdigest() != want:
        raise CheckpointError(f"{src}: its data checksum is missing or does not match; refusing to re-seal it")
    try:
        meta = CheckpointMeta.from_dict(d)
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{src}: bad ffn-edge metadata ({str(e).splitlines()[0]})") from None
    atomic_write_bytes(dst, _sealed(_tensors(src, blob), {META_KEY: meta.to_json()}))


def _cli() -> int:
    import sys

    from .core.errors import ConfigError

    if len(sys.argv) != 4 or sys.argv[1] != "upgrade":
        raise ConfigError(f"usage: {UPGRADE}")
    upgrade_checkpoint(sys.argv[2], sys.argv[3])
    return 0


if __name__ == "__main__":
    from .core.errors import run_cli

    run_cli("ffn_edge.checkpoint", _cli)
