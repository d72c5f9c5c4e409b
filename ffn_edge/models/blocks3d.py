"""Building blocks of the 3-D backbones (SlowFast, X3D): conv-BN units, the residual block, SE.

A 3-D backbone reads a whole clip ``(B, C, T, H, W)`` at once, so it overrides
``VideoClassifier.clip_logits`` instead of ``forward_frames`` (``Clip3DClassifier``). Its residual
blocks are ``ResBlock3D``: ``act(branch(x) + shortcut(x))`` with the branch registered first, so
its first convolution is the first layer the converter finds in the block — that is where the
paper (and the authors' SlowFast code, ``adaconv`` before ``a``) puts Weight Alteration, on the
residual branch only. No converter hook is needed for that.
"""

from __future__ import annotations

import torch
from torch import nn

from ..core.validate import DEFAULT_SHIFT
from .base import VideoClassifier

Triple = tuple[int, int, int]


def round_width(width: float, multiplier: float, divisor: int = 8, min_width: int | None = None) -> int:
    """Channels ``width * multiplier`` rounded to a multiple of ``divisor`` (X3D's / MobileNet's rule)."""
    w = width * multiplier
    floor = min_width or divisor
    out = max(floor, int(w + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * w else out


def conv_bn(cin: int, cout: int, kernel: Triple, stride: Triple = (1, 1, 1), groups: int = 1,
            act: nn.Module | None = None) -> nn.Sequential:
    """Conv3d (no bias, 'same' padding) + BatchNorm3d (+ activation)."""
    pad = tuple(k // 2 for k in kernel)
    layers: list[nn.Module] = [nn.Conv3d(cin, cout, kernel, stride, pad, groups=groups, bias=False),
                               nn.BatchNorm3d(cout)]
    if act is not None:
        layers.append(act)
    return nn.Sequential(*layers)


class SqueezeExcite3D(nn.Module):
    """Squeeze-and-Excitation (Hu et al. 2018) as X3D uses it: global pool, 1x1x1 down, ReLU, up, sigmoid."""

    def __init__(self, channels: int, ratio: float = 0.0625) -> None:
        super().__init__()
        hidden = round_width(channels, ratio)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.down = nn.Conv3d(channels, hidden, 1)
        self.relu = nn.ReLU(inplace=True)
        self.up = nn.Conv3d(hidden, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.up(self.relu(self.down(self.pool(x)))))


class ResBlock3D(nn.Module):
    """``relu(branch(x) + shortcut(x))``; a 1x1x1 conv-BN shortcut where shape or stride changes."""

    def __init__(self, branch: nn.Module, cin: int, cout: int, spatial_stride: int) -> None:
        super().__init__()
        self.branch = branch  # registered first: its first conv gets Weight Alteration
        self.shortcut = (conv_bn(cin, cout, (1, 1, 1), (1, spatial_stride, spatial_stride))
                         if cin != cout or spatial_stride != 1 else nn.Identity())
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.branch(x) + self.shortcut(x))


class Clip3DClassifier(VideoClassifier):
    """A backbone that sees the clip as a volume: ``(B, T, C, H, W)`` -> ``(B, C, T, H, W)`` -> logits."""

    block_types: tuple[type[nn.Module], ...] = (ResBlock3D,)

    def classifier_head(self) -> nn.Linear:
        return self.fc

    def clip_logits(self, clip: torch.Tensor, n_frames: int) -> torch.Tensor:
        return self.forward_volume(clip.transpose(1, 2))

    def forward_volume(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, K)`` of volumes ``(B, 3, T, H, W)``; backbones implement it."""
        raise NotImplementedError

    def forward_frames(self, x: torch.Tensor) -> torch.Tensor:
        raise TypeError(f"{type(self).__name__} is a 3-D network: it has no per-frame forward (no step graphs)")


def init_weights(model: nn.Module) -> None:
    """Kaiming (fan_out) for convolutions, as PySlowFast's ``init_weights``; norms start at (1, 0)."""
    for m in model.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.01)
            nn.init.zeros_(m.bias)


def check_no_shift(arch: str, shift: str) -> None:
    """3-D backbones have no temporal shift; a causal request must not pass silently."""
    if shift != DEFAULT_SHIFT:
        raise ValueError(f"{arch} has no temporal shift: shift={shift!r} applies to the TSM backbones only")
