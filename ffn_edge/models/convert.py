"""One generic converter: plain backbone -> Frame Flexible Network for given frame counts.

Like timm's ``convert_splitbn_model``: walk the module tree and swap modules, touching nothing
else — the backbone's spatio-temporal modules (temporal shift, attention, 3-D convs) stay as they
are, which is the paper's claim of generality.

* every norm layer (BatchNorm1d/2d/3d, LayerNorm, GroupNorm) becomes a SpecialisedNorm holding one
  copy per sub-network, each starting from the original's statistics and affine parameters;
* in every block (the backbone's ``block_types``: residual / inverted-residual / transformer
  blocks), the first convolution or linear layer gets a Weight Alteration in front of it — or, when
  the block names one in its ``wa_site`` attribute, that submodule (a conv, a linear layer or an
  ``AlterationSite``: an identity declaring its channels, e.g. a Transformer block's input, where
  the paper's Fig. 5 puts WA). One hook for every backbone, no per-model case here.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ..core.sampling import frame_count_set
from ..layers import AlterationSite, Altered, SpecialisedNorm, WeightAlteration
from .base import VideoClassifier

NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)
LAYER_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def wa_target(block: nn.Module) -> tuple[str, nn.Module]:
    """(name inside ``block``, layer) that the block's Weight Alteration goes in front of.

    The block's ``wa_site`` (a submodule name) if it declares one, else its first conv/linear layer.
    """
    site = getattr(block, "wa_site", None)
    if site is not None:
        layer = block.get_submodule(site)
        if not isinstance(layer, (*LAYER_TYPES, AlterationSite)):
            raise ValueError(f"{type(block).__name__}.wa_site {site!r} is a {type(layer).__name__}, "
                             "not a conv/linear layer or an AlterationSite")
        return site, layer
    for name, layer in block.named_modules():
        if isinstance(layer, LAYER_TYPES):
            return name, layer
    raise ValueError(f"block {type(block).__name__} has no conv/linear layer to alter")


def _alteration_for(layer: nn.Module, n: int, model: VideoClassifier, init_std: float) -> WeightAlteration:
    if isinstance(layer, AlterationSite):
        channels, dim = layer.channels, layer.channel_dim
    elif isinstance(layer, nn.Linear):
        channels, dim = layer.in_features, -1
    else:
        channels, dim = layer.in_channels, 1
    return WeightAlteration(channels, n, model.ctx, channel_dim=dim, init_std=init_std)


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
            name, layer = wa_target(block)
            _replace(block, name, Altered(layer, _alteration_for(layer, n, model, wa_init_std)))
    if specialised_norm:
        for name, m in [(k, m) for k, m in model.named_modules() if isinstance(m, NORM_TYPES)]:
            _replace(model, name, SpecialisedNorm(m, n, model.ctx))
    model.frame_counts = counts
    return model
