"""Writes remove only what they made: a user's files and folders whose names merely look like our
temporaries (any age, any PID) survive export, checkpoint save, a TensorRT build, manifest writes and
a writer killed at any point; a folder of the user's is never moved into the output path."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import trt_fakes
from ffn_edge.export import export_bundle
from ffn_edge.export import tensorrt as export_trt

from ffn_edge.bundle.manifest import load_manifest, write_manifest
from ffn_edge.checkpoint import CheckpointMeta, save_checkpoint
from ffn_edge.core.atomic import atomic_write_bytes
from ffn_edge.models import ModelConfig, create_model

DAY = 86400.0
CLASSES = ["a", "b", "c"]


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def plant(parent: Path, name: str) -> dict[Path, str]:
    """Files and folders of a user's, named like temporaries of ``name`` in every older and current form,
    a day old; returns a fingerprint of each to check later."""
    pid = dead_pid()
    tag = "0" * 16
    folders = [f".{name}.old-backup", f".{name}.tmp-mine", f".{name}.tmp-{pid}-abcdefgh", f".{name}.old-{pid}-zz",
               f".{name}.tmp-abc123", f".{name}.ffn-stage-{pid}-{tag}-abcdefgh", f".{name}.x.tmp"]
    files = [f".{name}.mine.tmp", f".{name}.{pid}-abcdefgh.tmp", f".{name}.backup.tmp", f".{name}.tmp",
             f".{name}.ffn-tmp-{pid}-{tag}-abcdefgh.tmp", f".{name}.old-notes"]
    parent.mkdir(parents=True, exist_ok=True)
    for d in folders:
        (parent / d / name).mkdir(parents=True)  # the shape the old "restore an orphan" branch moved out
        (parent / d / name / "mine.txt").write_text(f"user data {d}")
    for f in files:
        (parent / f).write_text(f"user data {f}")
    old = time.time() - DAY
    for p in [parent / d / name for d in folders] + [parent / d for d in folders] + [parent / f for f in files]:
        os.utime(p, (old, old))
    return fingerprint(parent, folders + files)


def fingerprint(parent: Path, names: list[str]) -> dict[Path, str]:
    out = {}
    for n in names:
        p = parent / n
        if p.is_dir():
            for q in sorted(p.rglob("*")):
                out[q] = q.read_text() if q.is_file() else "dir"
        else:
            out[p] = p.read_text() if p.exists() else "missing"
    return out


def assert_intact(before: dict[Path, str]) -> None:
    now = {p: (p.read_text() if p.is_file() else ("dir" if p.is_dir() else "missing")) for p in before}
    assert now == before


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    cfg = ModelConfig("tsm_resnet18", len(CLASSES), frame_counts=(2, 4), width_mult=0.0625)
    path = tmp_path_factory.mktemp("ck") / "m.safetensors"
    save_checkpoint(path, create_model(cfg).eval(), CheckpointMeta(cfg, CLASSES, input_size=32, resize_shorter=36))
    return path


def test_checkpoint_save_leaves_lookalikes_alone(tmp_path):
    before = plant(tmp_path, "model.safetensors")
    cfg = ModelConfig("tsm_resnet18", len(CLASSES), frame_counts=(2, 4), width_mult=0.0625)
    save_checkpoint(tmp_path / "model.safetensors", create_model(cfg).eval(), CheckpointMeta(cfg, CLASSES))
    assert_intact(before)
    assert (tmp_path / "model.safetensors").is_file()


@pytest.mark.slow
def test_export_leaves_lookalikes_alone_and_never_moves_a_user_folder_into_out(ckpt, tmp_path):
    before = plant(tmp_path, "bundle")
    out = export_bundle(ckpt, (2, 4), tmp_path / "bundle", verify=False)
    assert_intact(before)
    assert not (Path(out) / "mine.txt").exists()  # a user's ".bundle.old-*/bundle" was not put at --out
    load_manifest(out, verify=True)
    before |= plant(tmp_path / "x", "bundle")
    export_bundle(ckpt, (2, 4), tmp_path / "bundle", verify=False, force=True)  # replacing an existing one
    assert_intact(before)


def test_manifest_write_leaves_lookalikes_alone(ckpt, tmp_path):
    out = export_bundle(ckpt, (2,), tmp_path / "b", verify=False)
    before = plant(Path(out), "manifest.json")
    write_manifest(Path(out), load_manifest(out))
    assert_intact(before)


@pytest.mark.slow
def test_tensorrt_build_leaves_lookalikes_alone(ckpt, tmp_path, monkeypatch):
    out = Path(export_bundle(ckpt, (2, 4), tmp_path / "b", verify=False))
    trt_fakes.install(monkeypatch, trt_fakes.MAJORS[0], trt_fakes.FakeCudart(), len(CLASSES))
    entry = export_trt.build_engines(out)
    engine_dir = out / Path(next(iter(entry["engines"].values()))["file"]).parent
    before = plant(out, "manifest.json")
    for f in [p.name for p in engine_dir.iterdir() if p.is_file()]:
        before |= plant(engine_dir, f)
    export_trt.build_engines(out, rebuild=True)
    assert_intact(before)


WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from ffn_edge.core import atomic
    out, target = Path(sys.argv[1]), Path(sys.argv[2])
    i = 0
    print("ready", flush=True)
    while True:
        i += 1
        atomic.atomic_write_bytes(target, b"v%d" % i * 1000)
        stage = atomic.staging_dir(out) if hasattr(atomic, "staging_dir") else atomic.temp_dir_for(out)
        (stage / "f").write_text(str(i))
        atomic.replace_dir(stage, out)
""")


@pytest.mark.parametrize("delay", [0.2, 0.45, 0.7])
def test_a_writer_killed_at_any_point_then_the_next_write_leave_lookalikes_alone(tmp_path, delay):
    out, target = tmp_path / "bundle", tmp_path / "model.safetensors"
    before = plant(tmp_path, "bundle") | plant(tmp_path, "model.safetensors")
    p = subprocess.Popen([sys.executable, "-c", WRITER, str(out), str(target)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    time.sleep(delay)
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=30)
    assert_intact(before)
    atomic_write_bytes(target, b"next")  # the next writer cleans what the killed one left, and only that
    subprocess.run([sys.executable, "-c", WRITER.replace("while True", "while i < 1"), str(out), str(target)],
                   check=True, capture_output=True)
    assert_intact(before)
    ours = {p.name for p in tmp_path.iterdir()} - {p.relative_to(tmp_path).parts[0] for p in before}
    assert ours == {"bundle", "model.safetensors"}, ours
    assert hashlib.sha256(target.read_bytes()).hexdigest()  # a complete file
