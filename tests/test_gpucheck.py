"""The offline GPU check (python -m ffn_edge.gpucheck): on this CPU machine every GPU part is skipped
with one line and it exits 0; with --device cpu --tiny its torch parts run for real on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ffn_edge.gpucheck import CHECKS, cli, engines, environment, training
from ffn_edge.gpucheck.config import TINY, CheckConfig
from ffn_edge.gpucheck.report import Report, Skip


def gpucheck(*args: str, timeout: int = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ffn_edge.gpucheck", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_without_cuda_every_gpu_check_says_skipped_and_it_exits_0(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is here: the checks run (test_gpucheck_runs_on_the_gpu)")
    out = gpucheck("--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    lines = {s.split(":")[0]: s for s in out.stdout.splitlines() if not s.startswith("gpucheck:")}
    assert list(lines) == list(CHECKS)
    assert all(": skipped: " in s for s in lines.values()), lines
    assert lines["train-bf16"] == "train-bf16: skipped: no CUDA device"
    if environment.tensorrt_missing() == "skipped: tensorrt not installed":
        assert lines["tensorrt-fp16"] == "tensorrt-fp16: skipped: tensorrt not installed"
    assert lines["ort-cuda"].startswith("ort-cuda: skipped: onnxruntime-gpu not installed")
    report = json.loads((tmp_path / "gpucheck.json").read_text())
    assert [c["status"] for c in report["checks"]] == ["skipped"] * len(CHECKS) and report["failed"] == 0
    md = (tmp_path / "gpucheck.md").read_text()
    assert all(f"| {name} | skipped | skipped: " in md for name in CHECKS)


@pytest.mark.slow
def test_tiny_run_on_the_cpu_trains_evaluates_and_times_for_real(tmp_path):
    out = gpucheck("--out", str(tmp_path), "--device", "cpu", "--tiny", timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads((tmp_path / "gpucheck.json").read_text())
    status = {c["name"]: c for c in report["checks"]}
    for name in ("train-bf16", "train-fp16", "train-ddp", "eval-cuda-vs-cpu", "torch-eager"):
        assert status[name]["status"] == "ok", status[name]
    assert status["train-ddp"]["data"]["steps"] == CheckConfig(**TINY).steps
    assert not status["train-fp16"]["data"]["grad_scaler"]  # no GradScaler without CUDA
    assert status["eval-cuda-vs-cpu"]["data"]["per_subnet"][0]["max_abs_delta_logit"] == 0.0
    assert status["torch-compile"]["detail"] == "skipped: --no-compile"
    assert any(t.startswith("torch eager latency, cpu") for t in report["tables"])


def test_a_failing_check_is_one_line_the_next_still_runs_and_the_exit_is_1(tmp_path, monkeypatch, capsys):
    def boom(*_):
        raise RuntimeError("long story\nexit 2: the last line")

    def fine(*_):
        return "fine", {"x": 1}

    monkeypatch.setattr(cli, "CHECKS", {"boom": boom, "fine": fine, "skipping": lambda *_: (_ for _ in ()).throw(
        Skip("skipped: widget not installed"))})
    assert cli.cli(["--out", str(tmp_path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("boom: failed: RuntimeError: exit 2: the last line (")
    assert lines[2].startswith("fine: ok: fine (") and lines[3] == "skipping: skipped: widget not installed"
    assert "FAILED: boom" in lines[4]
    assert json.loads((tmp_path / "gpucheck.json").read_text())["failed"] == 1


def test_bad_arguments_are_one_line_and_exit_2(tmp_path):
    out = gpucheck("--out", str(tmp_path), "--epochs", "0")
    assert out.returncode == 2 and out.stderr == "gpucheck: error: --epochs must be >= 1, got 0\n"
    out = gpucheck("--out", str(tmp_path), "--skip", "nope")
    assert out.returncode == 2 and out.stderr.count("\n") == 1


def test_a_missing_library_is_a_skip_line_not_a_crash(tmp_path, monkeypatch):
    assert environment.missing({"no_such_module_ffn": "ffn-widget"}) == "skipped: ffn-widget not installed"
    monkeypatch.setattr(environment, "TRAINING", {**environment.TRAINING, "no_such_module_ffn": "ffn-widget"})
    with pytest.raises(Skip, match="^skipped: ffn-widget not installed$"):
        training.train(CheckConfig(device="cpu", **TINY), tmp_path, "bf16")


def test_engine_check_exports_and_compares_with_ort_cpu(tmp_path, monkeypatch):
    """The GPU backends' check on the one backend this machine has (ORT CPU): export, parity, latency table."""
    monkeypatch.setitem(engines.BACKENDS, "ort-cpu", ("ort-cpu", None, lambda: None))
    report = Report({})
    detail, data = engines.check(CheckConfig(device="cpu", **TINY), tmp_path, report, "ort-cpu")
    assert "top-1 identical at 2/2 frame counts" in detail
    assert all(data[str(n)]["max_abs_delta_logit"] < 1e-4 for n in TINY["frames"])
    assert len(next(iter(report.tables.values()))[1]) == 2


