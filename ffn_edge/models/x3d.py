"""X3D-S (Feichtenhofer, CVPR 2020): an efficient 3-D network for the edge, 13 frames at 160 px published.

X3D-S is X3D-M's network (width factor 2, depth factor 2.2: stages of 3/5/11/7 blocks with 24/48/96/192
output channels, bottleneck expansion 2.25) run on fewer frames and smaller frames. Every block:
1x1x1 conv, BN, ReLU; 3x3x3 *depth-wise* conv (spatial stride in the first block of a stage), BN,
Squeeze-Excitation (every other block), swish; 1x1x1 conv, BN; residual sum, ReLU. The stem is a 1x3x3
conv (stride 2) then a depth-wise 5x1x1 temporal conv; the head is 1x1x1 conv to 432 channels, BN,
ReLU, global pool, a 2048-wide 1x1x1 "lin5" + ReLU, dropout, linear. Layout and rounding as PySlowFast's
X3D; the converter puts Weight Alteration in front of each block's first (1x1x1) conv and gives every
BN (stem, blocks, shortcuts, head) one copy per sub-network. Frame count = the clip's T, all at once.
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks3d import Clip3DClassifier, ResBlock3D, SqueezeExcite3D, conv_bn, init_weights, round_width

STAGE_DEPTHS = (3, 5, 11, 7)  # ceil(2.2 x (1, 2, 5, 3))
STAGE_WIDTHS = (24, 48, 96, 192)  # 2 x (12, 24, 48, 96)
STEM_WIDTH = 24
EXPANSION = 2.25
HEAD_WIDTH = 2048
SE_RATIO = 0.0625


def x3d_block(cin: int, cout: int, stride: int, se: bool) -> ResBlock3D:
    """X3D's bottleneck: 1x1x1, depth-wise 3x3x3 (+ SE), swish, 1x1x1, in a residual block."""
    inner = int(EXPANSION * cout)
    branch = nn.Sequential(
        conv_bn(cin, inner, (1, 1, 1), act=nn.ReLU(inplace=True)),
        conv_bn(inner, inner, (3, 3, 3), (1, stride, stride), groups=inner),
        SqueezeExcite3D(inner, SE_RATIO) if se else nn.Identity(),
        nn.SiLU(),  # swish
        conv_bn(inner, cout, (1, 1, 1)),
    )
    return ResBlock3D(branch, cin, cout, stride)


class X3D(Clip3DClassifier):
    def __init__(self, num_classes: int, dropout: float = 0.5, width_mult: float = 1.0) -> None:
        super().__init__()
        stem = round_width(STEM_WIDTH, width_mult)
        self.stem = nn.Sequential(
            nn.Conv3d(3, stem, (1, 3, 3), (1, 2, 2), (0, 1, 1), bias=False),
            conv_bn(stem, stem, (5, 1, 1), groups=stem, act=nn.ReLU(inplace=True)),
        )
        cin, stages = stem, []
        for depth, width in zip(STAGE_DEPTHS, STAGE_WIDTHS, strict=True):
            cout = round_width(width, width_mult)
            stages.append(nn.Sequential(*(x3d_block(cin if j == 0 else cout, cout, 2 if j == 0 else 1, se=j % 2 == 0)
                                          for j in range(depth))))
            cin = cout
        self.stages = nn.Sequential(*stages)
        head_in = int(EXPANSION * cin)
        head_out = max(8, round(HEAD_WIDTH * width_mult))
        self.head_conv = conv_bn(cin, head_in, (1, 1, 1), act=nn.ReLU(inplace=True))
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.lin5 = nn.Conv3d(head_in, head_out, 1, bias=False)
        self.lin5_relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(head_out, num_classes)
        init_weights(self)

    def forward_volume(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head_conv(self.stages(self.stem(x)))
        x = self.lin5_relu(self.lin5(self.avgpool(x)))
        return self.fc(self.dropout(x.flatten(1)))
