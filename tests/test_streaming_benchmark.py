"""benchmarks/streaming.py --quick: the whole benchmark end to end on tiny models (a smoke test)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _benchmark(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "streaming.py"), "--quick", *args],
                          capture_output=True, text=True, timeout=500, env=env)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """The whole quick benchmark once: its output folder (models, bundles) and what it printed."""
    out = tmp_path_factory.mktemp("streaming")
    return out, _benchmark("--models", "demo", "--out", str(out))


@pytest.mark.slow
def test_streaming_benchmark_quick_prints_every_table(quick_run) -> None:
    _, out = quick_run
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout
    for title in ("## Per-label compute", "## Online stream in real time", "## Continuous stream",
                  "## Sub-network switches"):
        assert title in text
    compute = re.findall(r"^\| demo \(R18 x0.125, 28 px\) \| (\d+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|",
                         text.split("## Online")[0], re.M)
    assert [int(n) for n, *_ in compute] == [2, 4] and all(float(c) > 0 and float(s) > 0 for _, c, s, _ in compute)
    live = re.search(r"^\| demo[^|]*\| (\d+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|", text.split("## Online")[1], re.M)
    assert live and int(live[1]) > 0 and float(live[2]) <= float(live[3])  # p50 <= p99
    assert re.search(r"^\| 0 \| \(iv\) causal continuous, trained with carried state \| [\d.]+ \| [\d.]+ \|$",
                     text, re.M)
    assert re.search(r"^\| n=4/2 every 2 windows \| \d+ \| \d+ \| [1-9]\d* \| \d+ \| \d+ \|$", text, re.M)


@pytest.mark.slow
def test_only_continuous_prints_the_continuous_table_alone(quick_run) -> None:
    folder, _ = quick_run  # its models and bundles, taken again (--reuse) instead of trained a second time
    out = _benchmark("--only", "continuous", "--reuse", "--out", str(folder))
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout
    assert "## Continuous stream" in text and "## Per-label compute" not in text and "## Sub-network" not in text
    for row in ("(i) bidirectional clip", "(ii) causal, zero buffers per video",
                "(iii) causal continuous, trained on clips", "(iv) causal continuous, trained with carried state"):
        assert re.search(rf"^\| 0 \| {re.escape(row)} \| [\d.]+ \| [\d.]+ \|$", text, re.M), row
    assert re.search(r"^seed mean: \(ii\) - \(iv\) at each count: .* \((goal <= 2 at every count: )(met|MISSED)\)$",
                     text, re.M)
