"""Opening a bundle (bundle.manifest, onnx_refs): every bad manifest / bundle file -> one BundleError line at
open (no traceback, no hang, no file outside the bundle read, no external data that is not listed and hashed)."""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from builders import TINY_CLASSES
from ffn_edge.export.bundle import export_bundle
from ffn_edge.runtime import FFNRuntime

from ffn_edge.bundle.manifest import file_entry, load_manifest, seal
from ffn_edge.core.errors import BundleError

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def made(tiny_ckpt, tiny_bundle) -> tuple[Path, Path]:
    """(checkpoint, bundle): the session's tiny 5-class model with graphs f4.onnx and f8.onnx."""
    return tiny_ckpt, tiny_bundle


@pytest.fixture
def copy(made, private_copy) -> Path:
    return private_copy(made[1], "b.ffn")


def edit(bundle: Path, change) -> None:
    m = json.loads((bundle / "manifest.json").read_text())
    change(m)
    (bundle / "manifest.json").write_text(json.dumps(seal(m)))  # the deeper checks, past the digest


def g0(m: dict, **kw) -> None:
    m["graphs"][0].update(kw)


# (case, manifest mutation, expected text)
MANIFEST_CASES = [
    ("class_names short", lambda m: m.update(class_names=["a", "b"]), "2 class names for 5 classes"),
    ("class_names not list", lambda m: m.update(class_names="abc"), "class_names must be a list"),
    ("std zero", lambda m: m["input"].update(std=[0.2, 0, 0.2]), "std[1] must be in"),
    ("std NaN", lambda m: m["input"].update(std=[0.2, float("nan"), 0.2]), "std[1] must be finite"),
    ("mean 2 values", lambda m: m["input"].update(mean=[0.5, 0.5]), "mean must have 3..3 items"),
    ("crop > resize", lambda m: m["input"].update(resize_shorter=16), "resize_shorter must be in"),
    ("input size 0", lambda m: m["input"].update(size=[0, 32]), "input.size[0] must be in"),
    ("input size 1 value", lambda m: m["input"].update(size=[32]), "input.size must have 2..2"),
    ("layout", lambda m: m["input"].update(layout="NCHW"), "input.layout must be 'NTCHW'"),
    ("wrong input name", lambda m: m["input"].update(name="video"), "has no input 'video'"),
    ("wrong output name", lambda m: m.update(output_name="probs"), "has no output 'probs'"),
    ("graph frames 0", lambda m: g0(m, frames=0), "graphs[0].frames must be in"),
    ("graph frames -4", lambda m: g0(m, frames=-4), "graphs[0].frames must be in"),
    ("graph frames '4'", lambda m: g0(m, frames="4"), "graphs[0].frames must be an integer"),
    ("graph frames 1e9", lambda m: g0(m, frames=10**9), "graphs[0].frames must be in"),
    ("graph subnet 7", lambda m: g0(m, subnet=7), "graphs[0].subnet must be in"),
    ("graph dynamic 'no'", lambda m: g0(m, dynamic_frames="no"), "must be true or false"),
    ("graph unknown key", lambda m: g0(m, shape=[1]), "unknown keys"),
    ("duplicate frames", lambda m: g0(m, frames=m["graphs"][1]["frames"]), "same frame count"),
    ("graphs empty", lambda m: m.update(graphs=[]), "graphs must have"),
    ("graphs not list", lambda m: m.update(graphs={"a": 1}), "graphs must be a list"),
    ("graph not object", lambda m: m.update(graphs=[4]), "graphs[0] must be an object"),
    ("files []", lambda m: m.update(files=[]), "files must be an object"),
    ("files {}", lambda m: m.update(files={}), "files must list"),
    ("file size str", lambda m: m["files"]["weights.bin"].update(size="12"), "size must be an integer"),
    ("file sha256 short", lambda m: m["files"]["weights.bin"].update(sha256="abc"), "64 lowercase hex"),
    ("graph file unlisted", lambda m: m["files"].pop("f4.onnx"), "f4.onnx is used but has no size/sha256"),
    ("absolute path", lambda m: g0(m, file="/etc/passwd"), "not a relative path"),
    ("path leaves bundle", lambda m: g0(m, file="../m.safetensors"), "leaves the bundle"),
    ("opset '18'", lambda m: m.update(opset="18"), "opset must be an integer"),
    ("num_classes 1e12", lambda m: m["model_config"].update(num_classes=10**12), "num_classes must be in"),
    ("width_mult -1", lambda m: m["model_config"].update(width_mult=-1), "width_mult must be in"),
    ("arch mismatch", lambda m: m.update(arch="tsm_resnet18"), "differs from model_config.arch"),
    ("subnet counts mismatch", lambda m: m.update(subnet_frame_counts=[2, 8]), "differ from model_config"),
    ("format version 3", lambda m: (m.update(format_version=3), m["extra"]["exporter"].update(ffn_edge="9.4.1")),
     "upgrade ffn-edge to >= 9.4.1"),
    ("format version 3, writer unknown", lambda m: (m.update(format_version=3), m["extra"].pop("exporter")),
     "upgrade ffn-edge (this bundle is newer)"),
    ("format version 0", lambda m: m.update(format_version=0), "re-export the bundle with this ffn-edge"),
    ("foreign format", lambda m: m.update(format="x"), "not an ffn-edge bundle manifest"),
    ("missing key", lambda m: m.pop("output_name"), "missing key 'output_name'"),
    ("extra not object", lambda m: m.update(extra=[]), "extra must be an object"),
]


