"""benchmarks/step_backends.py --quick: both exports, the alternating step timing and the table, end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "step_backends.py"


@pytest.mark.slow
def test_quick_run_prints_a_row_per_count_with_the_goal(tmp_path) -> None:
    r = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--rounds", "2", "--runs", "3", "--cpu", "-1",
                        "--work", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [line for line in r.stdout.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [row.split("|")[1].strip() for row in rows] == ["2", "4"]
    for row in rows:
        fp32, int8, ratio, goal = (c.strip() for c in row.split("|")[2:6])
        assert abs(float(int8) / float(fp32) - float(ratio)) < 0.5 and goal in ("met", "MISSED")
    assert "INT8 step_subnet1.onnx vs INT8 clip graph at 4 frames: top-1 agreement" in r.stdout
    again = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--rounds", "1", "--runs", "1", "--cpu", "-1",
                            "--work", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "reusing the bundles" in again.stderr


def test_bad_counts_are_refused(tmp_path) -> None:
    r = subprocess.run([sys.executable, str(SCRIPT), "--rounds", "0"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "must be >= 1" in r.stderr
