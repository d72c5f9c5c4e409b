"""Calibration clips for INT8 export (``ffn-export --int8 --calib SRC``): where they come from.

``SRC`` is ``synthetic`` (the default: the built-in synthetic set, rendered with a seed of its own
so calibration never sees the verification clips), a TSM-style data list file (``--calib-root``,
``--calib-kind`` as for ``--verify-list``), or a folder of video files (each one clip). Clips are
decoded once at the largest frame count and resampled (TSN evaluation sampling) to each
sub-network's own n, so every sub-network is calibrated on the frames it will see.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ..core.validate import MAX_CALIB_CLIPS
from .errors import ExportError

SYNTHETIC = "synthetic"
DEFAULT_CALIB = SYNTHETIC
DEFAULT_CALIB_CLIPS = 16
CALIB_SEED = 1  # verification clips use seed 0: calibration and verification never share a clip
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v")


@dataclasses.dataclass(frozen=True)
class CalibSource:
    """One calibration source: ``synthetic``, a data ``list`` (with root and kind), or a ``videos`` folder."""

    kind: str  # "synthetic" | "list" | "videos"
    path: str = ""
    root: str = ""
    entry_kind: str = "frames"  # list entries: "frames" | "video"

    def describe(self) -> str:
        """What the manifest records as the calibration data."""
        if self.kind == SYNTHETIC:
            return f"synthetic (seed {CALIB_SEED})"
        if self.kind == "list":
            return f"list {Path(self.path).name} ({self.entry_kind})"
        return f"video folder {Path(self.path).name}"


def parse_calib(src: str, root: str | None = None, kind: str = "frames") -> CalibSource:
    """``--calib`` value -> CalibSource; a missing path or a list without a root is one-line ExportError."""
    if src == SYNTHETIC:
        if root is not None:
            raise ExportError("--calib-root applies to a data list, not to --calib synthetic")
        return CalibSource(SYNTHETIC)
    p = Path(src)
    if p.is_dir():
        if root is not None:
            raise ExportError("--calib-root applies to a data list, not to a video folder")
        if not video_files(p):
            raise ExportError(f"--calib {src}: no video files ({', '.join(VIDEO_SUFFIXES)}) in this folder")
        return CalibSource("videos", str(p))
    if p.is_file():
        if kind not in ("frames", "video"):
            raise ExportError(f"--calib-kind must be frames or video, got {kind!r}")
        return CalibSource("list", str(p), str(root if root is not None else p.parent), kind)
    raise ExportError(f"--calib {src}: not 'synthetic', a data list file or a folder of videos")


def check_calib_clips(n: int) -> None:
    """Calibration clips are held in memory at the largest frame count, so the count is bounded."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_CALIB_CLIPS:
        raise ExportError(f"--calib-clips must be in [1, {MAX_CALIB_CLIPS}], got {n}")


def video_files(folder: Path) -> list[Path]:
    """The video files directly in ``folder``, sorted by name (the calibration order)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)


def calibration_clips(src: CalibSource, n: int, frames: int, size: int, resize_shorter: int,
                      mean, std) -> np.ndarray:
    """``n`` normalised clips (n, frames, 3, size, size) from ``src`` (fewer if the source has fewer)."""
    from .verify import dataset_clips, synthetic_clips  # torch: only once clips are wanted

    args = (frames, size, resize_shorter, mean, std)
    if src.kind == SYNTHETIC:
        return synthetic_clips(n, *args, seed=CALIB_SEED)
    if src.kind == "list":
        return dataset_clips(src.path, src.root, src.entry_kind, n, *args)
    return _video_clips(Path(src.path), n, *args)


def _video_clips(folder: Path, n: int, frames: int, size: int, resize_shorter: int, mean, std) -> np.ndarray:
    from ..core.sampling import segment_indices
    from ..data.transforms import ValTransform
    from ..data.video_io import read_video

    transform = ValTransform(size, resize_shorter, mean, std)
    clips = []
    for path in video_files(folder)[:n]:
        indices, decoded = read_video(path, lambda total: [segment_indices(total, frames, train=False)])
        clips.append(transform([decoded[int(i)] for i in indices[0]]))
    if not clips:
        raise ExportError(f"{folder}: no video files to calibrate with")
    return np.stack(clips)
