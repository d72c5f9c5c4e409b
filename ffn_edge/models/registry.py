"""Model registry and ``create_model``: a model is fully described by a ModelConfig.

The config is what a checkpoint stores, so ``create_model(config)`` rebuilds the exact module tree
a checkpoint's tensors belong to. A plain TSM or a Separated-Training model is the same class with
one sub-network.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..core import defaults as D
from ..core import validate as V
from ..core.errors import ConfigError
from ..core.sampling import frame_count_set
from .base import VideoClassifier
from .blocks3d import check_no_shift
from .convert import make_frame_flexible
from .slowfast import SlowFast
from .tea_resnet import TEAResNet
from .tsm_mobilenetv2 import TSMMobileNetV2
from .tsm_resnet import BasicBlock, Bottleneck, TSMResNet
from .uniformer import UniFormer
from .x3d import X3D

log = logging.getLogger("ffn_edge")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    arch: str
    num_classes: int
    frame_counts: tuple[int, ...] = D.FRAME_COUNTS
    specialised_norm: bool = True
    weight_alteration: bool = True
    dropout: float = 0.5
    shift_div: int = 8
    width_mult: float = 1.0  # channel multiplier (small models for CPU experiments)
    shift: str = V.DEFAULT_SHIFT  # temporal shift direction, V.SHIFT_MODES ("causal": past -> present only)
    # Fidelity options (where the released weights' authors differ; see docs/import.md):
    slow_frames: str = "linspace"  # SlowFast slow-pathway frames, V.SLOW_FRAME_RULES (PySlowFast: linspace)
    mta_shift_div: int = 4  # TEA: MTA's last group starts as a shift of 1/mta_shift_div each way (authors: 2)
    drop_path: float = 0.0  # UniFormer: stochastic depth, max rate of the linear rule (authors: 0.1-0.2)
    wa_init_std: float = 0.0  # Weight Alteration init N(0, std) (0: identity; the authors' code: 1e-3)

    def __post_init__(self) -> None:
        """Every field's type and range (``runtime.validate``), before anything is built from it."""
        object.__setattr__(self, "frame_counts", frame_count_set(self.frame_counts))
        V.check_model_config(dataclasses.asdict(self), tuple(MODELS))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(ModelConfig)}
        if not isinstance(d, dict):
            raise ValueError(f"model config must be an object, got {type(d).__name__}")
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        V.check_model_config(d, tuple(MODELS))  # strict types first: no 10.5 classes, no "4" frames
        d = {"slow_frames": LEGACY_SLOW_FRAMES, **d}  # written before the option: they used every alpha-th frame
        return ModelConfig(**{**d, "frame_counts": tuple(d.get("frame_counts", D.FRAME_COUNTS))})


LEGACY_SLOW_FRAMES = "stride"  # the slow-frame rule of a stored config that does not name one

MODELS: dict[str, Callable[[ModelConfig], VideoClassifier]] = {}


def register_model(name: str) -> Callable:
    def deco(fn: Callable[[ModelConfig], VideoClassifier]) -> Callable[[ModelConfig], VideoClassifier]:
        MODELS[name] = fn
        return fn
    return deco


def _resnet(block: type, layers: tuple[int, int, int, int]) -> Callable[[ModelConfig], VideoClassifier]:
    def build(c: ModelConfig) -> VideoClassifier:
        return TSMResNet(block, layers, c.num_classes, c.dropout, c.shift_div, base_width=round(64 * c.width_mult),
                         shift=c.shift)
    return build


register_model("tsm_resnet18")(_resnet(BasicBlock, (2, 2, 2, 2)))
register_model("tsm_resnet34")(_resnet(BasicBlock, (3, 4, 6, 3)))
register_model("tsm_resnet50")(_resnet(Bottleneck, (3, 4, 6, 3)))


@register_model("tsm_mobilenetv2")
def _mobilenetv2(c: ModelConfig) -> VideoClassifier:
    return TSMMobileNetV2(c.num_classes, c.dropout, c.shift_div, width_mult=c.width_mult, shift=c.shift)


# 3-D backbones: a clip's frame count is SlowFast's fast-pathway T (slow: every 4th frame), X3D's T.
# Paper setting for SlowFast: frame_counts=(16, 32, 64); shift_div does not apply.
@register_model("slowfast_r50")
def _slowfast_r50(c: ModelConfig) -> VideoClassifier:
    check_no_shift(c.arch, c.shift)
    return SlowFast(c.num_classes, c.dropout, width_mult=c.width_mult, slow_frames=c.slow_frames)


