"""ffn-export's command line (export.cli): every bad option or checkpoint -> one line (FFNError; on the command
line: one stderr line, exit code 2), before anything is allocated; nothing is written at --out."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from ffn_edge.export.cli import run

from ffn_edge.core.errors import FFNError


@pytest.fixture(scope="module")
def ckpt(tiny_ckpt) -> Path:
    return tiny_ckpt


def _fifo(tmp: Path) -> Path:
    os.mkfifo(tmp / "f.safetensors")
    return tmp / "f.safetensors"


# (case, extra argv, checkpoint maker or None for the good one, expected text)
CASES = [
    ("frames 1e8", ["--frames", "2", "100000000"], None, "more than the 256 frames"),
    ("frames 1e9 text", ["--frames", "1e9"], None, "is not an integer"),
    ("frames 0", ["--frames", "0"], None, "must be positive"),
    ("opset 5", ["--frames", "2", "--opset", "5"], None, "--opset must be in [13, 21]"),
    ("opset 40", ["--frames", "2", "--opset", "40"], None, "--opset must be in [13, 21]"),
    ("verify clips 1e8", ["--frames", "2", "--verify-clips", "100000000"], None, "--verify-clips must be in"),
    ("verify clips 0", ["--frames", "2", "--verify-clips", "0"], None, "--verify-clips must be in"),
    ("fold budget inf", ["--frames", "2", "--fold-budget", "inf"], None, "--fold-budget must be >= 0 and <= 100"),
    ("fold budget nan", ["--frames", "2", "--fold-budget", "nan"], None, "--fold-budget must be >= 0 and <= 100"),
    ("checkpoint FIFO", ["--frames", "2"], _fifo, "is a FIFO"),
    ("checkpoint directory", ["--frames", "2"], lambda t: t, "is a directory"),
    ("checkpoint missing", ["--frames", "2"], lambda t: t / "nope.safetensors", "checkpoint file not found"),
    ("checkpoint garbage", ["--frames", "2"], lambda t: (t / "g.safetensors").write_bytes(b"\x01" * 99)
     and t / "g.safetensors", "not a readable safetensors checkpoint"),
]


@pytest.mark.parametrize("case,argv,make,text", CASES, ids=[c[0] for c in CASES])
def test_bad_export_input_is_one_line_and_writes_nothing(ckpt, tmp_path, case, argv, make, text):
    path = ckpt if make is None else make(tmp_path)
    out = tmp_path / "out.ffn"
    with pytest.raises(FFNError) as e:
        run(["--ckpt", str(path), "--out", str(out), *argv])
    assert "\n" not in str(e.value) and text in str(e.value), str(e.value)
    assert not out.exists()


def test_command_line_gives_one_stderr_line_and_exit_2(ckpt, tmp_path):
    r = subprocess.run([sys.executable, "-m", "ffn_edge.export.cli", "--ckpt", str(ckpt), "--frames", "2", "--opset",
                        "40", "--out", str(tmp_path / "o.ffn")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--opset must be in" in r.stderr, r.stderr
