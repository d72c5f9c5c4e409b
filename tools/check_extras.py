"""Resolve each install extra with pip (``pip install --dry-run --report``) and check what it would install.

Needs the package index (it is the registry's answer that is checked), so tests run it only when
``FFN_PIP_DRY_RUN=1`` (``tests/test_packaging.py``); ``./run.sh check-extras`` runs it by hand.
Checks per extra: never both ``onnxruntime`` and ``onnxruntime-gpu``; TensorRT and cuda-python of
the major the extra is meant for. Prints one row per extra; exit 1 when any check fails.

    python tools/check_extras.py [EXTRA ...]     (default: every extra below)
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# extra -> {distribution: required major} (None: must be absent)
EXPECT: dict[str, dict[str, int | None]] = {
    "cpu": {"onnxruntime": 1, "onnxruntime-gpu": None, "tensorrt-cu12": None, "torch": None},
    "gpu": {"onnxruntime-gpu": 1, "onnxruntime": None, "nvidia-cuda-runtime": 13},
    "gpu-cu12": {"onnxruntime-gpu": 1, "onnxruntime": None, "nvidia-cuda-runtime-cu12": 12},
    "gpu-cu13": {"onnxruntime-gpu": 1, "onnxruntime": None, "nvidia-cuda-runtime": 13},
    "cpu-headless": {"onnxruntime": 1, "opencv-python": None, "onnxruntime-gpu": None},
    "gpu-headless": {"onnxruntime-gpu": 1, "opencv-python": None, "onnxruntime": None},
    "tensorrt": {"tensorrt-cu13": 11, "cuda-bindings": 13, "onnxruntime": None},
    "tensorrt-cu12": {"tensorrt-cu12": 10, "cuda-bindings": 12, "onnxruntime": None},
    "tensorrt-cu13": {"tensorrt-cu13": 11, "cuda-bindings": 13},
    "jetson": {"cuda-python": 12, "numpy": 1, "onnxruntime": None, "opencv-python": None, "tensorrt-cu12": None},
    "metrics": {"prometheus-client": 0, "onnxruntime": None, "opencv-python": None},
    "cpu,train,dev": {"onnxruntime": 1, "onnxruntime-gpu": None, "torch": 2, "cuda-toolkit": None},
}
# run.sh installs the CPU build of torch first (a bare 'torch' resolves to a multi-GB CUDA build)
ALONGSIDE = {"cpu,train,dev": ["torch==2.13.0"]}


def resolve(extra: str) -> tuple[dict[str, str] | None, str]:
    """{distribution: version} pip would install for ``.[extra]`` (from scratch), or None and pip's last line."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
               "--report", str(report), f"{ROOT}[{extra}]", *ALONGSIDE.get(extra, [])]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        if out.returncode != 0:
            lines = [ln.strip() for ln in out.stderr.splitlines() if ln.strip() and "is ignored" not in ln]
            causes = [ln for ln in lines if ln.startswith(("ERROR", "error:")) or "Failed to establish" in ln
                      or "No matching distribution" in ln]
            return None, ((causes or lines or [f"pip exit {out.returncode}"])[-1])
        items = json.loads(report.read_text())["install"]
    return {i["metadata"]["name"].lower().replace("_", "-"): i["metadata"]["version"] for i in items}, ""  # PEP 503


def check(extra: str, got: dict[str, str]) -> list[str]:
    """Problems with what ``extra`` resolved to (empty: fine)."""
    problems = []
    if "onnxruntime" in got and "onnxruntime-gpu" in got:
        problems.append("both onnxruntime and onnxruntime-gpu")
    if "opencv-python" in got and "opencv-python-headless" in got:
        problems.append("both opencv-python and opencv-python-headless")
    if extra.endswith("-headless") and "opencv-python-headless" not in got:
        problems.append("opencv-python-headless missing")
    for dist, major in EXPECT[extra].items():
        if major is None and dist in got:
            problems.append(f"{dist} {got[dist]} should not be installed")
        elif major is not None and (dist not in got or int(got[dist].split(".")[0]) != major):
            problems.append(f"{dist} {got.get(dist, 'missing')} (want {major}.x)")
    return problems


def main(argv: list[str]) -> int:
    extras = argv or list(EXPECT)
    failed = 0
    print(f"{'extra':<16} {'result':<7} resolved (key packages) / problem")
    for extra in extras:
        got, error = resolve(extra)
        if got is None:
            failed += 1
            print(f"{extra:<16} {'ERROR':<7} {error[:160]}")
            continue
        problems = check(extra, got)
        failed += bool(problems)
        keys = [f"{d}=={got[d]}" for d in sorted(got) if d.split("-")[0] in
                ("onnxruntime", "tensorrt", "cuda", "opencv", "torch", "numpy", "onnx")]
        print(f"{extra:<16} {'FAIL' if problems else 'ok':<7} {'; '.join(problems) or ' '.join(keys)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
