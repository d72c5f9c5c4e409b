"""benchmarks/gpu_latency.py: its GPU-independent parts, and one clear line where there is no GPU."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ffn_edge.export.tensorrt import gpu_name

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_latency.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("gpu_latency", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_a_gpu_it_fails_with_one_line():
    if gpu_name() is not None:
        pytest.skip("a GPU is present: the benchmark would run")
    out = subprocess.run([sys.executable, str(SCRIPT), "--runs", "1"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("gpu_latency: error: needs an NVIDIA GPU: ") and out.stderr.count("\n") == 1


def test_parity_reports_top1_and_max_delta(bench):
    ref = [np.array([[0.1, 0.9, 0.0]]), np.array([[2.0, 1.0, 0.0]])]
    assert bench.parity(ref, [r + 0.01 for r in ref]) == (True, pytest.approx(0.01))
    same, delta = bench.parity(ref, [ref[0], np.array([[1.0, 2.0, 0.0]])])
    assert not same and delta == pytest.approx(1.0)
    with pytest.raises(ValueError):
        bench.parity(ref, ref[:1])


def test_interleaved_runs_every_method_once_per_round_in_shuffled_order(bench):
    calls: list[str] = []
    samples = bench.interleaved({k: (lambda k=k: calls.append(k)) for k in "abc"}, rounds=20, seed=1)
    assert {k: len(v) for k, v in samples.items()} == {"a": 20, "b": 20, "c": 20}
    rounds = [tuple(calls[i : i + 3]) for i in range(0, 60, 3)]
    assert all(sorted(r) == ["a", "b", "c"] for r in rounds) and len(set(rounds)) > 1


def test_table_and_goals(bench):
    p50, p95 = bench.percentiles([1.0, 2.0, 3.0, 4.0, 100.0])
    assert p50 == 3.0 and p95 > 4.0
    table = bench.format_table(["frames", "trt-fp16", "ratio"], [[4, "1.00/1.20", 0.4], [16, "3.00/3.50", 0.55]])
    lines = table.splitlines()
    assert lines[0].split() == ["frames", "trt-fp16", "ratio"] and set(lines[1]) == {"-"}
    assert lines[2].split() == ["4", "1.00/1.20", "0.40"] and len({len(x) for x in lines}) == 1
    assert bench.verdict(0.4, 0.5).startswith("met") and bench.verdict(0.55, 0.5).startswith("MISSED")
    assert set(bench.METHODS) <= {"trt-fp32", "trt-fp16", "ort-cuda", "ort-tensorrt", "torch-cuda"}


@pytest.mark.slow
def test_tensorrt_engines_are_opened_from_the_manifest_the_build_wrote(bench, tmp_path, monkeypatch):
    """The benchmark builds engines, then opens them: a manifest read before the build lists none."""
    import torch
    import trt_fakes
    from ffn_edge.export import export_bundle

    from ffn_edge.checkpoint import CheckpointMeta, save_checkpoint
    from ffn_edge.models import ModelConfig, create_model

    torch.manual_seed(0)
    cfg = ModelConfig("tsm_mobilenetv2", 3, frame_counts=(4, 8), width_mult=0.35)
    save_checkpoint(tmp_path / "m.safetensors", create_model(cfg).eval(), CheckpointMeta(cfg, ["a", "b", "c"], 64, 72))
    bundle = Path(export_bundle(tmp_path / "m.safetensors", (4, 8), tmp_path / "m.ffn", verify=False))
    trt_fakes.install(monkeypatch, "10", trt_fakes.FakeCudart(), 3)
    m, first, opened = bench.open_engines(bundle, ("fp32", "fp16"))
    assert set(first) == set(opened) == {"trt-fp32", "trt-fp16"}
    assert len(m.extra["engines"]) == 2
    assert [b.name for b in opened.values()] == ["tensorrt[fp32]", "tensorrt[fp16]"]
    for b in opened.values():
        b.close()
