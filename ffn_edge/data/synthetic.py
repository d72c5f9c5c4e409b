"""A synthetic temporal dataset written to disk, for the demo, the tests and the reproduction benchmark.

Classes depend on temporal order and speed, like Something-Something, and are built so that fewer
frames lose information (what FFN is about):

* "oscillating once" vs "oscillating three times": with 4 evenly spaced frames, 3 cycles alias
  to -1 cycle, so at 4 frames the pair is (nearly) indistinguishable; 8+ frames resolve it;
* "flash near the start" vs "flash near the end": a flash lasting ~2 of 48 frames, which 4
  sampled frames mostly miss (one frame per 12), 16 frames mostly catch;
* "turning clockwise" vs "turning counter-clockwise": a hand doing ~2 turns, i.e. ~half a turn
  between 4 sampled frames, so the direction is ambiguous at 4 frames;
* "moving left to right" / "moving right to left" and "appearing" / "disappearing": order only,
  solvable from few frames (a sanity floor).

Nuisance: random textured background and tint, per-frame pixel noise, object colour, size, start
position, phase, speed jitter and temporal offset, so no single frame gives the class away.
Everything is a function of ``seed``: each video has its own generator keyed by
``(seed, split, class, index)``. Written as JPEG frame folders (``path num_frames label`` list) or
mp4v videos (``path label`` list), plus ``classes.txt``, so it goes through the real loader.

CLI: ``python -m ffn_edge.data.synthetic --out DIR [--kind video] ...`` (``--help``).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from ..core.errors import ConfigError, run_cli
from ..core.progress import Progress
from .annotations import CLASSES_FILE, Kind, VideoRecord, write_list
from .errors import DatasetError


@dataclasses.dataclass(frozen=True)
class SyntheticSet:
    """Where ``make_synthetic`` wrote the set: pass ``train_list``/``val_list`` and ``root`` to VideoDataset."""

    root: Path
    train_list: Path
    val_list: Path
    classes_file: Path
    class_names: list[str]
    kind: Kind = "frames"


@dataclasses.dataclass
class Track:
    """Per-frame state of the one object in a clip (arrays of length T)."""

    x: np.ndarray
    y: np.ndarray
    visible: np.ndarray  # bool
    flash: np.ndarray  # bool: drawn large and white
    angle: np.ndarray | None = None  # radians: the object is a hand turning about (x, y)


def _drift(rng: np.random.Generator, u: np.ndarray, size: int, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """A slow straight drift (at most 10% of the frame) from a random start: the 'static' object."""
    x0, y0 = rng.uniform(margin, size - margin, 2)
    dx, dy = rng.uniform(-0.1, 0.1, 2) * size
    return np.clip(x0 + dx * u, margin, size - margin), np.clip(y0 + dy * u, margin, size - margin)


def _oscillate(cycles: float) -> Callable[[np.random.Generator, np.ndarray, int, float], Track]:
    def track(rng: np.random.Generator, u: np.ndarray, size: int, radius: float) -> Track:
        amp = rng.uniform(0.15, 0.22) * size
        freq = cycles * rng.uniform(0.9, 1.1)
        cx = rng.uniform(radius + amp, size - radius - amp)
        _, y = _drift(rng, u, size, radius)
        x = cx + amp * np.sin(2 * math.pi * freq * u + rng.uniform(0, 2 * math.pi))
        return Track(x, y, np.ones(len(u), bool), np.zeros(len(u), bool))
    return track


def _flash(early: bool) -> Callable[[np.random.Generator, np.ndarray, int, float], Track]:
    def track(rng: np.random.Generator, u: np.ndarray, size: int, radius: float) -> Track:
        n = len(u)
        duration = max(2, round(n / 24))
        third = n // 3
        lo, hi = (0, third - duration) if early else (n - third, n - duration)
        start = int(rng.integers(lo, max(lo, hi) + 1))
        flash = np.zeros(n, bool)
        flash[start : start + duration] = True
        x, y = _drift(rng, u, size, 2 * radius)
        return Track(x, y, np.ones(n, bool), flash)
    return track


def _turn(direction: int) -> Callable[[np.random.Generator, np.ndarray, int, float], Track]:
    def track(rng: np.random.Generator, u: np.ndarray, size: int, radius: float) -> Track:
        turns = rng.uniform(1.7, 2.3)
        reach = 0.3 * size  # hand length + tip, kept inside the frame
        x, y = _drift(rng, u, size, reach)
        angle = rng.uniform(0, 2 * math.pi) + direction * 2 * math.pi * turns * u
        return Track(x, y, np.ones(len(u), bool), np.zeros(len(u), bool), angle)
    return track


def _move(direction: int) -> Callable[[np.random.Generator, np.ndarray, int, float], Track]:
    def track(rng: np.random.Generator, u: np.ndarray, size: int, radius: float) -> Track:
        distance = rng.uniform(0.35, 0.55) * size
        begin, end = rng.uniform(0, 0.3), rng.uniform(0.7, 1.0)  # the motion's own temporal offset
        progress = np.clip((u - begin) / (end - begin), 0, 1)
        start = rng.uniform(radius, size - radius - distance)
        x = start + distance * progress
        x = x if direction > 0 else size - x
        _, y = _drift(rng, u, size, radius)
        return Track(x, y, np.ones(len(u), bool), np.zeros(len(u), bool))
    return track


def _appear(appearing: bool) -> Callable[[np.random.Generator, np.ndarray, int, float], Track]:
    def track(rng: np.random.Generator, u: np.ndarray, size: int, radius: float) -> Track:
        moment = rng.uniform(0.25, 0.75)
        x, y = _drift(rng, u, size, radius)
        visible = u >= moment if appearing else u < moment
        return Track(x, y, visible, np.zeros(len(u), bool))
    return track


# Ordered so that any prefix keeps the hard pairs (num_classes=2 is the aliasing pair).
CLASSES: tuple[tuple[str, Callable[[np.random.Generator, np.ndarray, int, float], Track]], ...] = (
    ("oscillating once", _oscillate(1)),
    ("oscillating three times", _oscillate(3)),
    ("flash near the start", _flash(early=True)),
    ("flash near the end", _flash(early=False)),
    ("turning clockwise", _turn(+1)),
    ("turning counter-clockwise", _turn(-1)),
    ("moving left to right", _move(+1)),
    ("moving right to left", _move(-1)),
    ("appearing", _appear(True)),
    ("disappearing", _appear(False)),
)


def render_clip(label: int, rng: np.random.Generator, frames: int, size: int, period: int | None = None) -> np.ndarray:
    """One clip of class ``label``: uint8 BGR array ``(frames, size, size, 3)``.

    ``period`` (default: ``frames``) is the length of the class's motion in frames: a longer clip is
    one long take of the same scene (background, object colour and size) in which the motion starts
    again, with new motion parameters, every ``period`` frames.
    """
    period = frames if period is None else period
    if period < 1:
        raise ValueError(f"period must be >= 1 frame, got {period}")
    u = np.arange(period) / period
    radius = rng.uniform(0.07, 0.11) * size
    track = CLASSES[label][1](rng, u, size, radius)
    texture = cv2.resize(rng.uniform(0, 1, (4, 4, 3)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    background = np.clip(30 + 140 * texture * rng.uniform(0.5, 1.0, 3), 0, 255).astype(np.uint8)
    hue = int(rng.integers(0, 180))
    colour = cv2.cvtColor(np.array([[[hue, 230, 255]]], np.uint8), cv2.COLOR_HSV2BGR)[0, 0].tolist()
    thickness = max(2, round(size / 24))
    clip = np.empty((frames, size, size, 3), np.uint8)
    for frame in range(frames):
        t = frame % period
        if frame and not t:  # the motion starts again (a long take)
            track = CLASSES[label][1](rng, u, size, radius)
        image = background.copy()
        if track.visible[t]:
            centre = _fixed(track.x[t], track.y[t])
            if track.angle is not None:
                hand = 0.2 * size
                tip = _fixed(track.x[t] + hand * math.cos(track.angle[t]), track.y[t] + hand * math.sin(track.angle[t]))
                cv2.line(image, centre, tip, colour, thickness, cv2.LINE_AA, shift=4)
                cv2.circle(image, tip, round(0.6 * radius * 16), colour, -1, cv2.LINE_AA, shift=4)
            elif track.flash[t]:
                cv2.circle(image, centre, round(1.8 * radius * 16), (255, 255, 255), -1, cv2.LINE_AA, shift=4)
            else:
                cv2.circle(image, centre, round(radius * 16), colour, -1, cv2.LINE_AA, shift=4)
        noise = rng.normal(0, 8, image.shape)
        clip[frame] = np.clip(image + noise, 0, 255).astype(np.uint8)
    return clip


def _fixed(x: float, y: float) -> tuple[int, int]:
    """Sub-pixel point for OpenCV drawing with ``shift=4`` (1/16 pixel), so slow motion is smooth."""
    return round(x * 16), round(y * 16)


def _write_frames(folder: Path, clip: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for t, image in enumerate(clip):
        path = folder / f"{t + 1:05d}.jpg"  # VideoDataset's default template and start_index
        if not cv2.imwrite(str(path), image):
            raise DatasetError(f"{path}: cannot write frame")


def write_video(path: Path, clip: np.ndarray, fps: float = 12.0) -> None:
    """Write ``clip`` (uint8 BGR ``(frames, H, W, 3)``) as an mp4v video; DatasetError if OpenCV cannot."""
    path.parent.mkdir(parents=True, exist_ok=True)
    size = clip.shape[2], clip.shape[1]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    if not writer.isOpened():
        raise DatasetError(f"{path}: OpenCV cannot write mp4v video (is its FFMPEG backend missing?)")
    try:
        for image in clip:
            writer.write(image)
    finally:
        writer.release()


def make_synthetic(
    out_dir: str | Path,
    *,
    num_classes: int = len(CLASSES),
    train_per_class: int = 40,
    val_per_class: int = 20,
    frames: int = 48,
    size: int = 64,
    seed: int = 0,
    kind: Kind = "frames",
    progress_desc: str | None = None,
) -> SyntheticSet:
    """Write the synthetic set to ``out_dir`` (``train.txt``, ``val.txt``, ``classes.txt``, clips).

    ``progress_desc``: report progress per clip on stderr under that name (``core.progress``).
    """
    if not 1 <= num_classes <= len(CLASSES):
        raise ConfigError(f"num_classes must be 1..{len(CLASSES)}, got {num_classes}")
    if kind not in ("frames", "video"):
        raise ConfigError(f"kind must be 'frames' or 'video', got {kind!r}")
    if frames < 8 or size < 16 or train_per_class < 0 or val_per_class < 0:
        raise ConfigError("need frames >= 8, size >= 16 and non-negative per-class counts")
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    class_names = [name for name, _ in CLASSES[:num_classes]]
    (root / CLASSES_FILE).write_text("".join(n + "\n" for n in class_names), encoding="utf-8")
    lists = {}
    report = Progress(num_classes * (train_per_class + val_per_class), progress_desc or "",
                      enabled=progress_desc is not None)
    for split_code, (split, per_class) in enumerate((("train", train_per_class), ("val", val_per_class))):
        records = []
        for label in range(num_classes):
            for i in range(per_class):
                clip = render_clip(label, np.random.default_rng([seed, split_code, label, i]), frames, size)
                name = f"{split}/c{label:02d}_{i:04d}"
                if kind == "frames":
                    _write_frames(root / name, clip)
                    records.append(VideoRecord(name, label, frames))
                else:
                    write_video(root / f"{name}.mp4", clip)
                    records.append(VideoRecord(f"{name}.mp4", label))
                report.update()
        lists[split] = write_list(root / f"{split}.txt", records)
    report.close()
    return SyntheticSet(root, lists["train"], lists["val"], root / CLASSES_FILE, class_names, kind)


def main(argv: list[str] | None = None) -> int:
    """``python -m ffn_edge.data.synthetic``: write the synthetic temporal dataset."""
    p = argparse.ArgumentParser(
        prog="python -m ffn_edge.data.synthetic",
        description="Write the synthetic temporal dataset (classes that need order and speed) in the "
        "TSM list formats, for ffn-train and the tests.",
    )
    p.add_argument("--out", required=True, help="output directory (lists, classes.txt, clips)")
    p.add_argument("--kind", choices=("frames", "video"), default="frames", help="JPEG frame folders or mp4v videos")
    p.add_argument("--num-classes", type=int, default=len(CLASSES), help=f"first K of the {len(CLASSES)} classes")
    p.add_argument("--train-per-class", type=int, default=40)
    p.add_argument("--val-per-class", type=int, default=20)
    p.add_argument("--frames", type=int, default=48, help="frames per clip")
    p.add_argument("--size", type=int, default=64, help="frame side in pixels")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    s = make_synthetic(
        a.out, num_classes=a.num_classes, train_per_class=a.train_per_class, val_per_class=a.val_per_class,
        frames=a.frames, size=a.size, seed=a.seed, kind=a.kind,
    )
    print(f"wrote {a.kind} set to {s.root}: train {s.train_list}, val {s.val_list}, {len(s.class_names)} classes")
    return 0


if __name__ == "__main__":
    run_cli("ffn_edge.data.synthetic", main)
