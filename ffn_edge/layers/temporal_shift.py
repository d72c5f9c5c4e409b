"""Temporal Shift (TSM, Lin et al. ICCV 2019) for any frame count.

Frames of a clip are stacked in the batch dimension, ``(B*T, C, H, W)``. A fraction ``1/shift_div``
of the channels moves one frame back in time, another fraction one frame forward, zero-padded at
the clip ends. T comes from the model's FrameContext, so the same module serves 4, 8 or 16 frames
(or any other count). Built from slicing and concatenation, which export cleanly to ONNX.
"""

from __future__ import annotations

import torch
from torch import nn

from .context import FrameContext


def temporal_shift(x: torch.Tensor, n_frames: int, shift_div: int = 8) -> torch.Tensor:
    nt, c, h, w = x.shape
    fold = c // shift_div
    x = x.view(-1, n_frames, c, h, w)
    back, fwd, rest = x[:, :, :fold], x[:, :, fold : 2 * fold], x[:, :, 2 * fold :]
    back = torch.cat([back[:, 1:], torch.zeros_like(back[:, :1])], dim=1)  # frame t sees t+1
    fwd = torch.cat([torch.zeros_like(fwd[:, :1]), fwd[:, :-1]], dim=1)  # frame t sees t-1
    return torch.cat([back, fwd, rest], dim=2).view(nt, c, h, w)


class TemporalShift(nn.Module):
    def __init__(self, ctx: FrameContext, shift_div: int = 8) -> None:
        super().__init__()
        self.ctx = ctx
        self.shift_div = shift_div

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return temporal_shift(x, self.ctx.n_frames, self.shift_div)

    def extra_repr(self) -> str:
        return f"shift_div={self.shift_div}"
