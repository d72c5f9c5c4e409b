"""VideoDataset: one item = the same video sampled at every frame count, with one spatial augmentation.

``dataset[i]`` is ``(clips, label)``; ``clips`` holds one float32 tensor ``(T_k, 3, H, W)`` per
frame count (normalised RGB), so the default collate gives a tuple of ``(B, T_k, 3, H, W)``. FFN
trains its L/M/H sub-networks on these samplings of the same video (paper §4); Separated Training
passes a single frame count.

Randomness is a pure function of ``(seed, epoch, index)``: call ``set_epoch(epoch)`` before each
epoch (like ``DistributedSampler.set_epoch``; with ``persistent_workers=False``, the default, the
workers see it), and a resumed run draws the same clips and crops as the uninterrupted one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from ..core import defaults as D
from ..core.sampling import segment_indices
from .annotations import Kind, VideoRecord, read_class_names, read_list
from .errors import DatasetError
from .transforms import TrainTransform, ValTransform
from .video_io import Frames, read_frame_folder, read_video

log = logging.getLogger("ffn_edge")


class VideoDataset(Dataset):
    """Frame-folder or video-file clips from a TSM-style annotation list (see ``annotations``)."""

    def __init__(
        self,
        list_file: str | Path,
        root: str | Path,
        *,
        kind: Kind,
        frame_counts: Sequence[int] = D.FRAME_COUNTS,
        train: bool,
        input_size: int = D.INPUT_SIZE,
        resize_shorter: int = D.RESIZE_SHORTER,
        mean: Sequence[float] = D.IMAGENET_MEAN,
        std: Sequence[float] = D.IMAGENET_STD,
        flip: bool = False,
        template: str = "{:05d}.jpg",
        start_index: int = 1,
        on_error: Literal["raise", "skip"] = "raise",
        seed: int = 0,
    ) -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        if not frame_counts or min(frame_counts) < 1:
            raise ValueError(f"frame_counts must be positive, got {tuple(frame_counts)}")
        self.records: list[VideoRecord] = read_list(list_file, kind)
        self.class_names: list[str] = read_class_names(list_file, self.records)
        self.root = Path(root)
        self.kind = kind
        self.frame_counts = tuple(frame_counts)
        self.train = train
        self.template = template
        self.start_index = start_index
        self.on_error = on_error
        self.seed = seed
        self.epoch = 0
        self.transform = (
            TrainTransform(input_size, mean, std, flip=flip)
            if train
            else ValTransform(input_size, resize_shorter, mean, std)
        )
        self._bad: set[int] = set()  # items that failed to load (on_error="skip"), in this process

    @property
    def skipped(self) -> int:
        """How many distinct items this process skipped because they could not be read."""
        return len(self._bad)

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's random draws (frame positions and crops); call before each epoch."""
        self.epoch = epoch

    def __getitem__(self, index: int) -> tuple[tuple[torch.Tensor, ...], int]:
        for step in range(len(self)):
            i = (index + step) % len(self)
            if i in self._bad:
                continue
            try:
                return self._load(i)
            except DatasetError as e:
                if self.on_error == "raise":
                    raise
                self._bad.add(i)
                log.warning("skipping item %d (%s): %s; %d skipped so far", i, self.records[i].source, e, self.skipped)
        raise DatasetError(f"every one of the {len(self)} items failed to load")

    def _load(self, index: int) -> tuple[tuple[torch.Tensor, ...], int]:
        record = self.records[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])

        def plan(num_frames: int) -> list[np.ndarray]:
            return [segment_indices(num_frames, n, self.train, rng) for n in self.frame_counts]

        indices, frames = self._read(record, plan)
        order = sorted(frames)
        stacked = torch.from_numpy(self.transform([frames[i] for i in order], rng))
        row = {frame_index: r for r, frame_index in enumerate(order)}
        clips = tuple(stacked[[row[int(i)] for i in idx]] for idx in indices)
        return clips, record.label

    def _read(self, record: VideoRecord, plan: Callable[[int], list[np.ndarray]]) -> tuple[list[np.ndarray], Frames]:
        path = self.root / record.path
        if self.kind == "video":
            return read_video(path, plan)
        indices = plan(record.num_frames)
        frames = read_frame_folder(path, np.concatenate(indices).tolist(), self.template, self.start_index)
        return indices, frames
