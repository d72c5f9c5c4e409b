"""AlterationSite: an identity a backbone places where its blocks' Weight Alteration should go.

Why: the converter's default puts WA in front of a block's first convolution (TSM-style, on the
conv path only). Some architectures want it elsewhere — the FFN paper's Transformer block (Fig. 5)
alters the block *input*, where ST-Adapter inserts its adapter, so the residual stream sees it too.
A backbone expresses that by putting this identity there and naming it in the block's ``wa_site``;
``make_frame_flexible`` then wraps it like any other layer. It declares what a conv would: the
channel count, which dimension holds channels, and the input rank (for an exporter's constant).
"""

from __future__ import annotations

from torch import nn


class AlterationSite(nn.Identity):
    def __init__(self, channels: int, channel_dim: int = 1, ndim: int = 4) -> None:
        super().__init__()
        self.channels = channels
        self.channel_dim = channel_dim
        self.ndim = ndim

    def extra_repr(self) -> str:
        return f"channels={self.channels}, channel_dim={self.channel_dim}, ndim={self.ndim}"
