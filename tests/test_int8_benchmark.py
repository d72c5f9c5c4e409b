"""benchmarks/int8.py --quick: the whole comparison (4 exports, latency, top-1) on a tiny model, end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "int8.py"


@pytest.mark.slow
def test_quick_run_prints_every_variant_and_the_three_goals(tmp_path):
    out = tmp_path / "int8.json"
    r = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--json", str(out)], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    for line in ("fp32 ", "int8 ", "int8-shared-calib ", "int8-folded ", "goal INT8 bytes", "goal INT8 ORT CPU latency",
                 "goal top-1 drop", "load average"):
        assert line in r.stdout
    (res,) = json.loads(out.read_text())
    assert set(res["bytes"]) == {"fp32", "int8", "int8-shared-calib", "int8-folded"}
    assert res["bytes"]["int8"] < res["bytes"]["fp32"]
    for variant in ("int8", "int8-folded"):
        assert all(v["p50_ms"] > 0 for v in res["latency"][variant].values())
    assert all(0 <= a["agree"] <= 100 for per_n in res["accuracy"].values() for a in per_n.values())
