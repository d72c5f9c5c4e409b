"""Declared dependencies: what each extra may pull, checked offline against the versions that exist.

A registry dry-run of every extra (``tools/check_extras.py``) runs only with FFN_PIP_DRY_RUN=1, so
offline CI does not depend on the index.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from ffn_edge.runtime.backends import trt_engine as trt_mod
from packaging.markers import default_environment
from packaging.requirements import Requirement

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
EXTRAS = PROJECT["optional-dependencies"]
X86 = {**default_environment(), "platform_machine": "x86_64"}
JETSON = {**default_environment(), "platform_machine": "aarch64"}


def reqs(extra: str | None, env: dict[str, str] = X86) -> dict[str, Requirement]:
    """Requirements of ``extra`` (None: the base install) that apply on ``env``, by name."""
    out = {}
    for line in PROJECT["dependencies"] if extra is None else EXTRAS[extra]:
        r = Requirement(line)
        if r.marker is None or r.marker.evaluate({**env, "extra": ""}):
            out[r.name] = r
    return out


def test_base_install_forces_no_onnxruntime_opencv_or_cuda_build():
    base = reqs(None)
    assert not {n for n in base if n.startswith(("onnxruntime", "opencv", "tensorrt", "cuda"))}, base


def test_cpu_and_gpu_onnxruntime_are_alternatives_never_together():
    assert "onnxruntime" in reqs("cpu") and "onnxruntime-gpu" not in reqs("cpu")
    assert "onnxruntime-gpu" in reqs("gpu") and "onnxruntime" not in reqs("gpu")
    for name in EXTRAS:
        assert not {"onnxruntime", "onnxruntime-gpu"} <= set(reqs(name)), name


@pytest.mark.parametrize("extra,dist,ok,bad", [
    ("tensorrt-cu12", "tensorrt-cu12", ["10.3.0", "10.16.1.11"], ["10.0.1", "10.2.0", "11.0.0.114", "11.4.0.106"]),
    ("tensorrt-cu12", "cuda-bindings", ["12.8.0", "12.9.10"], ["11.8.7", "13.0.0", "13.5.0"]),
    ("tensorrt-cu13", "tensorrt-cu13", ["11.0.0.114", "11.4.0.106"], ["10.16.1.11", "12.0.0"]),
    ("tensorrt-cu13", "cuda-bindings", ["13.0.0", "13.5.0"], ["12.9.10", "14.0.0"]),
    ("tensorrt", "tensorrt-cu13", ["11.0.0.114", "11.4.0.106"], ["10.16.1.11", "12.0.0"]),
    ("jetson", "cuda-python", ["12.6.2.post1", "12.9.4"], ["13.0.0"]),
    ("jetson", "numpy", ["1.24.4", "1.26.4"], ["1.21.5", "2.0.0", "2.2.6"]),  # JetPack's cv2 is built for numpy 1
    ("cpu", "onnxruntime", ["1.17.0", "1.32.0"], ["1.16.3", "2.0.0"]),
    ("gpu-cu12", "onnxruntime-gpu", ["1.21.0", "1.26.0"], ["1.20.2", "1.27.0", "1.31.1"]),
    ("gpu-cu13", "onnxruntime-gpu", ["1.27.0", "1.31.1"], ["1.26.0", "2.0.0"]),
    ("gpu", "onnxruntime-gpu", ["1.27.0", "1.31.1"], ["1.26.0", "2.0.0"]),
    ("cpu", "opencv-python", ["4.8.0.74", "5.0.0.93"], ["4.7.0.72", "6.0.0"]),
    ("train", "torch", ["2.3.0", "2.13.0"], ["2.1.0", "2.2.2"]),  # torch.amp.GradScaler, device_id
])
def test_versions_are_bounded_to_what_the_code_supports(extra, dist, ok, bad):
    spec = reqs(extra)[dist].specifier
    assert all(spec.contains(v, prereleases=True) for v in ok), (spec, ok)
    assert not any(spec.contains(v, prereleases=True) for v in bad), (spec, bad)


# onnxruntime-gpu on PyPI is built for CUDA 12 up to this version and for CUDA 13 after it (its
# [cuda] extra: nvidia-cuda-runtime-cu12 ~= 12.0 in 1.26.0, -cu13 ~= 13.0 in 1.27.0; read from the registry)
LAST_ORT_CUDA12 = "1.26.0"
CUDA_MAJOR_OF_EXTRA = {"gpu-cu12": 12, "gpu-cu12-headless": 12, "gpu-cu13": 13, "gpu-cu13-headless": 13, "gpu": 13,
                       "gpu-headless": 13, "tensorrt-cu12": 12, "tensorrt-cu13": 13, "tensorrt": 13}


@pytest.mark.parametrize("extra", sorted(CUDA_MAJOR_OF_EXTRA))
def test_every_gpu_extra_pins_one_cuda_major(extra):
    """An extra whose versions span two CUDA majors installs whichever pip finds (Python 3.10 silently got
    a CUDA 12 onnxruntime-gpu under a CUDA 13 README); the CUDA libraries come as wheels of that major."""
    major = CUDA_MAJOR_OF_EXTRA[extra]
    got = reqs(extra)
    assert "cuda-python" not in got  # the bindings are pinned themselves: cuda-bindings
    if "onnxruntime-gpu" in got:
        r = got["onnxruntime-gpu"]
        assert {"cuda", "cudnn"} <= r.extras, r
        cu12 = ["1.21.0", "1.23.2", LAST_ORT_CUDA12]
        cu13 = ["1.27.0", "1.31.1", "1.99.0"]
        assert all(r.specifier.contains(v) == (major == 12) for v in cu12), r
        assert all(r.specifier.contains(v) == (major == 13) for v in cu13), r
    if "cuda-bindings" in got:
        spec = got["cuda-bindings"].specifier
        assert spec.contains(f"{major}.9.0") and not spec.contains(f"{major - 1}.9.0")
        assert not spec.contains(f"{major + 1}.0.0")
        assert f"tensorrt-cu{major}" in got


def test_tensorrt_extras_match_the_majors_the_code_supports():
    major, minor = trt_mod.MIN_VERSION
    spec = reqs("tensorrt-cu12")["tensorrt-cu12"].specifier
    assert spec.contains(f"{major}.{minor}.0") and not spec.contains(f"{major}.{minor - 1}.0")
    majors = {int(str(s.version).split(".")[0]) for x in ("tensorrt-cu12", "tensorrt-cu13")
              for d, r in reqs(x).items() if d.startswith("tensorrt") for s in r.specifier if s.operator == ">="}
    assert majors == set(trt_mod.SUPPORTED_MAJORS)
    # fp16 on TensorRT 11 converts graphs to fp16 on the device: the onnx tools come with that extra
    assert {"onnx", "onnxconverter-common"} <= set(reqs("tensorrt-cu13"))


def test_jetson_takes_tensorrt_opencv_and_onnxruntime_from_jetpack():
    for env in (X86, JETSON):
        assert set(reqs("jetson", env)) == {"cuda-python", "numpy"}
    assert reqs("tensorrt-cu12", JETSON).keys() == {"cuda-bindings"}  # no pip TensorRT over JetPack's apt one


def test_run_sh_and_ci_install_the_cpu_extra_and_run_gpu_tests_on_request():
    run_sh = (ROOT / "run.sh").read_text()
    assert '".[cpu,train,dev]"' in run_sh
    assert "test-gpu)" in run_sh and "-m gpu" in run_sh
    assert PROJECT["scripts"]["ffn-run"] == "ffn_edge.runtime.app.entry:ffn_run"


def test_ffn_run_without_opencv_says_what_to_install_in_one_line():
    code = ("import sys; sys.modules['cv2'] = None; sys.argv = ['ffn-run', '--help']; "
            "from ffn_edge.runtime.app.entry import ffn_run; ffn_run()")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("ffn-run: error: OpenCV is not installed: pip install opencv-python-headless")
    assert out.stderr.count("\n") == 1


@pytest.mark.skipif(os.environ.get("FFN_PIP_DRY_RUN") != "1", reason="set FFN_PIP_DRY_RUN=1 (needs the package index)")
def test_every_extra_resolves_without_clobbering():
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "check_extras.py")], capture_output=True, text=True,
                         timeout=3600)
    assert out.returncode == 0, out.stdout + out.stderr


def test_headless_extras_take_the_headless_opencv_and_never_both_builds():
    for extra, ort in (("cpu-headless", "onnxruntime"), ("gpu-headless", "onnxruntime-gpu"),
                       ("gpu-cu12-headless", "onnxruntime-gpu"), ("gpu-cu13-headless", "onnxruntime-gpu")):
        got = reqs(extra)
        assert set(got) == {ort, "opencv-python-headless"}, got
        assert got["opencv-python-headless"].specifier == reqs("cpu")["opencv-python"].specifier
    for name in EXTRAS:
        assert not {"opencv-python", "opencv-python-headless"} <= set(reqs(name)), name


def test_license_file_is_the_apache_2_text_the_project_declares():
    text = (ROOT / "LICENSE").read_text()
    assert PROJECT["license"] == "Apache-2.0"
    assert hashlib.md5(text.encode()).hexdigest() == "3b83ef96387f14655fc854ddc3c6bd57"  # apache.org LICENSE-2.0.txt


def test_every_package_folder_is_in_the_wheel_list():
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {"ffn_edge": ROOT / "ffn_edge", "ffn_edge.export": ROOT / "export", "ffn_edge.runtime": ROOT / "runtime"}
    found = set()
    for name, folder in folders.items():
        for init in folder.rglob("__init__.py"):
            parts = init.parent.relative_to(folder).parts
            if name == "ffn_edge" and parts[:1] in {("export",), ("runtime",)}:
                continue
            found.add(".".join((name, *parts)))
    assert found == set(tool["packages"])


def test_version_has_one_source():
    from importlib.metadata import version

    from ffn_edge import __version__

    assert PROJECT["dynamic"] == ["version"] and "version" not in PROJECT
    assert version("ffn-edge") == __version__


@pytest.mark.parametrize("script,argv", [(name, []) for name in PROJECT["scripts"]] + [("ffn-export", ["engines"])])
def test_every_cli_answers_version(script, argv):
    from ffn_edge import __version__

    module, func = PROJECT["scripts"][script].split("#")[0].strip().split(":")
    code = f"import sys; sys.argv = {[script, *argv, '--version']!r}; from {module} import {func}; {func}()"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith(f"(ffn-edge {__version__})") and out.stdout.count("\n") == 1, out.stdout


def test_the_readme_installs_the_extras_that_exist():
    readme = (ROOT / "README.md").read_text()
    assert "ffn-edge[" not in readme  # not on an index: a checkout (.[x]) or a wheel (file.whl[x])
    for extra in re.findall(r'pip install (?:-e )?"\.?[^"\[]*\[([^\]]+)\]"', readme):
        assert set(extra.split(",")) <= set(EXTRAS), extra
    assert "python -m build --wheel" in readme and '.whl[cpu-headless]"' in readme


def test_jetson_instructions_keep_jetpacks_opencv():
    """Ubuntu's python3-opencv is another OpenCV build than JetPack's (NVIDIA's nvidia-opencv / libopencv-python,
    with GStreamer); apt-installing it on a Jetson replaces JetPack's. No instruction may name it."""
    from ffn_edge.core.deps import HINTS

    readme = (ROOT / "README.md").read_text()
    assert "apt install python3-libnvinfer nvidia-opencv" in readme
    assert not re.search(r"apt(-get)? install[^\n]*python3-opencv", readme)
    assert "python3-opencv" not in HINTS["cv2"] and "nvidia-opencv" in HINTS["cv2"]
