"""TEA-ResNet-50 (Li et al., CVPR 2020): Motion Excitation + Multiple Temporal Aggregation.

As in TEA (and the FFN authors' TEA backbone), the network is a Res2Net-50 (26w x 4s): each
bottleneck splits its 1x1 conv's output into ``scale`` groups that a hierarchy of 3x3 convs
aggregates (each group also sees the previous group's output), and TEA adds two temporal modules:

* Motion Excitation (ME, ``MotionExcitation``) after the first 1x1 conv: a reduced feature's
  difference between frame t+1 (after a depth-wise 3x3 conv) and frame t, pooled, expanded back
  and turned into a channel attention ``x + x * (sigmoid(.) - 0.5)``. It has two BatchNorms.
* Multiple Temporal Aggregation (MTA): a channel-wise temporal convolution (kernel 3 over frames)
  before every group's spatial conv, the last group's initialised as a TSM shift (1/``mta_shift_div``
  of its channels from t+1, as many from t-1; the TEA and FFN authors' code uses 2: all channels
  shift, half each way), the others as the identity.

Everything temporal reads the frame count from the model's FrameContext, so one module serves
every frame count. For FFN, ``make_frame_flexible`` specialises every BatchNorm here — including
ME's two — and puts Weight Alteration TSM-style in front of each block's first 1x1 conv (declared
by ``wa_site``: the block's residual and ME are not altered).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..layers import FrameContext
from .resnet_base import ResNet2D


class MotionExcitation(nn.Module):
    """TEA's ME: channel attention from feature differences between consecutive frames."""

    def __init__(self, channels: int, ctx: FrameContext, reduction: int = 16) -> None:
        super().__init__()
        r = max(1, channels // reduction)
        self.ctx = ctx
        self.reduce = nn.Conv2d(channels, r, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(r)
        self.spatial = nn.Conv2d(r, r, 3, padding=1, groups=r, bias=False)
        self.expand = nn.Conv2d(r, channels, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.ctx.n_frames
        f = self.bn1(self.reduce(x))
        g = self.spatial(f)
        f5, g5 = f.view(-1, t, *f.shape[1:]), g.view(-1, t, *g.shape[1:])
        diff = g5[:, 1:] - f5[:, :-1]  # frame t+1 (spatially filtered) minus frame t
        diff = F.pad(diff, (0, 0, 0, 0, 0, 0, 0, 1)).flatten(0, 1)  # last frame: no motion (a Pad op: any batch)
        y = self.bn2(self.expand(diff.mean(dim=(2, 3), keepdim=True)))
        return x + x * (torch.sigmoid(y) - 0.5)


class TemporalConv(nn.Module):
    """Channel-wise temporal convolution (kernel 3 over frames) on ``(B*T, C, H, W)`` frames."""

    def __init__(self, channels: int, ctx: FrameContext, shift_init: bool, shift_div: int = 4) -> None:
        super().__init__()
        self.ctx = ctx
        self.conv = nn.Conv3d(channels, channels, (3, 1, 1), padding=(1, 0, 0), groups=channels, bias=False)
        with torch.no_grad():
            w = self.conv.weight.view(channels, 3)
            w.zero_()
            if shift_init:  # TSM shift: 1/shift_div from t+1, 1/shift_div from t-1, the rest stays
                fold = channels // shift_div
                w[:fold, 2] = 1
                w[fold : 2 * fold, 0] = 1
                w[2 * fold :, 1] = 1
            else:
                w[:, 1] = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.ctx.n_frames
        y = self.conv(x.view(-1, t, *x.shape[1:]).transpose(1, 2))  # (B, C, T, H, W)
        return y.transpose(1, 2).flatten(0, 1)


class TEABottleneck(nn.Module):
    """Res2Net bottleneck with ME after the 1x1 reduction and MTA in its hierarchical 3x3 convs."""

    expansion = 4
    wa_site = "conv1"  # Weight Alteration on the conv path, before the first conv (TSM-style)

    def __init__(self, cin: int, planes: int, stride: int, downsample: nn.Module | None, first: bool,
                 ctx: FrameContext, base_width: int = 26, scale: int = 4, mta_shift_div: int = 4) -> None:
        super().__init__()
        width = max(1, math.floor(planes * base_width / 64))
        self.width, self.scale, self.first = width, scale, first
        self.conv1 = nn.Conv2d(cin, width * scale, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width * scale)
        self.me = MotionExcitation(width * scale, ctx)
        self.temporal = nn.ModuleList(TemporalConv(width, ctx, i == scale - 1, mta_shift_div)
                                      for i in range(scale))
        self.convs = nn.ModuleList(nn.Conv2d(width, width, 3, stride, 1, bias=False) for _ in range(scale - 1))
        self.bns = nn.ModuleList(nn.BatchNorm2d(width) for _ in range(scale - 1))
        self.pool = nn.AvgPool2d(3, stride, 1) if first else nn.Identity()
        self.conv3 = nn.Conv2d(width * scale, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.me(self.relu(self.bn1(self.conv1(x))))
        groups = torch.split(out, self.width, dim=1)
        outs: list[torch.Tensor] = []
        for i in range(self.scale - 1):
            sp = groups[i] if i == 0 or self.first else outs[-1] + groups[i]  # hierarchical: previous group's output
            outs.append(self.relu(self.bns[i](self.convs[i](self.temporal[i](sp)))))
        outs.append(self.pool(self.temporal[-1](groups[-1])))
        out = self.bn3(self.conv3(torch.cat(outs, dim=1)))
        return self.relu(out + identity)


class TEAResNet(ResNet2D):
    def __init__(self, layers: tuple[int, int, int, int], num_classes: int, dropout: float = 0.5,
                 base_channels: int = 64, base_width: int = 26, scale: int = 4, mta_shift_div: int = 4) -> None:
        super().__init__()
        self.block_types: tuple[type[nn.Module], ...] = (TEABottleneck,)
        c = base_channels
        self._stem(c)
        cin = c
        for i, (n, stride) in enumerate(zip(layers, (1, 2, 2, 2), strict=True)):
            planes = c * 2**i
            blocks = []
            for j in range(n):
                down = None
                if j == 0 and (stride != 1 or cin != planes * 4):
                    down = nn.Sequential(nn.Conv2d(cin, planes * 4, 1, stride, bias=False), nn.BatchNorm2d(planes * 4))
                blocks.append(TEABottleneck(cin, planes, stride if j == 0 else 1, down, j == 0, self.ctx,
                                            base_width, scale, mta_shift_div))
                cin = planes * 4
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self._head(cin, num_classes, dropout)
