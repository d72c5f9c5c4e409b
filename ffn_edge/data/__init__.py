"""Datasets: TSM-style annotation lists of frame folders or videos, and the synthetic temporal set."""

from .annotations import Hmdb51Split, VideoRecord, hmdb51_lists, read_class_names, read_list, write_list
from .dataset import VideoDataset
from .errors import DatasetError
from .transforms import TrainTransform, ValTransform

__all__ = [
    "CLASSES",
    "DatasetError",
    "Hmdb51Split",
    "SyntheticSet",
    "TrainTransform",
    "ValTransform",
    "VideoDataset",
    "VideoRecord",
    "hmdb51_lists",
    "make_synthetic",
    "read_class_names",
    "read_list",
    "render_clip",
    "write_list",
]


def __getattr__(name: str) -> object:
    """Import ``synthetic`` on first use, so ``python -m ffn_edge.data.synthetic`` runs it only once."""
    if name in ("CLASSES", "SyntheticSet", "make_synthetic", "render_clip"):
        from . import synthetic

        return getattr(synthetic, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