@pytest.mark.gpu
def test_gpucheck_runs_on_the_gpu(tmp_path):
    out = gpucheck("--out", str(tmp_path), "--epochs", "2", "--runs", "10", "--size", "112", timeout=900)
    report = json.loads((tmp_path / "gpucheck.json").read_text())
    status = {c["name"]: c for c in report["checks"]}
    assert out.returncode == 0, [c for c in report["checks"] if c["status"] == "failed"]
    for name in ("train-fp16", "train-ddp", "eval-cuda-vs-cpu", "torch-eager", "torch-cuda-graphs", "torch-memory"):
        assert status[name]["status"] == "ok", status[name]
    assert status["train-fp16"]["data"]["grad_scaler"]
    assert Path(report["environment"]["executable"]).exists()


@pytest.mark.slow
def test_gpu_check_script_installs_nothing_when_importable_and_runs_the_check(tmp_path):
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([str(root / "tools" / "gpu_check.sh"), "--python", sys.executable, "--out", str(tmp_path),
                          "--skip", *CHECKS], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "offline_install" not in out.stderr  # already importable: no pip run
    assert json.loads((tmp_path / "gpucheck.json").read_text())["environment"]["executable"] == sys.executable
    bad = subprocess.run([str(root / "tools" / "gpu_check.sh"), "--python", str(tmp_path / "no-python")],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 3 and bad.stderr.count("\n") == 1 and "no interpreter" in bad.stderr


def test_every_ffn_edge_subpackage_ships_in_the_wheel():
    """pyproject lists packages explicitly: one left out (the GPU check) would be missing from a wheel install."""
    tomllib = pytest.importorskip("tomllib")
    root = Path(__file__).resolve().parents[1]
    setuptools = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    if "packages" not in setuptools or not isinstance(setuptools["packages"], list):
        pytest.skip("packages are found, not listed")
    found = {".".join(("ffn_edge", *p.parent.relative_to(root / "ffn_edge").parts))
             for p in (root / "ffn_edge").rglob("__init__.py")}
    assert found <= set(setuptools["packages"]), found - set(setuptools["packages"])


@pytest.mark.slow
def test_run_sh_test_gpu_system_runs_the_gpu_tests_with_the_given_interpreter(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is here: the gpu tests would run for real")
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([str(root / "run.sh"), "test-gpu", "--system", "tests/test_gpu_train.py"],
                         capture_output=True, text=True, timeout=300, cwd=root,
                         env={**os.environ, "PYTHON": sys.executable, "VENV": str(tmp_path / "no-venv")})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "needs a CUDA GPU" in out.stdout and " deselected" in out.stdout and " passed" not in out.stdout
    assert not (tmp_path / "no-venv").exists()  # the machine's interpreter: no venv made


@pytest.mark.slow
def test_without_safetensors_tqdm_or_opencv_training_is_skipped_and_the_rest_runs(tmp_path):
    """A bare GPU box may lack the training libraries: a skip line each, never an ImportError."""
    code = ("import sys\nfor m in ('safetensors', 'tqdm', 'matplotlib', 'cv2'):\n    sys.modules[m] = None\n"
            "from ffn_edge.gpucheck.cli import main\nmain()")
    out = subprocess.run([sys.executable, "-c", code, "--out", str(tmp_path), "--device", "cpu", "--tiny",
                          "--skip", "eval-cuda-vs-cpu"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    checks = {c["name"]: c for c in json.loads((tmp_path / "gpucheck.json").read_text())["checks"]}
    assert [checks[n]["detail"] for n in ("train-bf16", "train-fp16", "train-ddp")] == \
        ["skipped: safetensors not installed"] * 3
    assert checks["torch-eager"]["status"] == "ok"
