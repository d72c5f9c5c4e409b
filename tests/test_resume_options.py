"""ffn-train --resume takes the run's saved options; flags given now override, a changed model is one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from ffn_edge.core.errors import ConfigError
from ffn_edge.data import SyntheticSet, make_synthetic
from ffn_edge.train import cli

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A run of 2 epochs stopped after the first, started with many non-default flags."""
    tmp = tmp_path_factory.mktemp("resume")
    s: SyntheticSet = make_synthetic(tmp / "data", num_classes=3, train_per_class=2, val_per_class=1, frames=16,
                                     size=32, seed=0)
    flags = ["--dataset", "frames", "--train-list", str(s.train_list), "--val-list", str(s.val_list),
             "--root", str(s.root), "--width-mult", "0.125", "--input-size", "32", "--resize-shorter", "32",
             "--batch-size", "3", "--lr", "0.02", "--epochs", "2", "--workers", "0", "--quiet"]
    assert cli([*flags, "--out", str(tmp / "run"), "--stop-after", "1"]) == 0
    return tmp / "run", flags


def epochs_logged(run: Path) -> list[int]:
    return [json.loads(line)["epoch"] for line in (run / "log.jsonl").read_text().splitlines()]


def test_resume_with_only_out_continues_with_the_saved_options(started, tmp_path):
    run, _ = started
    copy = shutil.copytree(run, tmp_path / "run")
    assert epochs_logged(copy) == [1]
    assert cli(["--out", str(copy), "--resume", "--workers", "0", "--quiet"]) == 0  # no flag retyped
    assert epochs_logged(copy) == [1, 2]


@pytest.mark.parametrize("flag,value,named", [("--arch", "tsm_mobilenetv2", "arch"),
                                              ("--width-mult", "0.25", "width_mult"),
                                              ("--dataset", "synthetic", "dataset")])
@pytest.mark.slow
def test_a_flag_that_changes_the_run_is_refused_in_one_line(started, flag, value, named):
    run, _ = started
    with pytest.raises(ConfigError, match=rf"--resume: options differ from the run in .*: {named}\b") as e:
        cli(["--out", str(run), "--resume", flag, value, "--workers", "0", "--quiet"])
    assert "\n" not in str(e.value)


def test_retyping_the_same_flags_still_resumes(started, tmp_path):
    run, flags = started
    copy = shutil.copytree(run, tmp_path / "run")
    assert cli([*flags, "--out", str(copy), "--resume"]) == 0
    assert epochs_logged(copy) == [1, 2]
