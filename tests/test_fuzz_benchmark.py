"""benchmarks/fuzz.py keeps running over its newer surfaces (a few inputs each), and finds nothing there."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SURFACES = ["int8", "causal", "steps", "readonly", "threads", "frames", "cli-init"]


@pytest.mark.slow
def test_fuzz_runs_every_new_surface_and_counts_no_escape():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fuzz.py"), "--n", "4", "--surfaces", *SURFACES],
                         capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = {line.split()[0]: line.split() for line in out.stdout.splitlines()
            if line.split() and line.split()[0] in SURFACES}
    assert set(rows) == set(SURFACES), out.stdout
    for row in rows.values():
        inputs, ok, documented, undocumented, hang, crash, silent, touched = map(int, row[1:9])
        assert inputs == 4 and ok + documented == 4, row
        assert undocumented == hang == crash == silent == touched == 0, row
