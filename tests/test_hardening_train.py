"""Issue 14, item 8: --resume continues a run directory that was moved or copied, and starts a new run when there
is nothing to resume yet (so a wrapper may always pass --resume)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ffn_edge.checkpoint import read_meta
from ffn_edge.core.errors import FFNError
from ffn_edge.data import SyntheticSet
from ffn_edge.train import TrainConfig, train

torch.set_num_threads(1)


def tiny(synth: SyntheticSet, out: Path, **kw) -> TrainConfig:
    base = dict(dataset="frames", train_list=str(synth.train_list), val_list=str(synth.val_list),
                root=str(synth.root), width_mult=0.0625, input_size=32, resize_shorter=32, batch_size=2, workers=0,
                frame_counts=(2, 4), epochs=2, quiet=True, out=str(out))
    return TrainConfig(**{**base, **kw})


def test_resume_of_a_moved_run_matches_the_uninterrupted_run(synth, tmp_path):
    train(tiny(synth, tmp_path / "a"))
    train(tiny(synth, tmp_path / "b", stop_after=1))
    shutil.move(tmp_path / "b", tmp_path / "moved")
    train(tiny(synth, tmp_path / "moved", resume=True))
    assert read_meta(tmp_path / "moved" / "last.safetensors").extra["epoch"] == 2
    a, b = load_file(tmp_path / "a" / "last.safetensors"), load_file(tmp_path / "moved" / "last.safetensors")
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_with_nothing_to_resume_starts_a_new_run(synth, tmp_path, capsys):
    train(tiny(synth, tmp_path / "fresh", epochs=1, resume=True))
    assert read_meta(tmp_path / "fresh" / "last.safetensors").extra["epoch"] == 1
    assert "nothing to resume" in capsys.readouterr().err


def test_resume_still_refuses_changed_options(synth, tmp_path):
    train(tiny(synth, tmp_path / "c", stop_after=1))
    with pytest.raises(FFNError, match="lr"):
        train(tiny(synth, tmp_path / "c", lr=0.5, resume=True))
