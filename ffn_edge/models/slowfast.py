"""SlowFast-R50 (Feichtenhofer et al., ICCV 2019) for frame-flexible training.

Two pathways over one clip. The *fast* pathway sees every frame of the clip with 1/``BETA_INV``
of the channels and temporal kernels everywhere; the *slow* pathway sees every ``ALPHA``-th frame
with full channels and temporal kernels only in res4/res5. After the stem and res2-res4 a lateral
connection (a ``FUSION_KERNEL``x1x1 conv with temporal stride ``ALPHA``, BN, ReLU) turns fast
features into ``FUSION_RATIO`` x fast channels at the slow frame rate, concatenated to the slow ones.
The head pools each pathway over (T, H, W), concatenates them, dropout, linear.

Frame count: the clip's frame count n is the *fast* pathway's T; the slow pathway gets
``ceil(n / ALPHA)`` frames, picked by the model config's ``slow_frames`` rule: ``"linspace"``
(PySlowFast's ``pack_pathway_output``: ``linspace(0, n-1, n // ALPHA)`` truncated, e.g. frames 0, 5,
10, 15 of 16 — what PySlowFast's and the FFN authors' released weights were trained on; for an n that
is not a multiple of ALPHA it takes ``ceil(n / ALPHA)`` points so the laterals still line up) or
``"stride"`` (frames 0, ALPHA, 2*ALPHA, ...: the frames the lateral convolutions' stride lands on).
With the authors' setting (``ALPHA`` 4, their SLOWFAST_16x8_R50_FFN config), the paper's L/M/H =
16/32/64 fast frames are 4/8/16 slow frames.

The slow frames are taken inside the model (and so inside an exported graph): one input, the clip
the runtime already feeds every backbone (NTCHW) — no two-input graphs, which TensorRT users report
failing, and ``FFNRuntime`` stays unchanged.

Block layout follows PySlowFast's ResNet bottleneck ("a" Tx1x1, "b" 1x3x3 with the spatial stride,
"c" 1x1x1); the converter gives every norm (both pathways, every lateral BN) one copy per
sub-network and puts Weight Alteration in front of each block's "a" conv.
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks3d import Clip3DClassifier, ResBlock3D, conv_bn, init_weights

ALPHA = 4  # slow pathway: every ALPHA-th frame (the authors' FFN config; PySlowFast 8x8 R50)
BETA_INV = 8  # fast pathway: 1/BETA_INV of the slow pathway's channels
FUSION_RATIO = 2  # lateral output channels = FUSION_RATIO x fast channels
FUSION_KERNEL = 7  # lateral temporal kernel (PySlowFast 8x8: 7, 4x16: 5)
DEPTHS = (3, 4, 6, 3)  # R50
SLOW_TEMPORAL = (1, 1, 3, 3)  # temporal kernel of each stage's "a" conv, slow pathway (res2..res5)
FAST_TEMPORAL = (3, 3, 3, 3)


def bottleneck(cin: int, inner: int, cout: int, temporal: int, stride: int) -> ResBlock3D:
    """PySlowFast's bottleneck transform (Tx1x1, 1x3x3 stride, 1x1x1) in a residual block."""
    relu = nn.ReLU(inplace=True)
    branch = nn.Sequential(
        conv_bn(cin, inner, (temporal, 1, 1), act=relu),
        conv_bn(inner, inner, (1, 3, 3), (1, stride, stride), act=nn.ReLU(inplace=True)),
        conv_bn(inner, cout, (1, 1, 1)),
    )
    return ResBlock3D(branch, cin, cout, stride)


