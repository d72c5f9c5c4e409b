"""``import_checkpoint``: a released checkpoint file -> an ffn-edge model and its checkpoint metadata.

Modes: an FFN source (``SourceSpec.ffn``) becomes an FFN model with every sub-network's norms and
Weight Alterations (``as_="ffn"``); a plain source becomes a Separated-Training model for one frame
count (``as_="st"``) or an FFN starting point (``as_="ffn-init"``: each norm copied into every
sub-network's copy, Weight Alteration the identity). The metadata records the source, the file's
sha256, the table's counts and the source's preprocessing, so ``ffn-eval`` / ``ffn-export`` /
``ffn-train --init`` take the written checkpoint like any other.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import CheckpointMeta
from ..core.errors import ConfigError
from ..models import ModelConfig, VideoClassifier, create_model
from .classes import load_class_names
from .loader import read_source
from .place import ModelIndex, Placement, place
from .sources import find_spec
from .spec import SourceSpec

MODES = ("ffn", "st", "ffn-init")
FFN_INIT_FRAMES = {"slowfast_r50": (16, 32, 64)}  # the paper's L/M/H; every other backbone: 4/8/16
DEFAULT_FFN_FRAMES = (4, 8, 16)
CHANNEL_ORDERS = ("RGB", "BGR")


@dataclasses.dataclass
class Imported:
    model: VideoClassifier
    meta: CheckpointMeta
    placement: Placement
    seconds: float  # reading, placing and checking (not writing)


def import_checkpoint(source: str, arch: str, ckpt: str | os.PathLike[str], classes: str, *,
                      as_: str | None = None, frames: Sequence[int] | None = None, width_mult: float = 1.0,
                      channels: str | None = None, seed: int = 0) -> Imported:
    """Read ``ckpt`` (tensors only), place it by the ``source`` x ``arch`` table, or refuse with one line."""
    t0 = time.perf_counter()
    spec = find_spec(source, arch)
    mode = _mode(spec, as_)
    state, digest, wrapper = read_source(ckpt)
    counts = _frames(spec, mode, frames)
    head_classes = _head_classes(spec, state)
    names = load_class_names(classes, None if spec.new_head else head_classes)
    config = ModelConfig(arch, len(names), frame_counts=counts, width_mult=width_mult,
                         **{**({"weight_alteration": False} if mode == "st" else {}), **dict(spec.config)})
    torch.manual_seed(seed)  # a new head (ImageNet sources) and modules the source lacks start reproducibly
    model = create_model(config)
    p = place(state, spec, model)
    order = channels or spec.preprocess.channels
    if order not in CHANNEL_ORDERS:
        raise ConfigError(f"--channels must be one of {', '.join(CHANNEL_ORDERS)}, got {order!r}")
    mean, std = spec.preprocess.mean, spec.preprocess.std
    if order == "BGR":  # fold BGR into the input convs: the model then takes RGB like every ffn-edge model
        index = ModelIndex(model)
        for name in spec.first_convs:
            dest = index.shared[name]
            p.values[dest] = p.values[dest].flip(1)
        mean, std = mean[::-1], std[::-1]
    model.load_state_dict({**model.state_dict(), **p.values})
    model.eval()
    seconds = time.perf_counter() - t0
    meta = CheckpointMeta(config=config, class_names=names, input_size=spec.preprocess.input_size,
                          resize_shorter=spec.preprocess.resize_shorter, mean=tuple(mean), std=tuple(std),
                          extra={"import": _record(spec, mode, Path(ckpt), digest, wrapper, p, order)})
    return Imported(model, meta, p, seconds)


def _mode(spec: SourceSpec, as_: str | None) -> str:
    if as_ is not None and as_ not in MODES:
        raise ConfigError(f"--as must be one of {', '.join(MODES)}, got {as_!r}")
    if spec.ffn:
        if as_ not in (None, "ffn"):
            raise ConfigError(f"{spec.source} checkpoints are FFN checkpoints: --as {as_} applies to plain ones "
                              "(omit --as)")
        return "ffn"
    if as_ == "ffn":
        raise ConfigError(f"{spec.source} checkpoints are plain (one frame count): use --as st or --as ffn-init")
    return as_ or "st"


def _frames(spec: SourceSpec, mode: str, frames: Sequence[int] | None) -> tuple[int, ...]:
    if mode == "ffn":
        counts = tuple(frames) if frames else spec.frame_counts
        if len(set(counts)) != len(spec.tags):
            raise ConfigError(f"{spec.source} checkpoints hold {len(spec.tags)} sub-networks "
                              f"({'/'.join(spec.tags)}): --frames needs {len(spec.tags)} distinct counts")
        return counts
    if mode == "st":
        counts = tuple(frames) if frames else spec.frame_counts[:1]
        if len(counts) != 1:
            raise ConfigError(f"--as st makes a one-frame-count model: give one --frames value, got {len(counts)}")
        return counts
    return tuple(frames) if frames else FFN_INIT_FRAMES.get(spec.arch, DEFAULT_FFN_FRAMES)


def _head_classes(spec: SourceSpec, state: dict[str, torch.Tensor]) -> int | None:
    """Rows of the source's classifier weight (the class count --classes must match), if it has one."""
    for name, value in state.items():
        if name.endswith("weight") and value.dim() == 2 and any(r.head and r.match(name) for r in spec.rules):
            return int(value.shape[0])
    return None


def _record(spec: SourceSpec, mode: str, path: Path, digest: str, wrapper: str, p: Placement,
            channels: str) -> dict[str, Any]:
    pre = {**spec.preprocess.to_dict(), "channels": channels}
    if channels == "BGR":
        pre["folded"] = "trained on BGR: the input convolutions' channels were reversed, the model takes RGB"
    return {
        "source": spec.source, "file": path.name, "sha256": digest, "wrapper": wrapper, "as": mode,
        "tensors_mapped": len(p.mapped), "ignored": len(p.ignored), "left_at_init": p.left_at_init,
        "identity_weight_alterations": len(p.identity_wa), "new_head": p.new_head, "preprocess": pre,
    }
