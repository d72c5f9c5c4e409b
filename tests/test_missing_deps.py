"""Every CLI without one of its optional packages: one line on stderr naming what to install, exit 2.

Each case hides one package (``sys.modules[name] = None``, so importing it fails as if it were not
installed) and runs the console entry declared in pyproject.toml.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
CKPT = str(ROOT / "models" / "demo_ffn.safetensors")


def run_entry(script: str, argv: list[str], hide: str) -> subprocess.CompletedProcess:
    module, func = SCRIPTS[script].split("#")[0].strip().split(":")
    code = (f"import sys; sys.modules[{hide!r}] = None; sys.argv = {[script, *argv]!r}; "
            f"from {module} import {func}; {func}()")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)


@pytest.mark.parametrize("script,argv,hide,says", [
    ("ffn-train", ["--epochs", "1"], "torch", "PyTorch is not installed: pip install torch"),
    ("ffn-train", [], "tqdm", "tqdm is not installed: pip install tqdm"),
    ("ffn-eval", ["--ckpt", CKPT], "torch", "PyTorch is not installed"),
    ("ffn-eval", ["--ckpt", CKPT], "safetensors", "safetensors is not installed"),
    ("ffn-eval", ["--ckpt", CKPT, "--plot", "acc.png"], "matplotlib", "matplotlib is not installed"),
    ("ffn-export", ["--ckpt", CKPT, "--frames", "4", "--out", "{tmp}/b.ffn"], "torch", "PyTorch is not installed"),
    ("ffn-export", ["--ckpt", CKPT, "--frames", "4", "--out", "{tmp}/b.ffn"], "onnx", "onnx is not installed"),
    ("ffn-export", ["--ckpt", CKPT, "--frames", "4", "--out", "{tmp}/b.ffn"], "onnxscript",
     "onnxscript is not installed"),
    ("ffn-export", ["--ckpt", CKPT, "--frames", "4", "--out", "{tmp}/b.ffn"], "onnxruntime",
     "ONNX Runtime is not installed: pip install onnxruntime"),
    ("ffn-export", ["engines", "--bundle", "{tmp}/b.ffn"], "tensorrt", "TensorRT is not installed"),
    ("ffn-run", ["--bundle", "x.ffn", "--video", "v.mp4"], "cv2", "OpenCV is not installed"),
])
def test_missing_package_is_one_line_with_the_fix_and_exit_2(tmp_path, script, argv, hide, says):
    out = run_entry(script, [a.format(tmp=tmp_path) for a in argv], hide)
    assert out.returncode == 2, out.stderr
    assert out.stdout == ""
    assert out.stderr.startswith(f"{script}: error: {says}"), out.stderr
    assert out.stderr.count("\n") == 1, out.stderr
    assert not (tmp_path / "b.ffn").exists()


@pytest.mark.parametrize("script", ["ffn-train", "ffn-eval"])
def test_version_works_before_torch_is_installed(script):
    out = run_entry(script, ["--version"], "torch")
    assert out.returncode == 0 and out.stdout.startswith(f"{script} (ffn-edge "), out.stderr
