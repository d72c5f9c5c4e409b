"""Read-only bundles and folders (``chmod -R a-w``): run works, export into or over them is one line, nothing changes.

Root writes through any file mode, so as root the commands run as an unprivileged user (``setpriv``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

UNPRIVILEGED = 65534


def _as_reader(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot drop write access")
    return ["setpriv", f"--reuid={UNPRIVILEGED}", f"--regid={UNPRIVILEGED}", "--clear-groups", *argv]


def _tree(root: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(root)): (p.stat().st_mode, p.read_bytes() if p.is_file() else b"")
            for p in sorted(root.rglob("*"))}


@pytest.fixture
def ro(causal_bundle, int8_bundle, tiny_ckpt, video):
    """A read-only folder with copies of the bundles, the inputs readable beside it, in a folder of its own that
    the unprivileged user can reach (pytest's own temporary folders are private to their owner)."""
    base = Path(tempfile.mkdtemp(prefix="ffn-ro-"))
    base.chmod(0o755)
    folder = base / "ro"
    folder.mkdir()
    shutil.copytree(causal_bundle, folder / "causal.ffn")
    shutil.copytree(int8_bundle, folder / "int8.ffn")
    shutil.copy(tiny_ckpt, base / "ckpt.safetensors")
    shutil.copy(video, base / "clip.mp4")
    subprocess.run(["chmod", "-R", "a-w", str(folder)], check=True)
    before = _tree(folder)
    try:
        yield folder
        assert _tree(folder) == before
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(folder)], check=True)
        shutil.rmtree(base)


def _cli(prog: str, entry: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    module, func = entry.split(":")
    code = f"import sys; sys.argv = [{prog!r}] + {args!r}; from {module} import {func}; {func}()"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HOME": str(cwd)}
    return subprocess.run(_as_reader([sys.executable, "-c", code]), capture_output=True, text=True, timeout=120,
                          cwd=cwd, env=env)


RUN = "ffn_edge.runtime.app.entry:ffn_run"
EXPORT = "ffn_edge.export.cli:main"


def _errors(out: subprocess.CompletedProcess, prog: str) -> list[str]:
    return [line for line in out.stderr.splitlines() if line.startswith(f"{prog}: error")]


@pytest.mark.parametrize("bundle,online", [("int8.ffn", False), ("causal.ffn", True)])
def test_a_read_only_bundle_runs(ro, bundle, online):
    args = ["--bundle", str(ro / bundle), "--video", str(ro.parent / "clip.mp4"), "--max-decisions", "2",
            "--threads", "1", *(["--online"] if online else [])]
    out = _cli("ffn-run", RUN, args, ro)
    assert out.returncode == 0, out.stderr[-500:]


def test_export_over_a_read_only_bundle_is_one_line_naming_the_folder(ro):
    out = _cli("ffn-export", EXPORT, ["--ckpt", str(ro.parent / "ckpt.safetensors"), "--frames", "4", "8",
                                      "--out", str(ro / "causal.ffn"), "--force", "--no-verify"], ro)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert _errors(out, "ffn-export") == [f"ffn-export: error: {ro}: Permission denied: causal.ffn is written "
                                          "there (its new copy is built beside it)"]


def test_run_writing_its_video_into_a_read_only_bundle_is_one_line(ro):
    out = _cli("ffn-run", RUN, ["--bundle", str(ro / "int8.ffn"), "--video", str(ro.parent / "clip.mp4"),
                                "--max-decisions", "1", "--output", str(ro / "int8.ffn" / "out.mp4")], ro)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert len(_errors(out, "ffn-run")) == 1