def refused(bundle: Path, *texts: str) -> str:
    """FFNRuntime.open(bundle) raises one BundleError line containing ``texts`` (run in a thread: never hangs)."""
    result: list[BaseException] = []

    def run() -> None:
        try:
            FFNRuntime.open(bundle, threads=1, warmup=False).close()
            result.append(AssertionError("opened"))
        except BaseException as e:  # noqa: BLE001 - inspected below
            result.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(30)
    assert not t.is_alive(), "FFNRuntime.open hung"
    assert isinstance(result[0], BundleError), repr(result[0])
    msg = str(result[0])
    assert "\n" not in msg, msg
    for text in texts:
        assert text in msg, msg
    return msg


@pytest.mark.parametrize("case,change,text", MANIFEST_CASES, ids=[c[0] for c in MANIFEST_CASES])
def test_bad_manifest_is_one_bundle_error(copy, case, change, text):
    edit(copy, change)
    refused(copy, text)


def _symlinked_manifest(b: Path) -> None:
    outside = b.parent / "outside.json"
    shutil.move(b / "manifest.json", outside)
    (b / "manifest.json").symlink_to(outside)


def _symlinked_graph(b: Path) -> None:
    shutil.move(b / "f4.onnx", b.parent / "f4.onnx")
    (b / "f4.onnx").symlink_to(b.parent / "f4.onnx")


def _unlisted_external_data(b: Path) -> None:
    """f4.onnx reads its weights from extra.bin (a copy of weights.bin); its manifest entry is re-hashed."""
    shutil.copy(b / "weights.bin", b / "extra.bin")
    proto = onnx.load(str(b / "f4.onnx"), load_external_data=False)
    for t in proto.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = "extra.bin"
    onnx.save_model(proto, str(b / "f4.onnx"))
    edit(b, lambda m: m["files"].update({"f4.onnx": file_entry(b / "f4.onnx")}))


def _deep(b: Path) -> None:
    (b / "manifest.json").write_text("[" * 200_000 + "]" * 200_000)


def _replace_manifest(b: Path, make) -> None:
    (b / "manifest.json").unlink()
    make(b / "manifest.json")


# (case, make(bundle), expected text)
FILE_CASES = [
    ("manifest FIFO", lambda b: _replace_manifest(b, os.mkfifo), "is a FIFO"),
    ("manifest directory", lambda b: _replace_manifest(b, os.mkdir), "is a directory"),
    ("manifest symlink outside", _symlinked_manifest, "is a symlink"),
    ("manifest nested 200000 deep", _deep, "nested deeper than"),
    ("manifest not JSON", lambda b: (b / "manifest.json").write_text("{nope"), "not valid JSON"),
    ("manifest a list", lambda b: (b / "manifest.json").write_text("[]"), "not a JSON object"),
    ("manifest binary", lambda b: (b / "manifest.json").write_bytes(b"\xff\xfe\x00"), "not valid JSON"),
    ("manifest missing", lambda b: (b / "manifest.json").unlink(), "no manifest.json"),
    ("graph symlink", _symlinked_graph, "symlink"),
    ("graph is a directory", lambda b: ((b / "f4.onnx").unlink(), (b / "f4.onnx").mkdir()), "not a regular file"),
    ("weights missing", lambda b: (b / "weights.bin").unlink(), "listed in the manifest but missing"),
    ("weights tampered", lambda b: (b / "weights.bin").write_bytes(b"x" * 10), "does not match the manifest"),
    ("external data not listed", _unlisted_external_data, "reads external data 'extra.bin'"),
    ("graph not ONNX", lambda b: ((b / "f4.onnx").write_bytes(b"\x0f" * 64),
                                  edit(b, lambda m: m["files"].update({"f4.onnx": file_entry(b / "f4.onnx")}))),
     "not a readable ONNX graph"),
]


@pytest.mark.parametrize("case,make,text", FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_bad_bundle_file_is_one_bundle_error(copy, case, make, text):
    make(copy)
    refused(copy, text)


def test_oversized_manifest_is_refused_before_parsing(copy, monkeypatch):
    from ffn_edge.core import validate as V

    monkeypatch.setattr(V, "MAX_JSON_BYTES", 1000)
    refused(copy, "larger than the 1000-byte limit")


def test_missing_bundle_directory(tmp_path):
    refused(tmp_path / "nope.ffn", "bundle directory not found")


def test_bundle_directory_may_be_a_symlink(made, tmp_path):
    (tmp_path / "link.ffn").symlink_to(made[1])
    assert load_manifest(tmp_path / "link.ffn").class_names == tuple(TINY_CLASSES)


def test_good_bundle_still_predicts(made):
    with FFNRuntime.open(made[1], threads=1) as rt:
        p = rt.predict([np.zeros((40, 48, 3), np.uint8)] * 4)
    assert p.label in TINY_CLASSES and np.isfinite(p.score)


@pytest.mark.slow
def test_crash_during_forced_export_keeps_the_old_bundle(made, tmp_path, monkeypatch):
    ckpt, bundle = made
    out = tmp_path / "b.ffn"
    shutil.copytree(bundle, out)
    before = (out / "manifest.json").read_bytes()

    def crash(a, b):
        raise OSError(5, "injected crash at the swap")

    monkeypatch.setattr("ffn_edge.core.atomic.exchange", crash)
    with pytest.raises(OSError, match="injected"):
        export_bundle(ckpt, (4,), out, force=True, verify=False)
    assert (out / "manifest.json").read_bytes() == before
    load_manifest(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.ffn"]  # the temporary was removed


def test_checkpoint_given_as_bundle_says_run_ffn_export(made):
    msg = refused(made[0], "this is a checkpoint, not a bundle: run ffn-export first", f"--ckpt {made[0]}")
    assert "not found" not in msg


@pytest.mark.parametrize("inside", ["manifest.json", "f4.onnx"])
def test_file_inside_a_bundle_given_as_bundle_names_the_directory(copy, inside):
    refused(copy / inside, f"pass the bundle directory ({copy})")
