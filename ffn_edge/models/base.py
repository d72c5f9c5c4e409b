"""VideoClassifier: the one forward every backbone shares.

Input ``(B, T, C, H, W)`` clips; frames are run as a 2-D batch ``(B*T, C, H, W)`` by the backbone's
``forward_frames``, and per-frame logits are averaged over T (TSN average consensus); a 3-D backbone
overrides ``clip_logits`` and sees the whole clip (``blocks3d.Clip3DClassifier``). The model
picks the sub-network for T by the nearest rule unless the caller names one, and sets the model's
FrameContext for the duration of the call — the only place the context is written.
"""

from __future__ import annotations

import torch
from torch import nn

from ..core.sampling import nearest_subnet
from ..layers.context import FrameContext


class VideoClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.ctx = FrameContext()
        # Sub-network frame counts, ascending; set by ffn_edge.models.convert.make_frame_flexible.
        # A plain (unconverted) model has one implicit sub-network serving every frame count.
        self.frame_counts: tuple[int, ...] = ()

    @property
    def n_subnets(self) -> int:
        return max(1, len(self.frame_counts))

    def subnet_for(self, n_frames: int) -> int:
        """Sub-network index serving ``n_frames`` frames (paper §5.3 nearest rule)."""
        return nearest_subnet(n_frames, self.frame_counts) if self.frame_counts else 0

    def num_classes_out(self) -> int:
        """Number of classes the classifier head produces."""
        return self.classifier_head().out_features

    def classifier_head(self) -> nn.Linear:
        """The final shared linear layer (backbones name it differently: fc, classifier.1)."""
        raise NotImplementedError

    def forward_frames(self, x: torch.Tensor) -> torch.Tensor:
        """Per-frame logits ``(B*T, K)`` from frames ``(B*T, C, H, W)``; backbones implement it."""
        raise NotImplementedError

    def clip_logits(self, clip: torch.Tensor, n_frames: int) -> torch.Tensor:
        """Logits ``(B, K)`` of clips ``(B, T, C, H, W)``, called inside the model's FrameContext.

        2-D backbones: per-frame logits averaged over T. A 3-D backbone (a clip volume in, one
        prediction out) overrides this. The batch stays symbolic (``-1``) so exported graphs keep it dynamic.
        """
        return self.forward_frames(clip.flatten(0, 1)).unflatten(0, (-1, n_frames)).mean(dim=1)

    def forward(self, clip: torch.Tensor, subnet: int | None = None) -> torch.Tensor:
        if clip.dim() != 5:
            raise ValueError(f"expected clips of shape (B, T, C, H, W), got {tuple(clip.shape)}")
        t = int(clip.shape[1])
        k = self.subnet_for(t) if subnet is None else subnet
        if not 0 <= k < self.n_subnets:
            raise ValueError(f"subnet {k} out of range: the model has {self.n_subnets} sub-networks")
        with self.ctx.use(k, t):
            return self.clip_logits(clip, t)
