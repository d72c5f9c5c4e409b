"""Make an untrained model's sub-networks differ, as they do after training (tests, benchmarks).

A fresh FFN's specialised norms are identical copies (mean 0, var 1, weight 1) and its Weight
Alterations are zero, so every sub-network computes the same function. Parity tests would then not
notice a graph that runs the wrong sub-network, and an exporter could store one "per-sub-network"
tensor for all of them, flattering size and memory figures.
"""

from __future__ import annotations

import torch
from torch import nn


def perturb_like_trained(model: nn.Module, weight_std: float = 0.01, var_spread: float = 1.0, seed: int = 0) -> None:
    """In place: add N(0, weight_std) to every parameter, draw each norm's running statistics."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * weight_std)
        for name, b in model.named_buffers():
            if name.endswith("running_var"):
                b.copy_(0.5 + var_spread * torch.rand(b.shape, generator=g))
            elif name.endswith("running_mean"):
                b.copy_(0.1 * torch.randn(b.shape, generator=g))
