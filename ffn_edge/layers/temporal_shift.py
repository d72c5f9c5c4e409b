"""Temporal Shift (TSM, Lin et al. ICCV 2019) for any frame count, bidirectional or causal.

Frames of a clip are stacked in the batch dimension, ``(B*T, C, H, W)``. T comes from the model's
FrameContext, so the same module serves 4, 8 or 16 frames (or any other count). Built from slicing
and concatenation, which export cleanly to ONNX. With ``fold = C // shift_div``:

* ``bidirectional`` (TSM's offline form, the default): channels ``[0, fold)`` come from frame t+1,
  channels ``[fold, 2*fold)`` from frame t-1, zero-padded at the clip ends.
* ``causal`` (past -> present only, TSM's uni-directional "online" form): channels ``[0, 2*fold)``
  come from frame t-1 (zero for the first frame), the rest stay. Frame t's output then depends on
  frames <= t only, so a network can run one frame at a time with, per shift, a buffer of the
  previous frame's first ``2*fold`` channels (``causal_shift_channels``; see ``export.step``).
  Why 2*fold (1/4 of the channels at shift_div 8) and not TSM's online demo's 1/8: it moves the same
  share of channels as the bidirectional model (TSM's ablation found 1/4 in total the best
  trade-off between temporal mixing and spatial capacity) and keeps its channel layout (channels
  ``[fold, 2*fold)`` already come from the past), so causal and bidirectional models differ in
  direction only, which is what an online-vs-clip accuracy comparison should measure.
"""

from __future__ import annotations

import torch
from torch import nn

from ..core.validate import DEFAULT_SHIFT, SHIFT_MODES
from .context import FrameContext


def causal_shift_channels(channels: int, shift_div: int) -> int:
    """How many leading channels a causal shift takes from the previous frame (its buffer's channels)."""
    return 2 * (channels // shift_div)


def temporal_shift(x: torch.Tensor, n_frames: int, shift_div: int = 8, mode: str = DEFAULT_SHIFT) -> torch.Tensor:
    nt, c, h, w = x.shape
    fold = c // shift_div
    x = x.view(-1, n_frames, c, h, w)
    if mode == "causal":
        n = causal_shift_channels(c, shift_div)
        past, rest = x[:, :, :n], x[:, :, n:]
        past = torch.cat([torch.zeros_like(past[:, :1]), past[:, :-1]], dim=1)  # frame t sees t-1
        return torch.cat([past, rest], dim=2).view(nt, c, h, w)
    if mode != "bidirectional":
        raise ValueError(f"shift mode must be one of {', '.join(SHIFT_MODES)}, got {mode!r}")
    back, fwd, rest = x[:, :, :fold], x[:, :, fold : 2 * fold], x[:, :, 2 * fold :]
    back = torch.cat([back[:, 1:], torch.zeros_like(back[:, :1])], dim=1)  # frame t sees t+1
    fwd = torch.cat([torch.zeros_like(fwd[:, :1]), fwd[:, :-1]], dim=1)  # frame t sees t-1
    return torch.cat([back, fwd, rest], dim=2).view(nt, c, h, w)


class TemporalShift(nn.Module):
    def __init__(self, ctx: FrameContext, shift_div: int = 8, mode: str = DEFAULT_SHIFT) -> None:
        super().__init__()
        if mode not in SHIFT_MODES:
            raise ValueError(f"shift mode must be one of {', '.join(SHIFT_MODES)}, got {mode!r}")
        self.ctx = ctx
        self.shift_div = shift_div
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return temporal_shift(x, self.ctx.n_frames, self.shift_div, self.mode)

    def extra_repr(self) -> str:
        return f"shift_div={self.shift_div}, mode={self.mode}"
