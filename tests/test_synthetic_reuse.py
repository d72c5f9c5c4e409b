"""ffn-train --dataset synthetic reuses the set in --data-dir only when it was made with the same parameters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ffn_edge.data.errors import DatasetError
from ffn_edge.train import TrainConfig, build_data


def _cfg(data_dir: Path, **kw) -> TrainConfig:
    base = dict(dataset="synthetic", synth_classes=2, synth_train_per_class=1, synth_val_per_class=1,
                synth_frames=8, synth_size=16, data_dir=str(data_dir), input_size=16, resize_shorter=16,
                frame_counts=(2, 4), quiet=True)
    return TrainConfig(**{**base, **kw})


def test_the_same_parameters_reuse_the_set(tmp_path: Path) -> None:
    build_data(_cfg(tmp_path), tmp_path, (2, 4), (2, 4), True, False)
    first = (tmp_path / "train" / "c00_0000").stat().st_mtime_ns
    train_set, _, names, _ = build_data(_cfg(tmp_path), tmp_path, (2, 4), (2, 4), True, False)
    assert (tmp_path / "train" / "c00_0000").stat().st_mtime_ns == first  # not written again
    assert len(train_set) == 2 and len(names) == 2


def test_other_parameters_are_refused_naming_them(tmp_path: Path) -> None:
    build_data(_cfg(tmp_path), tmp_path, (2, 4), (2, 4), True, False)
    with pytest.raises(DatasetError, match=r"size 16 \(now 32\)") as e:
        build_data(_cfg(tmp_path, synth_size=32), tmp_path, (2, 4), (2, 4), True, False)
    assert "\n" not in str(e.value) and "--data-dir" in str(e.value)
    with pytest.raises(DatasetError, match=r"seed 0 \(now 3\)"):
        build_data(_cfg(tmp_path, seed=3), tmp_path, (2, 4), (2, 4), True, False)


def test_a_record_from_before_parameters_were_written_is_reused(tmp_path: Path) -> None:
    build_data(_cfg(tmp_path), tmp_path, (2, 4), (2, 4), True, False)
    record = tmp_path / "synthetic.json"
    old = json.loads(record.read_text())
    del old["params"]
    record.write_text(json.dumps(old))
    train_set, *_ = build_data(_cfg(tmp_path, synth_size=32), tmp_path, (2, 4), (2, 4), True, False)
    assert len(train_set) == 2


def test_a_broken_record_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "synthetic.json").write_text("{not json")
    with pytest.raises(DatasetError, match="cannot read the synthetic set's record"):
        build_data(_cfg(tmp_path), tmp_path, (2, 4), (2, 4), True, False)


def test_synth_seed_keeps_one_set_for_several_training_seeds(tmp_path: Path) -> None:
    build_data(_cfg(tmp_path, seed=0, synth_seed=7), tmp_path, (2, 4), (2, 4), True, False)
    *_, data = build_data(_cfg(tmp_path, seed=1, synth_seed=7), tmp_path, (2, 4), (2, 4), True, False)
    assert data["synthetic"]["seed"] == 7  # the checkpoint records the set it was validated on, for ffn-eval
    with pytest.raises(DatasetError, match=r"seed 7 \(now 1\)"):
        build_data(_cfg(tmp_path, seed=1), tmp_path, (2, 4), (2, 4), True, False)


def test_a_run_refused_before_writing_leaves_no_empty_out_folder(tmp_path: Path) -> None:
    from ffn_edge.core.errors import FFNError
    from ffn_edge.train import train

    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a checkpoint")
    data = tmp_path / "data"
    out = tmp_path / "run"
    with pytest.raises(FFNError):
        train(_cfg(data, init=str(junk), out=str(out), epochs=1, width_mult=0.0625, workers=0))
    assert not out.exists()  # created by the run, still empty: removed
    assert (data / "synthetic.json").is_file()  # what it made elsewhere (the data) stays
    out.mkdir()
    (out / "keep.txt").write_text("a user's file")
    with pytest.raises(FFNError):
        train(_cfg(data, init=str(junk), out=str(out), epochs=1, width_mult=0.0625, workers=0))
    assert (out / "keep.txt").read_text() == "a user's file"  # a folder it did not create is never removed
