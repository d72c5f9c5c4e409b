"""core.atomic: replacing a bundle never leaves --out empty, whatever step crashes; stale temporaries of ours
(and only ours, once their writer is gone) are cleaned on the next run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ffn_edge.core import atomic
from ffn_edge.core.atomic import atomic_write_bytes, cleanup_stale, replace_dir, staging_dir


def bundle_dir(path: Path, version: str) -> Path:
    path.mkdir(exist_ok=True)
    for name in ("manifest.json", "weights.bin", "f4.onnx"):
        (path / name).write_text(version)
    return path


def version_at(out: Path) -> str:
    """The one version every file at ``out`` holds (a mix would mean a half-replaced bundle)."""
    versions = {p.read_text() for p in out.iterdir()}
    assert len(versions) == 1 and len(list(out.iterdir())) == 3, versions
    return versions.pop()


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_replace_swaps_in_one_step(tmp_path):
    out = bundle_dir(tmp_path / "m.ffn", "old")
    new = bundle_dir(staging_dir(out), "new")
    replace_dir(new, out)
    assert version_at(out) == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.ffn"]
    assert atomic.exchange(tmp_path / "m.ffn", tmp_path / "m.ffn") in (True, False)  # callable here


def test_crash_at_the_exchange_keeps_the_old_bundle(tmp_path, monkeypatch):
    out = bundle_dir(tmp_path / "m.ffn", "old")
    new = bundle_dir(staging_dir(out), "new")

    def crash(a, b):
        raise OSError(5, "injected")

    monkeypatch.setattr(atomic, "exchange", crash)
    with pytest.raises(OSError):
        replace_dir(new, out)
    assert version_at(out) == "old"


def test_crash_after_the_exchange_leaves_the_new_bundle_and_a_temporary_cleaned_later(tmp_path, monkeypatch):
    out = bundle_dir(tmp_path / "m.ffn", "old")
    new = bundle_dir(staging_dir(out), "new")
    if not atomic.exchange(new, new):  # exchanging a path with itself is a no-op where supported
        pytest.skip("renameat2(RENAME_EXCHANGE) unsupported here")

    def crash(*a, **k):
        raise OSError(5, "injected crash while deleting the old bundle")

    monkeypatch.setattr(atomic.shutil, "rmtree", crash)
    with pytest.raises(OSError):
        replace_dir(new, out)
    monkeypatch.undo()
    assert version_at(out) == "new"
    leftover = [p.name for p in tmp_path.iterdir() if p.name != "m.ffn"]
    assert leftover == [new.parent.name]
    # The next run cleans it, but only once its writer is gone.
    assert cleanup_stale(tmp_path, "m.ffn") == []  # our own PID is alive
    assert atomic.ownership.judge(new.parent, "m.ffn").remove is False
    monkeypatch.setattr(atomic.ownership, "_writer_gone", lambda pid, tag, created: True)
    assert cleanup_stale(tmp_path, "m.ffn") == leftover
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.ffn"]


def test_fallback_crash_between_renames_is_restored_by_the_next_run(tmp_path, monkeypatch):
    """Without RENAME_EXCHANGE, two renames: a crash between them is repaired by cleanup_stale."""
    out = bundle_dir(tmp_path / "m.ffn", "old")
    new = bundle_dir(staging_dir(out), "new")
    monkeypatch.setattr(atomic, "exchange", lambda a, b: False)
    real_rename, calls = os.rename, []

    def rename(a, b):
        calls.append((a, b))
        if len(calls) == 2:
            raise OSError(5, "injected crash between the two renames")
        real_rename(a, b)

    monkeypatch.setattr(atomic.os, "rename", rename)
    with pytest.raises(OSError):
        replace_dir(new, out)
    monkeypatch.undo()
    assert not out.exists()
    monkeypatch.setattr(atomic.ownership, "_writer_gone", lambda pid, tag, created: True)  # its writer has died
    cleanup_stale(tmp_path, "m.ffn")
    assert version_at(out) == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.ffn"]


def test_atomic_write_cleans_stale_temporaries(tmp_path):
    """A temporary file of a writer killed mid-write (same name form, dead PID) is removed by the next write."""
    code = textwrap.dedent(f"""
        import os, tempfile
        from ffn_edge.core import ownership
        prefix, suffix = ownership.file_affixes("last.safetensors")
        fd, _ = tempfile.mkstemp(dir={str(tmp_path)!r}, prefix=prefix, suffix=suffix)
        os.write(fd, b"half")
    """)
    subprocess.run([sys.executable, "-c", code], check=True)
    assert len(list(tmp_path.iterdir())) == 1
    atomic_write_bytes(tmp_path / "last.safetensors", b"data")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.safetensors"]


def test_kill_9_during_repeated_replacement_always_leaves_a_complete_bundle(tmp_path):
    """A subprocess replaces the bundle in a loop and is killed with SIGKILL; --out always holds one version."""
    code = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_atomic import bundle_dir
        from ffn_edge.core.atomic import replace_dir, staging_dir
        out = Path({str(tmp_path / "m.ffn")!r})
        i = 0
        print("ready", flush=True)
        while True:
            i += 1
            replace_dir(bundle_dir(staging_dir(out), f"v{{i}}"), out)
    """)
    bundle_dir(tmp_path / "m.ffn", "v0")
    for delay in (0.3, 0.55, 0.8):
        p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "ready"
        time.sleep(delay)
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
        assert version_at(tmp_path / "m.ffn").startswith("v")
