"""One generic converter: plain backbone -> Frame Flexible Network for given frame counts.

Like timm's ``convert_splitbn_model``: walk the module tree and swap modules, touching nothing
else — the backbone's spatio-temporal modules (temporal shift, attention, 3-D convs) stay as they
are, which is the paper's claim of generality.

* every norm layer (BatchNorm1d/2d/3d, LayerNorm, GroupNorm) becomes a SpecialisedNorm holding one
  copy per sub-network, each starting from the original's statistics and affine parameters;
* in every block (the backbone's ``block_types``: residual / inverted-residual / transformer
  blocks), the first convolution or linear layer gets a Weight Alteration in front of it.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ..layers import Altered, SpecialisedNorm, WeightAlteration
from ..sampling import frame_count_set
from .base import VideoClassifier

NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)
LAYER_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def _replace(root: nn.Module, dotted: str, new: nn.Module) -> None:
    parent_name, _, child = dotted.rpartition(".")
    setattr(root.get_submodule(parent_name) if parent_name else root, child, new)


def make_frame_flexible(
    model: VideoClassifier,
    frame_counts: Sequence[int],
    *,
    specialised_norm: bool = True,
    weight_alteration: bool = True,
    block_types: tuple[type[nn.Module], ...] | None = None,
    wa_init_std: float = 0.0,
) -> VideoClassifier:
    """Convert ``model`` in place into sub-networks for ``frame_counts`` and return it."""
    if model.frame_counts:
        raise ValueError(f"model is already frame-flexible for {model.frame_counts}")
    counts = frame_count_set(frame_counts)
    n = len(counts)
    if weight_alteration:
        blocks = block_types if block_types is not None else model.block_types
        for block in [m for m in model.modules() if isinstance(m, blocks)]:
            name, layer = next(((k, m) for k, m in block.named_modules() if isinstance(m, LAYER_TYPES)),
                               (None, None))
            if layer is None:
                raise ValueError(f"block {type(block).__name__} has no conv/linear layer to alter")
            linear = isinstance(layer, nn.Linear)
            channels = layer.in_features if linear else layer.in_channels
            wa = WeightAlteration(channels, n, model.ctx, channel_dim=-1 if linear else 1, init_std=wa_init_std)
            _replace(block, name, Altered(layer, wa))
    if specialised_norm:
        for name, m in [(k, m) for k, m in model.named_modules() if isinstance(m, NORM_TYPES)]:
            _replace(model, name, SpecialisedNorm(m, n, model.ctx))
    model.frame_counts = counts
    return model
