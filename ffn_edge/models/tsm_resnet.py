"""TSM-ResNet-18/34/50 (Lin et al. 2019) with torchvision-compatible parameter names.

Same module names as ``torchvision.models.resnet`` (conv1, bn1, layer1.0.conv1, ..., fc), so an
ImageNet state dict saved from torchvision loads directly. The temporal shift sits at the start of
each residual branch ("blockres", shift 1/8 of channels each way, or 1/4 from the past when causal),
and dropout precedes ``fc``.
"""

from __future__ import annotations

import torch
from torch import nn

from ..core.validate import DEFAULT_SHIFT
from ..layers import TemporalShift
from .resnet_base import ResNet2D


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def _conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, width: int, stride: int, downsample: nn.Module | None, shift: nn.Module):
        super().__init__()
        self.shift = shift
        self.conv1 = _conv3x3(cin, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(self.shift(x))))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int, downsample: nn.Module | None, shift: nn.Module):
        super().__init__()
        self.shift = shift
        self.conv1 = _conv1x1(cin, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride)  # stride on the 3x3, as torchvision (ResNet v1.5)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv1x1(width, width * 4)
        self.bn3 = nn.BatchNorm2d(width * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(self.shift(x))))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class TSMResNet(ResNet2D):
    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        layers: tuple[int, int, int, int],
        num_classes: int,
        dropout: float = 0.5,
        shift_div: int = 8,
        base_width: int = 64,
        shift: str = DEFAULT_SHIFT,
    ) -> None:
        super().__init__()
        self.block_types: tuple[type[nn.Module], ...] = (block,)
        w = base_width
        self._stem(w)
        cin = w
        for i, (n, stride) in enumerate(zip(layers, (1, 2, 2, 2), strict=True)):
            width = w * 2**i
            blocks = []
            for j in range(n):
                s = stride if j == 0 else 1
                down = None
                if s != 1 or cin != width * block.expansion:
                    down = nn.Sequential(_conv1x1(cin, width * block.expansion, s),
                                         nn.BatchNorm2d(width * block.expansion))
                blocks.append(block(cin, width, s, down, TemporalShift(self.ctx, shift_div, shift)))
                cin = width * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self._head(cin, num_classes, dropout)
