"""Weight Alteration (FFN paper §4.3, Eq. 8-9, Fig. 5): a per-sub-network depth-wise 1x1 conv
with a residual, ``x + phi_k(x)``, placed before a block's first convolution (or linear layer).

A 1x1 depth-wise convolution without bias is a per-channel scale, so ``x + phi_k(x)`` equals
``x * (1 + w_k)``: that is how it is computed here, which also works for channels-last inputs of
transformer blocks (``channel_dim=-1``). Since ``W ⊗ (x·(1+w)) = (W·diag(1+w)) ⊗ x``, it alters the
shared weights W into per-sub-network weights W_k exactly as the paper's Eq. 9 says, and an
exporter can fold it into the convolution. Initialised to zero, so a converted pretrained network
computes exactly what it did before (the authors draw from N(0, 1e-3); ``init_std`` allows that).
"""

from __future__ import annotations

import torch
from torch import nn

from .context import FrameContext


class WeightAlteration(nn.Module):
    def __init__(
        self,
        channels: int,
        n_subnets: int,
        ctx: FrameContext,
        channel_dim: int = 1,
        init_std: float = 0.0,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n_subnets, channels))
        if init_std > 0:
            nn.init.normal_(self.weight, std=init_std)
        self.channel_dim = channel_dim
        self.ctx = ctx

    def scale(self, subnet: int) -> torch.Tensor:
        """The per-channel factor ``1 + w_k`` of sub-network ``subnet`` (what an exporter folds)."""
        return 1.0 + self.weight[subnet]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.scale(self.ctx.subnet)
        shape = [1] * x.dim()
        shape[self.channel_dim] = -1
        return x * s.view(shape)

    def extra_repr(self) -> str:
        n, c = self.weight.shape
        return f"channels={c}, n_subnets={n}, channel_dim={self.channel_dim}"


class Altered(nn.Module):
    """``layer(alteration(x))``: a shared conv/linear preceded by its per-sub-network alteration."""

    def __init__(self, layer: nn.Module, alteration: WeightAlteration) -> None:
        super().__init__()
        self.alteration = alteration
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(self.alteration(x))
