"""UniFormer-S for video (Li et al., ICLR 2022): local (conv) MHRA stages, then global (attention) ones.

Published video config of UniFormer-S: depths 3/4/8/3, dims 64/128/320/512, head dim 64, MLP ratio
4, qkv bias. Stage 1-2 blocks (``LocalBlock``) relate tokens by a learnable 5x5x5 depth-wise conv
between two 1x1x1 convs, with BatchNorm; stage 3-4 blocks (``GlobalBlock``) use self-attention over
all T'xH'xW' tokens, with LayerNorm. Every block starts with a dynamic position embedding (DPE: a
3x3x3 depth-wise conv, residual). The stem embeds 4x4 patches and halves T (kernel 3, stride 2);
later stages embed 2x2 patches; each embedding ends with a LayerNorm, the network with a
BatchNorm3d, then global average pooling and the head. Drop-path (stochastic depth on every
residual branch, rates rising linearly over the blocks to ``drop_path``, as the authors) is off by
default (the small runs here do not need it); the authors train with 0.1-0.2 and no dropout before
the head (``dropout=0``).

Frames come in as ``(B*T, 3, H, W)`` like every backbone here; the network regroups them into
``(B, 3, T, H, W)`` with the FrameContext's frame count and returns its clip logits once per frame
(the base class's average over T then gives them back exactly).

FFN (``make_frame_flexible``): every BatchNorm3d and LayerNorm is specialised; Weight Alteration
alters each block's *input* (``AlterationSite`` named by ``wa_site``), before the DPE, which is
where ST-Adapter inserts its adapter and where the paper's Fig. 5 (and the authors' code) put it.
"""

from __future__ import annotations

import torch
from torch import nn

from ..layers import AlterationSite
from .base import VideoClassifier

DEPTHS = (3, 4, 8, 3)
DIMS = (64, 128, 320, 512)
HEAD_DIM = 64
MLP_RATIO = 4


class PatchEmbed(nn.Module):
    """Conv3d patch embedding then LayerNorm over channels: ``(B, C, T, H, W)`` in and out."""

    def __init__(self, cin: int, cout: int, patch: int, temporal: bool) -> None:
        super().__init__()
        kt, st, pt = (3, 2, 1) if temporal else (1, 1, 0)
        self.proj = nn.Conv3d(cin, cout, (kt, patch, patch), (st, patch, patch), (pt, 0, 0))
        self.norm = nn.LayerNorm(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        return self.norm(x.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)


class DropPath(nn.Module):
    """Stochastic depth: in training, zero a residual branch per sample with probability ``p`` (scaled)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), device=x.device).bernoulli_(1 - self.p)
        return x * keep.to(x.dtype) / (1 - self.p)


class LocalBlock(nn.Module):
    """Local MHRA block (UniFormer's CBlock): DPE, BN -> 1x1 -> 5x5x5 depth-wise -> 1x1, BN -> conv MLP."""

    wa_site = "adapter"

    def __init__(self, dim: int, drop_path: float = 0.0) -> None:
        super().__init__()
        self.adapter = AlterationSite(dim, channel_dim=1, ndim=5)
        self.drop_path = DropPath(drop_path)
        self.pos_embed = nn.Conv3d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.BatchNorm3d(dim)
        self.conv1 = nn.Conv3d(dim, dim, 1)
        self.attn = nn.Conv3d(dim, dim, 5, padding=2, groups=dim)
        self.conv2 = nn.Conv3d(dim, dim, 1)
        self.norm2 = nn.BatchNorm3d(dim)
        hidden = dim * MLP_RATIO
        self.mlp = nn.Sequential(nn.Conv3d(dim, hidden, 1), nn.GELU(), nn.Conv3d(hidden, dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.adapter(x)
        x = x + self.pos_embed(x)
        x = x + self.drop_path(self.conv2(self.attn(self.conv1(self.norm1(x)))))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class Attention(nn.Module):
    """Multi-head self-attention over tokens ``(B, N, C)``."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class GlobalBlock(nn.Module):
    """Global MHRA block (UniFormer's SABlock): DPE, then LN -> attention and LN -> MLP on tokens."""

    wa_site = "adapter"

    def __init__(self, dim: int, heads: int, drop_path: float = 0.0) -> None:
        super().__init__()
        self.adapter = AlterationSite(dim, channel_dim=1, ndim=5)
        self.drop_path = DropPath(drop_path)
        self.pos_embed = nn.Conv3d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        hidden = dim * MLP_RATIO
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.adapter(x)
        x = x + self.pos_embed(x)
        shape = x.shape
        t = x.flatten(2).transpose(1, 2)  # (B, T*H*W, C)
        t = t + self.drop_path(self.attn(self.norm1(t)))
        t = t + self.drop_path(self.mlp(self.norm2(t)))
        return t.transpose(1, 2).reshape(shape)


def _round8(v: float) -> int:
    return max(8, int(v + 4) // 8 * 8)


class UniFormer(VideoClassifier):
    def __init__(self, num_classes: int, dropout: float = 0.0, width_mult: float = 1.0,
                 depths: tuple[int, ...] = DEPTHS, dims: tuple[int, ...] = DIMS, drop_path: float = 0.0) -> None:
        super().__init__()
        rates = iter(torch.linspace(0, drop_path, sum(depths)).tolist())  # the authors' linear rule
        self.block_types: tuple[type[nn.Module], ...] = (LocalBlock, GlobalBlock)
        dims = tuple(_round8(d * width_mult) for d in dims)
        stages: list[nn.Module] = []
        cin = 3
        for i, (depth, dim) in enumerate(zip(depths, dims, strict=True)):
            embed = PatchEmbed(cin, dim, 4 if i == 0 else 2, temporal=i == 0)
            if i < 2:
                blocks = [LocalBlock(dim, next(rates)) for _ in range(depth)]
            else:
                heads = max(1, dim // HEAD_DIM)
                blocks = [GlobalBlock(dim, heads, next(rates)) for _ in range(depth)]
            stages.append(nn.Sequential(embed, *blocks))
            cin = dim
        self.stages = nn.Sequential(*stages)
        self.norm = nn.BatchNorm3d(cin)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def classifier_head(self) -> nn.Linear:
        return self.head

    def forward_frames(self, x: torch.Tensor) -> torch.Tensor:
        t = self.ctx.n_frames
        clip = x.view(-1, t, *x.shape[1:]).transpose(1, 2)  # (B, 3, T, H, W)
        feat = self.norm(self.stages(clip)).mean(dim=(2, 3, 4))
        logits = self.head(self.dropout(feat))
        return logits.unsqueeze(1).expand(-1, t, -1).flatten(0, 1)  # one copy per frame: T-average is exact
