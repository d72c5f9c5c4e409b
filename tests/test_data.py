"""Data loaders: list parsing, frame folders and videos made here, transforms, skip/raise, synthetic set."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from builders import write_video
from torch.utils.data import DataLoader

from ffn_edge.data import DatasetError, VideoDataset, hmdb51_lists, make_synthetic, read_list

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _frame(t: int, h: int = 40, w: int = 48) -> np.ndarray:
    """A BGR frame whose pixels encode its index t (so tests can tell which frame was sampled)."""
    rng = np.random.default_rng(t)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    image[:2, :2] = t
    return image


def _frame_folder(root: Path, name: str, n: int, template: str = "{:05d}.jpg", start: int = 1) -> None:
    (root / name).mkdir(parents=True)
    for t in range(n):
        cv2.imwrite(str(root / name / template.format(t + start)), _frame(t))


def _video(path: Path, n: int, size: tuple[int, int] = (48, 40)) -> None:
    write_video(path, (np.full((size[1], size[0], 3), 10 * t, np.uint8) for t in range(n)), fps=10.0)


def _reference_val(image: np.ndarray, resize_shorter: int, size: int) -> np.ndarray:
    """Resize shorter side (INTER_LINEAR, truncated long side) + centre crop + normalise, written out."""
    h, w = image.shape[:2]
    nh, nw = (resize_shorter, int(resize_shorter * w / h)) if h <= w else (int(resize_shorter * h / w), resize_shorter)
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    top, left = int(round((nh - size) / 2)), int(round((nw - size) / 2))
    rgb = resized[top : top + size, left : left + size, ::-1].astype(np.float32) / 255
    return ((rgb - np.array(MEAN, np.float32)) / np.array(STD, np.float32)).transpose(2, 0, 1)


def test_list_parsing_labels_lengths_and_comments(tmp_path: Path) -> None:
    f = tmp_path / "list.txt"
    f.write_text("# comment\nsome dir/a 12 3\n\nb 5 0\n")
    records = read_list(f, "frames")
    assert [(r.path, r.num_frames, r.label) for r in records] == [("some dir/a", 12, 3), ("b", 5, 0)]
    assert records[1].source == f"{f}:4"
    f.write_text("v/x.mp4 2\n")
    assert read_list(f, "video")[0].label == 2


@pytest.mark.parametrize(
    ("kind", "line", "what"),
    [
        ("frames", "a 12", "expected 'path num_frames label'"),
        ("frames", "a x 1", "num_frames must be an integer"),
        ("frames", "a 0 1", "num_frames must be >= 1"),
        ("video", "a.mp4 -1", "label must be >= 0"),
        ("video", "a.mp4", "expected 'path label'"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path: Path, kind: str, line: str, what: str) -> None:
    f = tmp_path / "list.txt"
    f.write_text(f"ok 4 0\n{line}\n" if kind == "frames" else f"ok.mp4 0\n{line}\n")
    with pytest.raises(DatasetError, match=f"{f}:2: {what}"):
        read_list(f, kind)


def test_class_names_file_and_out_of_range_label(tmp_path: Path) -> None:
    _frame_folder(tmp_path, "a", 4)
    (tmp_path / "list.txt").write_text("a 4 1\n")
    assert VideoDataset(tmp_path / "list.txt", tmp_path, kind="frames", train=False).class_names == ["0", "1"]
    (tmp_path / "classes.txt").write_text("only one\n")
    with pytest.raises(DatasetError, match=r"list.txt:1: label 1 out of range"):
        VideoDataset(tmp_path / "list.txt", tmp_path, kind="frames", train=False)
    (tmp_path / "classes.txt").write_text("zero\none\n")
    assert VideoDataset(tmp_path / "list.txt", tmp_path, kind="frames", train=False).class_names == ["zero", "one"]


def test_frame_folder_template_start_index_and_val_centre_frames(tmp_path: Path) -> None:
    _frame_folder(tmp_path, "clips/a", 16, template="img_{:04d}.png", start=0)
    (tmp_path / "list.txt").write_text("clips/a 16 2\n")
    ds = VideoDataset(
        tmp_path / "list.txt", tmp_path, kind="frames", frame_counts=(2, 4), train=False, input_size=32,
        resize_shorter=36, template="img_{:04d}.png", start_index=0,
    )
    (two, four), label = ds[0]
    assert label == 2 and two.shape == (2, 3, 32, 32) and four.shape == (4, 3, 32, 32)
    assert two.dtype == torch.float32
    # Centre frame per segment: 16 frames in 4 segments -> 2, 6, 10, 14; PNG is lossless.
    for row, t in enumerate((2, 6, 10, 14)):
        np.testing.assert_allclose(four[row].numpy(), _reference_val(_frame(t), 36, 32), atol=1e-5)
    for row, t in enumerate((4, 12)):
        np.testing.assert_allclose(two[row].numpy(), _reference_val(_frame(t), 36, 32), atol=1e-5)


def test_val_transform_equals_reference_resize_and_centre_crop(tmp_path: Path) -> None:
    _frame_folder(tmp_path, "a", 8, template="{:03d}.png")
    (tmp_path / "list.txt").write_text("a 8 0\n")
    ds = VideoDataset(tmp_path / "list.txt", tmp_path, kind="frames", frame_counts=(1,), train=False,
                      input_size=24, resize_shorter=30, template="{:03d}.png")
    (clip,), _ = ds[0]
    np.testing.assert_allclose(clip[0].numpy(), _reference_val(_frame(4), 30, 24), atol=1e-5)


def test_train_samplings_share_one_crop_and_stay_in_segments(tmp_path: Path) -> None:
    _frame_folder(tmp_path, "a", 32, template="{:05d}.png")
    (tmp_path / "list.txt").write_text("a 32 0\n")
    ds = VideoDataset(tmp_path / "list.txt", tmp_path, kind="frames", frame_counts=(4, 32), train=True,
                      input_size=24, template="{:05d}.png", seed=3)
    (four, all32), _ = ds[0]
    # With 32 segments of 32 frames every frame is taken once, so each 4-frame sample must equal one
    # of them exactly: the same crop was applied to both samplings.
    flat = all32.flatten(1)
    rows = [int(torch.nonzero((flat == f.flatten()).all(1))[0]) for f in four]
    assert [r // 8 for r in rows] == [0, 1, 2, 3]
    again, _ = ds[0]
    assert all(torch.equal(a, b) for a, b in zip(again, (four, all32), strict=True))  # same (seed, epoch, index)
    ds.set_epoch(1)
    assert not torch.equal(ds[0][0][0], four)


def test_video_loader_and_dataloader_shapes(tmp_path: Path) -> None:
    for i in range(3):
        _video(tmp_path / f"v{i}.mp4", 20 + i)
    (tmp_path / "list.txt").write_text("".join(f"v{i}.mp4 {i}\n" for i in range(3)))
    for train in (False, True):
        ds = VideoDataset(tmp_path / "list.txt", tmp_path, kind="video", frame_counts=(2, 4), train=train,
                          input_size=32, resize_shorter=40)
        clips, labels = next(iter(DataLoader(ds, batch_size=3, num_workers=0)))
        assert isinstance(clips, list | tuple)
        assert [tuple(c.shape) for c in clips] == [(3, 2, 3, 32, 32), (3, 4, 3, 32, 32)]
        assert labels.tolist() == [0, 1, 2]
    # Val, 2 frames of 20: centre frames 5 and 15, whose grey level is 10 * t (mp4v is lossy: ~).
    ds = VideoDataset(tmp_path / "list.txt", tmp_path, kind="video", frame_counts=(2,), train=False,
                      input_size=32, resize_shorter=40, mean=(0, 0, 0), std=(1, 1, 1))
    (clip,), _ = ds[0]
    assert clip[:, 0].mean(dim=(1, 2)).mul(255).sub(torch.tensor([50.0, 150.0])).abs().max() < 6


def test_unreadable_frame_raise_or_skip(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _frame_folder(tmp_path, "good", 8)
    _frame_folder(tmp_path, "bad", 8)
    (tmp_path / "bad" / "00004.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "list.txt").write_text("bad 8 1\ngood 8 0\n")
    kw = dict(kind="frames", frame_counts=(8,), train=False, input_size=32, resize_shorter=32)
    with pytest.raises(DatasetError, match=r"bad/00004.jpg: frame missing or not a readable image"):
        VideoDataset(tmp_path / "list.txt", tmp_path, **kw)[0]
    ds = VideoDataset(tmp_path / "list.txt", tmp_path, on_error="skip", **kw)
    (_, label), (_, label2) = ds[0], ds[0]
    assert (label, label2, ds.skipped) == (0, 0, 1)
    assert "1 skipped so far" in caplog.text


def test_unreadable_video_raises_naming_file(tmp_path: Path) -> None:
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 100)
    (tmp_path / "list.txt").write_text("broken.mp4 0\nmissing.mp4 0\n")
    ds = VideoDataset(tmp_path / "list.txt", tmp_path, kind="video", train=False, input_size=32, resize_shorter=32)
    with pytest.raises(DatasetError, match="broken.mp4"):
        ds[0]
    with pytest.raises(DatasetError, match="missing.mp4: video not found"):
        ds[1]


def test_hmdb51_split_files(tmp_path: Path) -> None:
    splits, videos = tmp_path / "splits", tmp_path / "videos"
    splits.mkdir()
    for cls, entries in {"wave": ["w1.avi 1", "w2.avi 2", "w3.avi 0"], "clap": ["c1.avi 2", "c2.avi 1"]}.items():
        (splits / f"{cls}_test_split1.txt").write_text("".join(e + " \n" for e in entries))
        (splits / f"{cls}_test_split2.txt").write_text("")
        (videos / cls).mkdir(parents=True)
        for e in entries:
            (videos / cls / e.split()[0]).write_bytes(b"")
    split = hmdb51_lists(splits, videos, split=1)
    assert split.class_names == ["clap", "wave"]
    assert [(r.path, r.label) for r in split.train] == [("clap/c2.avi", 0), ("wave/w1.avi", 1)]
    assert [(r.path, r.label) for r in split.test] == [("clap/c1.avi", 0), ("wave/w2.avi", 1)]
    train_list, _ = split.write(tmp_path / "lists")
    assert train_list.read_text() == "clap/c2.avi 0\nwave/w1.avi 1\n"
    assert (tmp_path / "lists" / "classes.txt").read_text() == "clap\nwave\n"
    (splits / "wave_test_split1.txt").write_text("w1.avi 1\nw2.avi 7\n")
    with pytest.raises(DatasetError, match=r"wave_test_split1.txt:2: expected 'video.avi 0\|1\|2'"):
        hmdb51_lists(splits, videos, split=1)


@pytest.mark.parametrize("kind", ["frames", "video"])
def test_synthetic_is_deterministic_and_loadable(tmp_path: Path, kind: str) -> None:
    kw = dict(num_classes=4, train_per_class=1, val_per_class=1, frames=16, size=32, seed=5, kind=kind)
    a, b = make_synthetic(tmp_path / "a", **kw), make_synthetic(tmp_path / "b", **kw)
    assert a.train_list.read_text() == b.train_list.read_text()
    files = sorted(p.relative_to(a.root) for p in a.root.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b.root) for p in b.root.rglob("*") if p.is_file())
    for f in files:
        assert (a.root / f).read_bytes() == (b.root / f).read_bytes(), f
    clip_file = next(f for f in files if f.suffix in (".jpg", ".mp4"))
    other = make_synthetic(tmp_path / "c", **{**kw, "seed": 6})
    assert (other.root / clip_file).read_bytes() != (a.root / clip_file).read_bytes()
    load = dict(kind=kind, frame_counts=(4, 8), train=False, input_size=28, resize_shorter=32)
    ds_a, ds_b = VideoDataset(a.val_list, a.root, **load), VideoDataset(b.val_list, b.root, **load)
    assert ds_a.class_names == a.class_names and len(ds_a) == 4
    for i in range(len(ds_a)):
        (four_a, eight_a), label = ds_a[i]
        (four_b, eight_b), _ = ds_b[i]
        assert label == i and four_a.shape == (4, 3, 28, 28) and eight_a.shape == (8, 3, 28, 28)
        assert torch.equal(four_a, four_b) and torch.equal(eight_a, eight_b)
