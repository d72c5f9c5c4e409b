"""Specialised normalisation (FFN paper §4.3, Eq. 6): one norm layer per sub-network.

Frame counts shift the statistics a norm layer sees (paper §3, "Normalization Shifting"), so each
sub-network keeps its own running statistics and affine parameters. Works for any norm module
(BatchNorm1d/2d/3d, LayerNorm, GroupNorm): it holds one independent copy per sub-network and runs
the one the model's FrameContext selects. Running sub-network k only touches copy k.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .context import FrameContext


class SpecialisedNorm(nn.Module):
    def __init__(self, norm: nn.Module, n_subnets: int, ctx: FrameContext) -> None:
        super().__init__()
        if n_subnets < 1:
            raise ValueError(f"n_subnets must be >= 1, got {n_subnets}")
        # Independent copies: statistics and affine parameters start from the original's.
        self.norms = nn.ModuleList(copy.deepcopy(norm) for _ in range(n_subnets))
        self.ctx = ctx

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norms[self.ctx.subnet](x)

    def extra_repr(self) -> str:
        return f"n_subnets={len(self.norms)}"
