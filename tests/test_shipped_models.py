"""What ships in models/ works on any machine: no path of the machine that trained it, a valid seal,
and ``ffn-eval`` finds its validation set (the synthetic set, re-created from its recorded parameters)."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ffn_edge.checkpoint import load_checkpoint, read_meta, save_checkpoint
from ffn_edge.core.errors import FFNError
from ffn_edge.data.synthetic_record import check_spec, synthetic_val_set

ROOT = Path(__file__).resolve().parents[1]
MODELS = sorted(p for p in (ROOT / "models").rglob("*") if p.is_file())
ABSOLUTE = re.compile(r'"(/|~/|[A-Za-z]:[\\/]|\\\\\\\\)[^"]*"')  # a JSON string that is an absolute path


def strings(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)
    elif isinstance(value, str):
        yield value
        if value[:1] in "{[":  # JSON nested in a string (the safetensors metadata values)
            with contextlib.suppress(ValueError):
                yield from strings(json.loads(value))


def fresh_env(tmp_path: Path) -> dict[str, str]:
    """No inherited cache: the synthetic set is created in this test's folder."""
    return {"PATH": "/usr/bin:/bin", "XDG_CACHE_HOME": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.name)
def test_shipped_file_carries_no_machine_path(path: Path) -> None:
    blob = path.read_bytes()
    assert path.suffix == ".safetensors", "only checkpoints ship in models/"
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + n])
    bad = [s for s in strings(header) if re.fullmatch(r"(/|~/|[A-Za-z]:[\\/]|\\\\).*", s, re.S)]
    assert not bad, bad
    assert not ABSOLUTE.search(blob[8:8 + n].decode()), "an absolute path in the raw header"


def test_models_folder_is_not_empty() -> None:
    assert MODELS


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.name)
def test_shipped_checkpoint_is_sealed_and_records_where_to_validate(path: Path) -> None:
    _, meta = load_checkpoint(path)  # verifies the checksum
    data = meta.extra["data"]
    assert "synthetic" in data and check_spec(data["synthetic"])


def test_synthetic_record_is_checked_and_bounded(tmp_path: Path) -> None:
    good = {"num_classes": 2, "val_per_class": 1, "frames": 8, "size": 16, "seed": 3}
    for bad in ({**good, "val_per_class": 10**9}, {**good, "frames": "8"}, {**good, "size": True},
                {k: v for k, v in good.items() if k != "seed"}, [1, 2], {**good, "root": "/x"}):
        with pytest.raises(FFNError):
            synthetic_val_set(bad, cache=tmp_path)
    assert not any(tmp_path.iterdir())


def test_synthetic_val_set_is_the_one_training_saw(tmp_path: Path) -> None:
    from ffn_edge.data import make_synthetic

    spec = {"num_classes": 2, "val_per_class": 2, "frames": 8, "size": 16, "seed": 5}
    val_list, root = synthetic_val_set(spec, cache=tmp_path / "cache")
    assert synthetic_val_set(spec, cache=tmp_path / "cache") == (val_list, root)  # generated once
    trained = make_synthetic(tmp_path / "train", num_classes=2, train_per_class=3, val_per_class=2, frames=8,
                             size=16, seed=5)
    assert val_list.read_text() == trained.val_list.read_text()
    for line in val_list.read_text().splitlines():
        clip = line.split()[0]
        for f in sorted((root / clip).iterdir()):
            assert f.read_bytes() == (trained.root / clip / f.name).read_bytes()


def test_ffn_eval_finds_the_synthetic_set_of_a_moved_checkpoint(tmp_path: Path) -> None:
    """A checkpoint trained on the synthetic set evaluates after its training folder is gone."""
    from ffn_edge.train import TrainConfig, train

    run = tmp_path / "run"
    train(TrainConfig(dataset="synthetic", synth_classes=2, synth_train_per_class=2, synth_val_per_class=1,
                      synth_frames=16, synth_size=32, width_mult=0.125, input_size=32, resize_shorter=32,
                      batch_size=2, workers=0, epochs=1, quiet=True, out=str(run)))
    meta = read_meta(run / "last.safetensors")
    assert set(meta.extra["data"]) == {"kind", "synthetic"}  # parameters, no folder of this machine
    moved = tmp_path / "moved.safetensors"
    shutil.copy(run / "last.safetensors", moved)
    shutil.rmtree(run)
    out = subprocess.run([sys.executable, "-m", "ffn_edge.evaluate", "--ckpt", str(moved), "--json", "--workers", "0"],
                         capture_output=True, text=True, timeout=300,
                         env=fresh_env(tmp_path))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["frames"] == [4, 8, 16]
    assert "ffn-eval: 100 % (" in out.stderr  # progress on stderr (one line per 10 % off a terminal)


@pytest.mark.slow
def test_ffn_eval_on_the_shipped_checkpoint_from_a_fresh_folder(tmp_path: Path) -> None:
    fresh = tmp_path / "clone" / "models"
    fresh.mkdir(parents=True)
    shutil.copy(ROOT / "models" / "demo_ffn.safetensors", fresh)
    out = subprocess.run([sys.executable, "-m", "ffn_edge.evaluate", "--ckpt", "models/demo_ffn.safetensors",
                          "--json", "--workers", "0"], capture_output=True, text=True, timeout=600, cwd=fresh.parent,
                         env=fresh_env(tmp_path))
    assert out.returncode == 0, out.stderr
    assert min(json.loads(out.stdout)["top1"]) > 50  # 10 classes: a broken set would be near 10 %


def test_resealing_keeps_tensors_and_seal(tmp_path: Path) -> None:
    model, meta = load_checkpoint(ROOT / "models" / "demo_ffn.safetensors")
    save_checkpoint(tmp_path / "c.safetensors", model, meta)
    again, meta2 = load_checkpoint(tmp_path / "c.safetensors")
    assert meta2.extra == meta.extra