def slow_indices(n: int, alpha: int) -> torch.Tensor:
    """PySlowFast's slow frames of an n-frame clip: ``linspace(0, n-1, count).long()`` (float32, truncated).

    ``count`` is ``n // alpha`` as PySlowFast when alpha divides n, else ``ceil(n / alpha)`` (what the
    laterals' temporal stride produces, so slow and fused features keep the same length).
    """
    count = -(-n // alpha)
    return torch.linspace(0, n - 1, count).long()


class Lateral(nn.Module):
    """Fast -> slow connection: time-strided conv + BN + ReLU, concatenated to the slow features."""

    def __init__(self, fast_channels: int, alpha: int, kernel: int, ratio: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(fast_channels, fast_channels * ratio, (kernel, 1, 1), (alpha, 1, 1),
                              (kernel // 2, 0, 0), bias=False)
        self.bn = nn.BatchNorm3d(fast_channels * ratio)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, slow: torch.Tensor, fast: torch.Tensor) -> torch.Tensor:
        return torch.cat([slow, self.relu(self.bn(self.conv(fast)))], dim=1)


class SlowFast(Clip3DClassifier):
    def __init__(self, num_classes: int, dropout: float = 0.5, width_mult: float = 1.0, alpha: int = ALPHA,
                 fusion_kernel: int = FUSION_KERNEL, slow_frames: str = "linspace") -> None:
        super().__init__()
        if slow_frames not in ("linspace", "stride"):
            raise ValueError(f"slow_frames must be 'linspace' or 'stride', got {slow_frames!r}")
        self.slow_frames = slow_frames
        w = max(BETA_INV, round(64 * width_mult))  # slow stem width; the fast pathway gets w / BETA_INV
        f = w // BETA_INV
        self.alpha = alpha
        self.slow_stem = conv_bn(3, w, (1, 7, 7), (1, 2, 2), act=nn.ReLU(inplace=True))
        self.fast_stem = conv_bn(3, f, (5, 7, 7), (1, 2, 2), act=nn.ReLU(inplace=True))
        self.pool = nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))
        self.laterals = nn.ModuleList([Lateral(f, alpha, fusion_kernel, FUSION_RATIO)])
        slow_in, fast_in = w + f * FUSION_RATIO, f
        slow_stages, fast_stages = [], []
        for i, n in enumerate(DEPTHS):
            stride = 1 if i == 0 else 2
            s_inner, f_inner = w * 2**i, f * 2**i
            slow_stages.append(nn.Sequential(*(
                bottleneck(slow_in if j == 0 else s_inner * 4, s_inner, s_inner * 4, SLOW_TEMPORAL[i],
                           stride if j == 0 else 1) for j in range(n))))
            fast_stages.append(nn.Sequential(*(
                bottleneck(fast_in if j == 0 else f_inner * 4, f_inner, f_inner * 4, FAST_TEMPORAL[i],
                           stride if j == 0 else 1) for j in range(n))))
            fast_in = f_inner * 4
            slow_in = s_inner * 4
            if i < len(DEPTHS) - 1:  # laterals after res2, res3, res4 (not res5)
                self.laterals.append(Lateral(fast_in, alpha, fusion_kernel, FUSION_RATIO))
                slow_in += fast_in * FUSION_RATIO
        self.slow_stages = nn.ModuleList(slow_stages)
        self.fast_stages = nn.ModuleList(fast_stages)
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(slow_in + fast_in, num_classes)
        init_weights(self)

    def slow_pathway(self, x: torch.Tensor) -> torch.Tensor:
        """The slow pathway's frames of volumes ``(B, C, T, H, W)`` by the ``slow_frames`` rule.

        T is static in every exported graph (one graph per frame count), so the indices are constants there.
        """
        if self.slow_frames == "stride":
            return x[:, :, :: self.alpha]
        return x.index_select(2, slow_indices(int(x.shape[2]), self.alpha).to(x.device))

    def forward_volume(self, x: torch.Tensor) -> torch.Tensor:
        slow, fast = self.slow_pathway(x), x  # one input: the slow frames are picked inside the graph
        slow = self.pool(self.slow_stem(slow))
        fast = self.pool(self.fast_stem(fast))
        slow = self.laterals[0](slow, fast)
        for i, (s_stage, f_stage) in enumerate(zip(self.slow_stages, self.fast_stages, strict=True)):
            slow, fast = s_stage(slow), f_stage(fast)
            if i + 1 < len(self.laterals):
                slow = self.laterals[i + 1](slow, fast)
        feats = torch.cat([self.avgpool(slow).flatten(1), self.avgpool(fast).flatten(1)], dim=1)
        return self.fc(self.dropout(feats))