@register_model("x3d_s")
def _x3d_s(c: ModelConfig) -> VideoClassifier:
    check_no_shift(c.arch, c.shift)
    return X3D(c.num_classes, c.dropout, width_mult=c.width_mult)
def _bidirectional_only(c: ModelConfig) -> None:
    """Refuse ``shift='causal'`` for a backbone that looks at later frames and has no causal form."""
    if c.shift != V.DEFAULT_SHIFT:
        raise ValueError(f"{c.arch} has no causal form (its temporal modules see later frames); "
                         f"use shift={V.DEFAULT_SHIFT!r}")


@register_model("tea_resnet50")
def _tea_resnet50(c: ModelConfig) -> VideoClassifier:
    """TEA on Res2Net-50 26w x 4s (the TEA paper's and the FFN authors' backbone); shift_div is unused."""
    _bidirectional_only(c)
    return TEAResNet((3, 4, 6, 3), c.num_classes, c.dropout, base_channels=round(64 * c.width_mult),
                     mta_shift_div=c.mta_shift_div)


@register_model("uniformer_s")
def _uniformer_s(c: ModelConfig) -> VideoClassifier:
    """UniFormer-S, video (depths 3/4/8/3, dims 64/128/320/512 x width_mult); shift_div is unused."""
    _bidirectional_only(c)
    return UniFormer(c.num_classes, c.dropout, width_mult=c.width_mult, drop_path=c.drop_path)


@dataclasses.dataclass
class LoadReport:
    """What a pretrained state dict did not cover, so nothing is silently ignored."""

    missing: list[str]
    unexpected: list[str]
    mismatched: list[str]  # present in both, different shape (e.g. ImageNet's 1000-class fc)

    def summary(self) -> str:
        parts = [f"{len(v)} {k} ({', '.join(v[:4])}{', ...' if len(v) > 4 else ''})"
                 for k, v in (("missing", self.missing), ("unexpected", self.unexpected),
                              ("shape-mismatched", self.mismatched)) if v]
        return "; ".join(parts) if parts else "all keys matched"


def load_pretrained(model: VideoClassifier, path: str | Path, partial: bool = False) -> LoadReport:
    """Load an ImageNet state dict (torchvision names) from a local .pth/.safetensors file.

    ``.pth`` files are read with ``weights_only=True``: no code from the file is executed. Any file
    that is not a readable state dict of tensors (a missing file, a FIFO, a pickle with code, a
    malformed safetensors file, a tensor instead of a dict) raises ConfigError with one line.
    """
    path = Path(path)
    state = _read_state_dict(path)
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    report = LoadReport(
        missing=sorted(k for k in own if k not in usable and not k.endswith("num_batches_tracked")),
        unexpected=sorted(k for k in state if k not in own),
        mismatched=sorted(k for k in state if k in own and own[k].shape != state[k].shape),
    )
    from ..weights_load import LoadSummary, check_pretrained, head_names

    check_pretrained(LoadSummary(len(usable), len(own), report.missing, report.unexpected, report.mismatched),
                     head_names(model), path, partial=partial)  # says what loaded, or refuses
    model.load_state_dict(usable, strict=False)
    log.info("pretrained %s: %s", path, report.summary())
    return report


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """{name: tensor} from a regular .pth (weights only) or .safetensors file, or one-line ConfigError."""
    from ..core.files import check_regular

    check_regular(path, ConfigError, follow_symlinks=True)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a foreign file may fail inside pickle, zipfile, safetensors or torch
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise ConfigError(f"{path}: not a readable weights file ({type(e).__name__}: {reason})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise ConfigError(f"{path}: not a state dict of named tensors (got {type(state).__name__})")
    return state


def create_model(config: ModelConfig, pretrained: str | Path | None = None,
                 partial: bool = False) -> VideoClassifier:
    """Build ``config.arch``, optionally load ImageNet weights, convert to its sub-networks."""
    model = MODELS[config.arch](config)
    if pretrained is not None:
        load_pretrained(model, pretrained, partial=partial)
    return make_frame_flexible(
        model,
        config.frame_counts,
        specialised_norm=config.specialised_norm,
        weight_alteration=config.weight_alteration,
        wa_init_std=config.wa_init_std,
    )
