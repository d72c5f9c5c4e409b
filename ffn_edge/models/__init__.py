"""Backbones, the FFN converter and the model registry."""

from .base import VideoClassifier
from .convert import make_frame_flexible
from .perturb import perturb_like_trained
from .registry import MODELS, LoadReport, ModelConfig, create_model, load_pretrained, register_model

__all__ = [
    "MODELS",
    "LoadReport",
    "ModelConfig",
    "VideoClassifier",
    "create_model",
    "load_pretrained",
    "make_frame_flexible",
    "perturb_like_trained",
    "register_model",
]
