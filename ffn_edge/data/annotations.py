"""Annotation lists in the formats people already have, parsed strictly.

* frame folders (TSM / Something-Something V1): ``relative/folder num_frames label`` per line;
* videos (Kinetics-400, Something-Something V2 exported lists): ``relative/video.mp4 label``;
* HMDB51: built from the official split files (``hmdb51_lists``);
* class names: ``classes.txt`` next to the list, one name per line (optional).

Blank lines and ``#`` comments are ignored. Paths may contain spaces (the numeric fields are split
off the right). Any other malformed line raises DatasetError ``file:line: what is wrong`` so a bad
list fails at start-up, not hours into training.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from .errors import DatasetError

Kind = Literal["frames", "video"]
CLASSES_FILE = "classes.txt"


@dataclasses.dataclass(frozen=True)
class VideoRecord:
    """One annotated clip: a path relative to the dataset root, its label, and (frame folders) length."""

    path: str
    label: int
    num_frames: int | None = None  # known from the list for frame folders; read from the file for videos
    source: str = ""  # "list_file:line", for error messages


def _int_field(text: str, what: str, where: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise DatasetError(f"{where}: {what} must be an integer, got {text!r}") from None
    if value < minimum:
        raise DatasetError(f"{where}: {what} must be >= {minimum}, got {value}")
    return value


def read_list(list_file: str | Path, kind: Kind) -> list[VideoRecord]:
    """Parse an annotation list of ``kind`` ("frames": path num_frames label; "video": path label)."""
    if kind not in ("frames", "video"):
        raise ValueError(f"kind must be 'frames' or 'video', got {kind!r}")
    list_file = Path(list_file)
    try:
        lines = list_file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{list_file}: cannot read annotation list ({e.__class__.__name__})") from None
    n_fields, layout = (3, "path num_frames label") if kind == "frames" else (2, "path label")
    records = []
    for lineno, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{list_file}:{lineno}"
        fields = line.rsplit(maxsplit=n_fields - 1)
        if len(fields) != n_fields:
            raise DatasetError(f"{where}: expected '{layout}', got {line!r}")
        label = _int_field(fields[-1], "label", where, minimum=0)
        num_frames = _int_field(fields[1], "num_frames", where, minimum=1) if kind == "frames" else None
        records.append(VideoRecord(fields[0], label, num_frames, where))
    if not records:
        raise DatasetError(f"{list_file}: annotation list has no entries")
    return records


def read_class_names(list_file: str | Path, records: list[VideoRecord]) -> list[str]:
    """Class names from ``classes.txt`` next to ``list_file``, else "0".."K-1" with K = max label + 1."""
    classes_file = Path(list_file).with_name(CLASSES_FILE)
    if not classes_file.is_file():
        return [str(k) for k in range(max(r.label for r in records) + 1)]
    try:
        lines = classes_file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{classes_file}: cannot read class names ({e.__class__.__name__})") from None
    while lines and not lines[-1].strip():
        lines.pop()
    names = [line.strip() for line in lines]
    for lineno, name in enumerate(names, start=1):
        if not name:
            raise DatasetError(f"{classes_file}:{lineno}: empty class name")
    for r in records:
        if r.label >= len(names):
            raise DatasetError(f"{r.source}: label {r.label} out of range: {classes_file} has {len(names)} classes")
    return names


def write_list(path: str | Path, records: Iterable[VideoRecord]) -> Path:
    """Write records in the list format ``read_list`` reads (num_frames column when the record has it)."""
    path = Path(path)
    lines = [
        f"{r.path} {r.num_frames} {r.label}" if r.num_frames is not None else f"{r.path} {r.label}"
        for r in records
    ]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


@dataclasses.dataclass
class Hmdb51Split:
    """One HMDB51 split as video lists (paths ``<class>/<video>.avi`` relative to the video root)."""

    train: list[VideoRecord]
    test: list[VideoRecord]
    class_names: list[str]

    def write(self, out_dir: str | Path) -> tuple[Path, Path]:
        """Write ``train.txt``, ``test.txt`` and ``classes.txt`` into ``out_dir``; return the two lists."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / CLASSES_FILE).write_text("".join(n + "\n" for n in self.class_names), encoding="utf-8")
        return write_list(out_dir / "train.txt", self.train), write_list(out_dir / "test.txt", self.test)


_HMDB_SPLIT_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<split>\d+)\.txt$")


def hmdb51_lists(split_dir: str | Path, video_root: str | Path, split: int = 1) -> Hmdb51Split:
    """Build train/test video lists from HMDB51's official ``<class>_test_split<N>.txt`` files.

    Each split-file line is ``video.avi T`` with T = 1 (train), 2 (test) or 0 (unused). Labels are
    the classes in sorted order; every listed video must exist under ``video_root/<class>/``.
    """
    split_dir, video_root = Path(split_dir), Path(video_root)
    files = {}
    for f in split_dir.glob(f"*_test_split{split}.txt"):
        m = _HMDB_SPLIT_FILE.match(f.name)
        if m and int(m["split"]) == split:
            files[m["cls"]] = f
    if not files:
        raise DatasetError(f"{split_dir}: no HMDB51 split files '*_test_split{split}.txt'")
    class_names = sorted(files)
    train, test = [], []
    for label, name in enumerate(class_names):
        split_file = files[name]
        for lineno, raw in enumerate(split_file.read_text(encoding="utf-8").splitlines(), start=1):
            if not raw.strip():
                continue
            where = f"{split_file}:{lineno}"
            fields = raw.split()
            if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
                raise DatasetError(f"{where}: expected 'video.avi 0|1|2', got {raw.strip()!r}")
            if fields[1] == "0":
                continue
            rel = f"{name}/{fields[0]}"
            if not (video_root / rel).is_file():
                raise DatasetError(f"{where}: video {video_root / rel} not found")
            (train if fields[1] == "1" else test).append(VideoRecord(rel, label, source=where))
    return Hmdb51Split(train, test, class_names)
