"""core.atomic: replacing a bundle never leaves --out empty, whatever step crashes; stale temporaries of ours
(and only ours, and only old ones) are cleaned on the next run."""

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
from ffn_edge.core.atomic import STALE_AFTER_S, atomic_write_bytes, cleanup_stale, replace_dir, temp_dir_for


def bundle_dir(path: Path, version: str) -> Path:
    path.mkdir()
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
    new = bundle_dir(temp_dir_for(out) / "x", "new")
    replace_dir(new, out)
    assert version_at(out) == "new"
    assert atomic.exchange(tmp_path / "m.ffn", tmp_path / "m.ffn") in (True, False)  # callable here


def test_crash_at_the_exchange_keeps_the_old_bundle(tmp_path, monkeypatch):
    out = bundle_dir(tmp_path / "m.ffn", "old")
    new = bundle_dir(tmp_path / ".m.ffn.tmp-1-a", "new")

    def crash(a, b):
        raise OSError(5, "injected")

    monkeypatch.setattr(atomic, "exchange", crash)
    with pytest.raises(OSError):
        replace_dir(new, out)
    assert version_at(out) == "old"


def test_crash_after_the_exchange_leaves_the_new_bundle_and_a_temporary_cleaned_later(tmp_path, monkeypatch):
    out = bundle_dir(tmp_path / "m.ffn", "old")
    tmp = temp_dir_for(out)
    new = bundle_dir(tmp / "b", "new")
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
    assert leftover == [tmp.name]
    # The next run cleans it, but only once its writer is gone and it is old.
    assert cleanup_stale(tmp_path, "m.ffn") == []  # our own PID is alive
    renamed = tmp_path / f".m.ffn.tmp-{dead_pid()}-zz"
    os.rename(tmp_path / tmp.name, renamed)
    assert cleanup_stale(tmp_path, "m.ffn") == []  # fresh
    assert cleanup_stale(tmp_path, "m.ffn", now=time.time() + STALE_AFTER_S + 1) == [renamed.name]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.ffn"]


def test_fallback_crash_between_renames_is_restored_by_the_next_run(tmp_path, monkeypatch):
    """Without RENAME_EXCHANGE, two renames: a crash between them is repaired by cleanup_stale."""
    out = bundle_dir(tmp_path / "m.ffn", "old")
    new = bundle_dir(tmp_path / ".m.ffn.tmp-1-a", "new")
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
    old = next(p for p in tmp_path.iterdir() if ".old-" in p.name)
    os.rename(old, tmp_path / f".m.ffn.old-{dead_pid()}-zz")  # its writer has died
    cleanup_stale(tmp_path, "m.ffn")
    assert version_at(out) == "old"


def test_cleanup_touches_only_our_names(tmp_path):
    later = time.time() + STALE_AFTER_S + 1
    pid = dead_pid()
    ours = [f".m.ffn.tmp-{pid}-a", f".m.ffn.old-{pid}-b", ".m.ffn.tmp-abc123", f".last.safetensors.{pid}-x.tmp",
            ".last.safetensors.k3j2h1.tmp"]
    theirs = ["m.ffn.tmp-1-a", ".other.ffn.tmp-1-a", ".m.ffn.backup", "notes.tmp", ".m.ffnx.tmp-1-a"]
    for name in ours[:3] + theirs[:3] + theirs[4:]:
        (tmp_path / name).mkdir()
    for name in ours[3:] + theirs[3:4]:
        (tmp_path / name).write_text("x")
    done = cleanup_stale(tmp_path, "m.ffn", now=later) + cleanup_stale(tmp_path, "last.safetensors", now=later)
    assert sorted(done) == sorted(ours)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(theirs)


def test_atomic_write_cleans_stale_temporaries(tmp_path):
    stale = tmp_path / f".last.safetensors.{dead_pid()}-q.tmp"
    stale.write_text("half")
    old = time.time() - STALE_AFTER_S - 10
    os.utime(stale, (old, old))
    atomic_write_bytes(tmp_path / "last.safetensors", b"data")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.safetensors"]


def test_kill_9_during_repeated_replacement_always_leaves_a_complete_bundle(tmp_path):
    """A subprocess replaces the bundle in a loop and is killed with SIGKILL; --out always holds one version."""
    code = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_atomic import bundle_dir
        from ffn_edge.core.atomic import replace_dir, temp_dir_for
        out = Path({str(tmp_path / "m.ffn")!r})
        i = 0
        print("ready", flush=True)
        while True:
            i += 1
            replace_dir(bundle_dir(temp_dir_for(out) / "b", f"v{{i}}"), out)
    """)
    bundle_dir(tmp_path / "m.ffn", "v0")
    for delay in (0.3, 0.55, 0.8):
        p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "ready"
        time.sleep(delay)
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
        assert version_at(tmp_path / "m.ffn").startswith("v")
