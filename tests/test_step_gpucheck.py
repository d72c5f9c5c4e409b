"""The GPU check's step-graph checks: skipped in one line without their library, and, run end to end on the
one device-buffer path this machine has (IO binding on ORT's CPU EP), a parity and latency table."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from ffn_edge.runtime import session
from ffn_edge.runtime.backends.steps_ort_cuda import OrtDeviceStepGraphs

from ffn_edge.gpucheck import CHECKS, environment, steps
from ffn_edge.gpucheck.config import TINY, CheckConfig
from ffn_edge.gpucheck.report import Report, Skip


def test_step_checks_are_in_the_gpu_check_and_skip_without_their_library(tmp_path) -> None:
    assert {"steps-ort-cuda", "steps-tensorrt-fp16", "steps-tensorrt-int8"} <= set(CHECKS)
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is here: the checks run")
    others = [c for c in CHECKS if not c.startswith("steps-")]
    out = subprocess.run([sys.executable, "-m", "ffn_edge.gpucheck", "--out", str(tmp_path), "--skip", *others],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = {s.split(":")[0]: s for s in out.stdout.splitlines() if s.startswith("steps-")}
    if environment.ort_provider("CUDAExecutionProvider"):
        assert lines["steps-ort-cuda"].startswith("steps-ort-cuda: skipped: onnxruntime-gpu not installed")
    if environment.tensorrt_missing() == "skipped: tensorrt not installed":
        assert lines["steps-tensorrt-fp16"] == "steps-tensorrt-fp16: skipped: tensorrt not installed"
        assert lines["steps-tensorrt-int8"] == "steps-tensorrt-int8: skipped: tensorrt not installed"


def test_step_check_steps_both_sides_and_tables_parity_and_latency(tmp_path, monkeypatch) -> None:
    """IO-bound step graphs on the CPU EP stand in for the CUDA ones: export, parity, latency, table."""
    monkeypatch.setitem(steps.BACKENDS, "steps-ort-cpu", ("ort-cpu", None, lambda: None))
    monkeypatch.setattr(session, "open_step_graphs", lambda bundle, m, backend, device, threads: OrtDeviceStepGraphs(
        bundle, m, device, 1, device_type="cpu", providers=["CPUExecutionProvider"]))
    report = Report({})
    detail, data = steps.check(CheckConfig(device="cpu", **TINY), tmp_path, report, "steps-ort-cpu")
    assert "top-1 identical at 2/2 sub-networks" in detail and "step buffers on cpu:0" in detail
    assert all(data[str(n)]["max_abs_delta_logit"] < 1e-4 for n in TINY["frames"])
    ((title, (_, rows)),) = report.tables.items()
    assert len(rows) == 2 and "steps-ort-cpu" in title


def test_a_backend_that_opens_cpu_step_graphs_is_a_failure(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(steps.BACKENDS, "steps-ort-cpu", ("ort-cpu", None, lambda: None))
    with pytest.raises(RuntimeError, match="opened the CPU step graphs"):
        steps.check(CheckConfig(device="cpu", **TINY), tmp_path, Report({}), "steps-ort-cpu")
    monkeypatch.setitem(steps.BACKENDS, "steps-none", ("ort-cpu", None, lambda: "skipped: widget not installed"))
    with pytest.raises(Skip, match="^skipped: widget not installed$"):
        steps.check(CheckConfig(device="cpu", **TINY), tmp_path, Report({}), "steps-none")
