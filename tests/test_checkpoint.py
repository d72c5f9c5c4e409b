"""ffn_edge.checkpoint: the round trip, and every bad checkpoint, metadata value and --pretrained file -> one
CheckpointError / ConfigError line, refused before a model is built; the checksum is mandatory and covers the header."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from safetensors.torch import save as st_save

from ffn_edge.checkpoint import (
    HASH_KEY,
    META_KEY,
    V1_HASH_KEY,
    CheckpointError,
    CheckpointMeta,
    _sealed,
    load_checkpoint,
    read_meta,
    save_checkpoint,
    upgrade_checkpoint,
)
from ffn_edge.core.errors import ConfigError
from ffn_edge.models import ModelConfig, create_model, load_pretrained

SHIPPED = Path(__file__).resolve().parent.parent / "models" / "demo_ffn.safetensors"


# -- round trip and damaged files ------------------------------------------------------------------


@pytest.fixture
def ckpt(tmp_path):
    cfg = ModelConfig("tsm_mobilenetv2", 3, width_mult=0.35)
    model = create_model(cfg).eval()
    with torch.no_grad():  # make every sub-network differ from the initial state
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    path = tmp_path / "model.safetensors"
    save_checkpoint(path, model, CheckpointMeta(cfg, ["a", "b", "c"], input_size=32, resize_shorter=36,
                                                extra={"epoch": 3}))
    return path, model


def test_round_trip_identical_outputs(ckpt) -> None:
    path, model = ckpt
    loaded, meta = load_checkpoint(path)
    assert meta.class_names == ["a", "b", "c"] and meta.extra == {"epoch": 3}
    assert meta.config.frame_counts == (4, 8, 16)
    for t in (2, 4, 8, 16):
        x = torch.randn(2, t, 3, 32, 32)
        assert torch.equal(model(x), loaded(x))
    assert read_meta(path).input_size == 32


def test_missing_file(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.safetensors")


def test_truncated(ckpt, tmp_path) -> None:
    path, _ = ckpt
    bad = tmp_path / "trunc.safetensors"
    bad.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="trunc.safetensors: not a readable"):
        load_checkpoint(bad)


def test_corrupted_data_detected(ckpt, tmp_path) -> None:
    path, _ = ckpt
    data = bytearray(path.read_bytes())
    data[-50] ^= 0xFF
    bad = tmp_path / "flip.safetensors"
    bad.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum"):
        load_checkpoint(bad)


def test_foreign_files(tmp_path) -> None:
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(CheckpointError, match="without ffn-edge metadata"):
        load_checkpoint(foreign)
    pickle = tmp_path / "model.pth"
    torch.save({"w": torch.zeros(2)}, pickle)
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_checkpoint(pickle)
    with pytest.raises(CheckpointError):
        read_meta(pickle)


def test_errors_are_one_line(tmp_path) -> None:
    (tmp_path / "x.safetensors").write_bytes(b"\x00" * 3)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(tmp_path / "x.safetensors")
    assert "\n" not in str(e.value) and "x.safetensors" in str(e.value)


# -- every bad metadata value and file: one line --------------------------------------------------

@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, torch.Tensor], dict, Path]:
    """Tensors and metadata of a tiny valid checkpoint, and the checkpoint file."""
    cfg = ModelConfig("tsm_resnet18", 3, frame_counts=(2, 4), width_mult=0.0625)
    model = create_model(cfg).eval()
    path = tmp_path_factory.mktemp("ckpt") / "ok.safetensors"
    save_checkpoint(path, model, CheckpointMeta(cfg, ["a", "b", "c"], input_size=32, resize_shorter=36))
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    return tensors, json.loads(read_meta_json(path)), path


def read_meta_json(path: Path) -> str:
    n = int.from_bytes(path.read_bytes()[:8], "little")
    return json.loads(path.read_bytes()[8 : 8 + n])["__metadata__"][META_KEY]


def with_meta(tmp: Path, tensors: dict, meta: dict | str, name: str = "bad.safetensors") -> Path:
    """A correctly sealed checkpoint carrying ``meta``: only the metadata check can refuse it."""
    text = meta if isinstance(meta, str) else json.dumps(meta)
    path = tmp / name
    path.write_bytes(_sealed(tensors, {META_KEY: text}))
    return path


def deep(n: int) -> str:
    return "[" * n + "]" * n


# (case, mutation of the metadata dict, expected text in the one-line error)
META_CASES = [
    ("num_classes 10.5", lambda d: d["config"].update(num_classes=10.5), "num_classes must be an integer"),
    ("num_classes 1e12", lambda d: d["config"].update(num_classes=10**12), "num_classes must be in"),
    ("num_classes 0", lambda d: d["config"].update(num_classes=0), "num_classes must be in"),
    ("width_mult wide", lambda d: d["config"].update(width_mult="wide"), "width_mult must be a number"),
    ("width_mult -1", lambda d: d["config"].update(width_mult=-1), "width_mult must be in"),
    ("width_mult 1e6", lambda d: d["config"].update(width_mult=1e6), "width_mult must be in"),
    ("dropout 5", lambda d: d["config"].update(dropout=5), "dropout must be in"),
    ("shift_div 0", lambda d: d["config"].update(shift_div=0), "shift_div must be in"),
    ("frame count 1e9", lambda d: d["config"].update(frame_counts=[2, 4, 10**9]), "frame_counts[2] must be in"),
    ("frame count '4'", lambda d: d["config"].update(frame_counts=[2, "4"]), "frame_counts[1] must be an integer"),
    ("frame counts empty", lambda d: d["config"].update(frame_counts=[]), "frame_counts must have"),
    ("specialised_norm str", lambda d: d["config"].update(specialised_norm="yes"), "must be true or false"),
    ("unknown arch", lambda d: d["config"].update(arch="resnet9000"), "unknown architecture"),
    ("unknown config key", lambda d: d["config"].update(depth=5), "unknown model config keys"),
    ("config not object", lambda d: d.update(config=[1]), "model config must be an object"),
    ("class_names short", lambda d: d.update(class_names=["a", "b"]), "2 class names for 3 classes"),
    ("class_names long", lambda d: d.update(class_names=["a", "b", "c", "d"]), "4 class names for 3 classes"),
    ("class name not str", lambda d: d.update(class_names=["a", 1, "c"]), "class_names[1] must be a string"),
    ("class name empty", lambda d: d.update(class_names=["a", "", "c"]), "class_names[1] must be a string of"),
    ("input_size 0", lambda d: d.update(input_size=0), "input_size must be in"),
    ("input_size float", lambda d: d.update(input_size=32.5), "input_size must be an integer"),
    ("crop > resize", lambda d: d.update(resize_shorter=16), "resize_shorter must be in"),
    ("mean 2 values", lambda d: d.update(mean=[0.5, 0.5]), "mean must have 3..3 items"),
    ("std zero", lambda d: d.update(std=[0.2, 0.0, 0.2]), "std[1] must be in"),
    ("std nan", lambda d: d.update(std=[0.2, float("nan"), 0.2]), "std[1] must be finite"),
    ("mean inf", lambda d: d.update(mean=[float("inf"), 0, 0]), "mean[0] must be finite"),
    ("extra not object", lambda d: d.update(extra=[1, 2]), "extra must be an object"),
    ("missing class_names", lambda d: d.pop("class_names"), "metadata has no 'class_names'"),
    ("format version 3", lambda d: d.update(format_version=3), "newer ffn-edge: upgrade ffn-edge"),
    ("format version 1", lambda d: d.update(format_version=1), "python -m ffn_edge.checkpoint upgrade"),
    ("foreign format", lambda d: d.update(format="other"), "not ffn-edge checkpoint metadata"),
]


def one_line(e: pytest.ExceptionInfo, *texts: str) -> None:
    msg = str(e.value)
    assert "\n" not in msg, msg
    for t in texts:
        assert t in msg, msg


@pytest.mark.parametrize("case,mutate,text", META_CASES, ids=[c[0] for c in META_CASES])
def test_bad_metadata_is_one_line_before_any_model_is_built(base, tmp_path, monkeypatch, case, mutate, text):
    tensors, meta, _ = base
    d = json.loads(json.dumps(meta))
    mutate(d)
    path = with_meta(tmp_path, tensors, d)
    built = []
    monkeypatch.setattr("ffn_edge.checkpoint.create_model", lambda c: built.append(c))
    for load in (load_checkpoint, read_meta):
        with pytest.raises(CheckpointError) as e:
            load(path)
        one_line(e, text, "bad.safetensors")
    assert built == []  # refused before create_model allocated anything


def _rewrite_header(path: Path, out: Path, edit) -> Path:
    blob = path.read_bytes()
    n = int.from_bytes(blob[:8], "little")
    header = edit(blob[8 : 8 + n])
    out.write_bytes(len(header).to_bytes(8, "little") + header + blob[8 + n :])
    return out


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _fifo(tmp: Path) -> Path:
    p = tmp / "fifo.safetensors"
    os.mkfifo(p)
    return p


def _unsealed(base, tmp: Path) -> Path:
    tensors, meta, _ = base
    p = tmp / "nohash.safetensors"
    p.write_bytes(st_save(tensors, metadata={META_KEY: json.dumps(meta)}))
    return p


def _flipped(base, tmp: Path) -> Path:
    data = bytearray(base[2].read_bytes())
    data[-50] ^= 0xFF
    p = tmp / "flip.safetensors"
    p.write_bytes(bytes(data))
    return p


def _v1(base, tmp: Path) -> Path:
    import hashlib

    tensors, meta, _ = base
    d = {**meta, "format_version": 1}
    blob = st_save(tensors)
    n = int.from_bytes(blob[:8], "little")
    digest = hashlib.sha256(blob[8 + n :]).hexdigest()
    p = tmp / "v1.safetensors"
    p.write_bytes(st_save(tensors, metadata={META_KEY: json.dumps(d), V1_HASH_KEY: digest}))
    return p


# (case, make(base, tmp) -> path, expected text)
FILE_CASES = [
    ("checksum key deleted", _unsealed, "checksum (it is mandatory)"),
    ("tensor byte flipped", _flipped, "does not match its checksum"),
    ("dtype F32 -> I32 in header", lambda b, t: _rewrite_header(b[2], t / "dtype.safetensors",
                                                                  lambda h: h.replace(b'"F32"', b'"I32"', 1)),
     "does not match its checksum"),
    ("metadata edited", lambda b, t: _rewrite_header(b[2], t / "meta.safetensors",
                                                      lambda h: h.replace(b'\\"a\\"', b'\\"z\\"', 1)),
     "does not match its checksum"),
    ("truncated", lambda b, t: _write(t / "trunc.safetensors", b[2].read_bytes()[:-100]), "truncated"),
    ("3 bytes", lambda b, t: _write(t / "x.safetensors", b"abc"), "only 3 bytes"),
    ("header length huge", lambda b, t: _write(t / "h.safetensors", (2**60).to_bytes(8, "little") + b"{}"),
     "header length"),
    ("header not JSON", lambda b, t: _write(t / "j.safetensors", (4).to_bytes(8, "little") + b"{{{{"),
     "not valid JSON"),
    ("header nested 200000 deep", lambda b, t: _write(t / "d.safetensors", len(deep(200_000)).to_bytes(8, "little")
                                                      + deep(200_000).encode()), "nested deeper"),
    ("metadata nested 200000 deep", lambda b, t: with_meta(t, b[0], deep(200_000)), "nested deeper"),
    ("pickle file", lambda b, t: _write(t / "p.safetensors", pickle.dumps({"a": 1})),
     "not a readable safetensors checkpoint"),
    ("directory", lambda b, t: (t / "dir.safetensors").mkdir() or t / "dir.safetensors", "is a directory"),
    ("FIFO", lambda b, t: _fifo(t), "is a FIFO"),
    ("missing", lambda b, t: t / "nope.safetensors", "file not found"),
    ("format 1 checkpoint", _v1, "upgrade OLD NEW"),
]


@pytest.mark.parametrize("case,make,text", FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_bad_checkpoint_file_is_one_line(base, tmp_path, case, make, text):
    path = make(base, tmp_path)
    result: list[BaseException] = []
    t = threading.Thread(target=lambda: _catch(result, path), daemon=True)  # a FIFO must not block
    t.start()
    t.join(30)
    assert not t.is_alive(), f"{case}: load_checkpoint hung"
    assert isinstance(result[0], CheckpointError), repr(result[0])
    msg = str(result[0])
    assert "\n" not in msg and text in msg, msg


def _catch(result: list, path: Path) -> None:
    try:
        load_checkpoint(path)
        result.append(AssertionError("loaded"))
    except BaseException as e:  # noqa: BLE001 - the test inspects the type
        result.append(e)


def test_shipped_demo_checkpoint_loads_in_the_current_format():
    model, meta = load_checkpoint(SHIPPED)
    assert meta.config.arch == "tsm_resnet18" and len(meta.class_names) == meta.config.num_classes == 10


def test_upgrade_reseals_a_format_1_checkpoint_and_refuses_a_tampered_one(base, tmp_path):
    old = _v1(base, tmp_path)
    upgrade_checkpoint(old, tmp_path / "new.safetensors")
    model, meta = load_checkpoint(tmp_path / "new.safetensors")
    for k, v in base[0].items():
        assert torch.equal(model.state_dict()[k], v), k
    data = bytearray(old.read_bytes())
    data[-50] ^= 0xFF
    (tmp_path / "bad_v1.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="refusing to re-seal"):
        upgrade_checkpoint(tmp_path / "bad_v1.safetensors", tmp_path / "x.safetensors")


def test_hash_key_is_in_the_header(base):
    n = int.from_bytes(base[2].read_bytes()[:8], "little")
    assert HASH_KEY in json.loads(base[2].read_bytes()[8 : 8 + n])["__metadata__"]


def test_model_config_refuses_unbounded_values_before_building():
    for kw, text in [({"num_classes": 10**12}, "num_classes"), ({"width_mult": 1e6}, "width_mult"),
                     ({"frame_counts": (4, 8, 10**9)}, "frame_counts"), ({"dropout": 5.0}, "dropout"),
                     ({"shift_div": 0}, "shift_div")]:
        with pytest.raises(ValueError, match=text):
            ModelConfig("tsm_resnet18", **{"num_classes": 3, **kw})


# ---- --pretrained -------------------------------------------------------------------------------------------


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


PRETRAINED_CASES = [
    ("garbage .pth", "w.pth", lambda p: p.write_bytes(b"\x00garbage" * 10), "not a readable weights file"),
    ("pickle with code", "evil.pth", lambda p: p.write_bytes(pickle.dumps({"w": _Evil()})),
     "not a readable weights file"),
    ("empty .pth", "e.pth", lambda p: p.write_bytes(b""), "not a readable weights file"),
    ("malformed safetensors", "m.safetensors", lambda p: p.write_bytes(b"\x10" + b"\x00" * 7 + b"{bad json"),
     "not a readable weights file"),
    ("tensor, not a dict", "t.pth", lambda p: torch.save(torch.zeros(3), p), "not a state dict"),
    ("dict of non-tensors", "n.pth", lambda p: torch.save({"a": 1}, p), "not a state dict"),
    ("directory", "d.pth", lambda p: p.mkdir(), "is a directory"),
    ("FIFO", "f.pth", lambda p: os.mkfifo(p), "is a FIFO"),
    ("missing", "x.pth", lambda p: None, "file not found"),
]


@pytest.mark.parametrize("case,name,make,text", PRETRAINED_CASES, ids=[c[0] for c in PRETRAINED_CASES])
def test_bad_pretrained_file_is_one_config_error(tmp_path, case, name, make, text):
    path = tmp_path / name
    make(path)
    model = create_model(ModelConfig("tsm_resnet18", 3, frame_counts=(4,), width_mult=0.0625))
    with pytest.raises(ConfigError) as e:
        load_pretrained(model, path)
    one_line(e, text)


def _cli(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


@pytest.mark.slow
def test_ffn_export_refuses_short_class_names_with_one_line(base, tmp_path):
    tensors, meta, _ = base
    d = json.loads(json.dumps(meta))
    d["class_names"] = ["a", "b"]
    path = with_meta(tmp_path, tensors, d)
    r = _cli("ffn_edge.export.cli", "--ckpt", str(path), "--frames", "2", "4", "--out", str(tmp_path / "b.ffn"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "2 class names for 3 classes" in r.stderr and not (tmp_path / "b.ffn").exists()


@pytest.mark.slow
def test_ffn_train_bad_pretrained_is_one_line(tmp_path):
    (tmp_path / "w.pth").write_bytes(b"not a pickle")
    r = _cli("ffn_edge.train", "--pretrained", str(tmp_path / "w.pth"), "--out", str(tmp_path / "run"),
             "--width-mult", "0.0625", "--synth-classes", "2", "--synth-train-per-class", "1",
             "--synth-val-per-class", "1", "--synth-frames", "8", "--synth-size", "32", "--epochs", "1",
             "--workers", "0", "--quiet")
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "not a readable weights file" in r.stderr
