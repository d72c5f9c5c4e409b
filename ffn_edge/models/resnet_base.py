"""The ResNet shape TSM-ResNet and TEA-ResNet share: stem, four stages, pooled linear head.

Like torchvision's ``VideoResNet`` serves r3d / mc3 / r2plus1d, one base holds what the sibling
backbones have in common (stem, head, init, the per-frame forward); each sibling builds only its stages
with its own block. Module names (``conv1``, ``bn1``, ``layer1..4``, ``fc``) are torchvision's, so
ImageNet and released checkpoints map one to one.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import VideoClassifier


class ResNet2D(VideoClassifier):
    """Stem and head of a 2-D ResNet that runs per frame; subclasses add ``layer1..4`` between them."""

    def _stem(self, channels: int) -> None:
        self.conv1 = nn.Conv2d(3, channels, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)

    def _head(self, channels: int, num_classes: int, dropout: float) -> None:
        """The pooled linear classifier, then He init of every convolution (after the stages exist)."""
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def classifier_head(self) -> nn.Linear:
        return self.fc

    def forward_frames(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))
