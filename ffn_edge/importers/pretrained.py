"""``--pretrained torchvision:resnet50`` / ``timm:res2net50_26w_4s``: ImageNet starting points by name.

The weights come through the libraries' own weight APIs (they download once and cache):
torchvision's ``get_model_weights(name).DEFAULT.get_state_dict()`` (torch hub cache) and timm's
``create_model(name, pretrained=True)`` (Hugging Face hub cache). Both libraries are optional
imports: missing -> one line with the install command; offline and not cached -> one line naming
the file to place in the cache. The state dict is then placed by the same table as ``ffn-import
--from torchvision|timm`` (ImageNet head ignored, TEA's own modules at their init) into the plain
model, which is converted to its sub-networks as usual. Which backbone takes which source:
``PRETRAINED_FOR`` (the one list; docs/import.md shows it).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..core.errors import ConfigError
from ..models import MODELS, ModelConfig, VideoClassifier, create_model, make_frame_flexible
from .place import place
from .sources import find_spec

LIBRARIES = ("torchvision", "timm")
PRETRAINED_FOR = {  # backbone -> the named ImageNet weights it starts from
    "tsm_resnet18": "torchvision:resnet18", "tsm_resnet34": "torchvision:resnet34",
    "tsm_resnet50": "torchvision:resnet50", "tea_resnet50": "timm:res2net50_26w_4s",
    "tsm_mobilenetv2": "local file only (torchvision mobilenet_v2 names differ: not mapped)",
    "slowfast_r50": "ffn-import --from pyslowfast (Kinetics-400 .pyth)",
    "x3d_s": "not mapped (train from scratch)",
    "uniformer_s": "ffn-import --from uniformer (Kinetics-400 checkpoint)",
}


def is_named(pretrained: str | os.PathLike[str] | None) -> bool:
    return isinstance(pretrained, str) and pretrained.split(":", 1)[0] in LIBRARIES and ":" in pretrained


def fetch_state_dict(pretrained: str) -> dict[str, torch.Tensor]:
    """The ImageNet state dict the library serves for ``LIB:NAME`` (download + cache by the library)."""
    lib, name = pretrained.split(":", 1)
    if lib == "torchvision":
        return _torchvision(name)
    return _timm(name)


def _torchvision(name: str) -> dict[str, torch.Tensor]:
    try:
        from torchvision import models
    except Exception as e:  # noqa: BLE001 - ImportError, or a torchvision built for another torch failing inside
        raise ConfigError(f"torchvision:{name} needs torchvision matching this torch (pip install torchvision): "
                          f"{type(e).__name__}") from None
    try:
        weights = models.get_model_weights(name).DEFAULT
    except (ValueError, KeyError):
        raise ConfigError(f"torchvision has no model {name!r} with pretrained weights") from None
    try:
        return weights.get_state_dict(progress=False)
    except OSError as e:  # URLError is an OSError: offline and not in the cache
        cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        raise ConfigError(f"torchvision:{name}: cannot download {weights.url} ({type(e).__name__}); "
                          f"place that file at {cache}") from None


def _timm(name: str) -> dict[str, torch.Tensor]:
    try:
        import timm
    except Exception as e:  # noqa: BLE001 - see _torchvision
        raise ConfigError(f"timm:{name} needs timm (pip install timm): {type(e).__name__}") from None
    if name not in timm.list_models(pretrained=True):
        raise ConfigError(f"timm has no pretrained model {name!r}")
    try:
        return timm.create_model(name, pretrained=True).state_dict()
    except (OSError, RuntimeError) as e:  # huggingface_hub's offline errors are OSErrors
        cfg = timm.models.get_pretrained_cfg(name)
        hub = getattr(cfg, "hf_hub_id", None) or name
        from huggingface_hub.constants import HF_HUB_CACHE
        raise ConfigError(f"timm:{name}: cannot download it ({type(e).__name__}); place the Hugging Face repo "
                          f"{hub} (its model.safetensors) in the cache {HF_HUB_CACHE}, or pass a local file") from None


def create_model_pretrained(config: ModelConfig, pretrained: str | os.PathLike[str] | None,
                            partial: bool = False) -> VideoClassifier:
    """``create_model`` with ``pretrained`` a local file (torchvision names; ``partial``: a partial load is
    allowed) or ``torchvision:`` / ``timm:`` NAME (mapped in full by the importer's tables, never partially)."""
    if not is_named(pretrained):
        return create_model(config, pretrained=pretrained, partial=partial)
    lib = str(pretrained).split(":", 1)[0]
    spec = find_spec(lib, config.arch)  # one-line ConfigError when the library has no table for the arch
    state = fetch_state_dict(str(pretrained))
    model = MODELS[config.arch](config)
    p = place(state, spec, model)  # same refusals as ffn-import: nothing silently left out
    model.load_state_dict({**model.state_dict(), **p.values})
    return make_frame_flexible(model, config.frame_counts, specialised_norm=config.specialised_norm,
                               weight_alteration=config.weight_alteration, wa_init_std=config.wa_init_std)
