"""ffn-export: bundle round trip (ONNX Runtime vs PyTorch), weight sharing, manifest integrity, errors."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from ffn_edge.export import export_bundle
from ffn_edge.export.errors import ExportError
from ffn_edge.export.fold import is_conv_copy, is_per_subnet
from ffn_edge.export.onnx_export import GRAPH_PREFIX
from ffn_edge.export.tensorrt import device_key, gpu_name
from onnx.external_data_helper import ExternalDataInfo, uses_external_data

from ffn_edge.bundle.manifest import file_entry, load_manifest
from ffn_edge.checkpoint import META_KEY, CheckpointMeta, save_checkpoint
from ffn_edge.core.errors import BundleError
from ffn_edge.models import ModelConfig, create_model, perturb_like_trained

SIZE = 32


def _checkpoint(path: Path, arch: str, width: float):
    """A checkpoint whose sub-networks really differ: perturbed weights, BN statistics and WA."""
    cfg = ModelConfig(arch, 5, width_mult=width)
    model = create_model(cfg).eval()
    perturb_like_trained(model, weight_std=0.05, var_spread=1.5)
    save_checkpoint(path, model, CheckpointMeta(cfg, list("abcde"), input_size=SIZE, resize_shorter=36))
    return model


@pytest.fixture(scope="module")
def r18(tmp_path_factory):
    root = tmp_path_factory.mktemp("r18")
    model = _checkpoint(root / "r18.safetensors", "tsm_resnet18", 0.25)
    bundle = export_bundle(root / "r18.safetensors", [4, 8, 16], root / "r18.ffn")
    return model, root, bundle


@pytest.fixture(scope="module")
def mbv2(tmp_path_factory):
    """TSM-MobileNetV2 exported for frame counts it was not trained with."""
    root = tmp_path_factory.mktemp("mbv2")
    model = _checkpoint(root / "mb.safetensors", "tsm_mobilenetv2", 0.35)
    return model, export_bundle(root / "mb.safetensors", [2, 6, 12], root / "mb.ffn")


def _ort_vs_torch(model, bundle: Path, frames: int, batch: int = 3) -> tuple[float, bool]:
    m = load_manifest(bundle)
    g = m.graph_for(frames)
    x = np.random.default_rng(frames).standard_normal((batch, frames, 3, SIZE, SIZE)).astype(np.float32)
    out = ort.InferenceSession(str(bundle / g.file), providers=["CPUExecutionProvider"]).run(
        [m.output_name], {m.input.name: x})[0]
    with torch.no_grad():
        ref = model(torch.from_numpy(x), subnet=g.subnet).numpy()
    return float(np.abs(out - ref).max()), bool((out.argmax(1) == ref.argmax(1)).all())


@pytest.mark.slow
def test_resnet18_round_trip(r18) -> None:
    model, _, bundle = r18
    m = load_manifest(bundle)
    assert m.arch == "tsm_resnet18" and m.subnet_frame_counts == (4, 8, 16)
    assert [(g.frames, g.subnet) for g in m.graphs] == [(4, 0), (8, 1), (16, 2)]
    assert m.input.layout == "NTCHW" and m.input.size == (SIZE, SIZE) and m.class_names == tuple("abcde")
    for frames in (4, 8, 16):
        diff, top1 = _ort_vs_torch(model, bundle, frames)
        assert diff <= 1e-4 and top1, (frames, diff)
        assert m.extra["verification"]["graphs"][str(frames)]["max_abs_diff"] <= 1e-4
    # the sub-networks really differ, so a graph of the wrong sub-network would have been caught
    x = torch.randn(1, 8, 3, SIZE, SIZE)
    with torch.no_grad():
        assert (model(x, subnet=0) - model(x, subnet=1)).abs().max() > 1e-3


@pytest.mark.slow
def test_mobilenetv2_untrained_counts_use_nearest_subnet(mbv2) -> None:
    model, bundle = mbv2
    m = load_manifest(bundle)
    # 2 -> 4 (L); 6 ties between 4 and 8 -> the higher, 8 (M); 12 ties between 8 and 16 -> 16 (H)
    assert [(g.frames, g.subnet) for g in m.graphs] == [(2, 0), (6, 1), (12, 2)]
    for frames in (2, 6, 12):
        diff, top1 = _ort_vs_torch(model, bundle, frames)
        assert diff <= 1e-4 and top1, (frames, diff)
    wa = m.extra["folding"]["weight_alteration"]["f6.onnx"]
    # MobileNetV2: the expansion-1 block (depth-wise first conv) and the block after it fold
    assert wa["wa_through_depthwise"] == 1 and wa["wa_into_affine"] == 1 and wa["wa_kept"] == wa["wa_total"] - 2


@pytest.mark.slow
def test_each_shared_tensor_stored_once(r18) -> None:
    model, _, bundle = r18
    m = load_manifest(bundle)
    data = (bundle / m.weights_file).read_bytes()
    state = model.state_dict()
    where: dict[str, tuple[int, int]] = {}
    for g in m.graphs:
        proto = onnx.load(str(bundle / g.file), load_external_data=False)
        for t in proto.graph.initializer:
            if uses_external_data(t):
                info = ExternalDataInfo(t)
                assert info.location == m.weights_file
                rng = (info.offset, info.length)
                assert where.setdefault(t.name, rng) == rng, f"{t.name} at two offsets"
            else:  # only per-sub-network tensors and tiny shape constants stay in a graph
                assert is_per_subnet(t.name) or len(t.raw_data) < 64, t.name
    # conv copies with a sub-network's norm folded in (within the budget) replace the shared weight
    folded = {w[len(GRAPH_PREFIX):] for w in m.extra["folding"]["batchnorm"]["conv_copies"]}
    assert folded and "conv1.weight" in folded  # the stem: largest activation per weight byte
    copies = {n for n in where if is_conv_copy(n)}
    assert copies == {f"{GRAPH_PREFIX}{w}.subnet_{k}.conv_copy" for w in folded for k in range(3)}
    shared = {k for k in state if ".norms." not in k and ".alteration." not in k} - folded
    assert {n[len(GRAPH_PREFIX):] for n in where if n not in copies} == shared  # every other conv / fc tensor
    for name, (off, n) in where.items():  # ... holding exactly the checkpoint's bytes
        if name not in copies:
            assert data[off : off + n] == state[name[len(GRAPH_PREFIX):]].numpy().tobytes(), name
    ranges = set(where.values())
    assert len(ranges) == len(where)  # one range per tensor: nothing stored twice
    payload = sum(n for _, n in ranges)
    assert payload == sum(state[k].numel() * 4 for k in shared) + sum(state[w].numel() * 4 * 3 for w in folded)
    assert payload - sum(state[k].numel() * 4 for k in shared | folded) \
        <= m.extra["folding"]["batchnorm"]["conv_copy_budget"] * m.extra["folding"]["batchnorm"]["shared_param_bytes"]
    assert len(data) < payload + 4096 * len(ranges)  # the rest is alignment padding only


@pytest.mark.slow
def test_manifest_hashes_and_tampering(r18, tmp_path) -> None:
    _, _, bundle = r18
    m = load_manifest(bundle, verify=True)
    assert set(m.files) == {m.weights_file, "f4.onnx", "f8.onnx", "f16.onnx"}
    for rel, entry in m.files.items():
        assert file_entry(bundle / rel) == entry
    for victim in ("weights.bin", "f8.onnx"):
        copy = tmp_path / victim / "b.ffn"
        shutil.copytree(bundle, copy)
        raw = bytearray((copy / victim).read_bytes())
        raw[len(raw) // 2] ^= 0x01
        (copy / victim).write_bytes(bytes(raw))
        with pytest.raises(BundleError, match=f"{victim} does not match the manifest"):
            load_manifest(copy)


@pytest.mark.slow
def test_dynamic_frame_dim_serves_counts_from_one_graph(r18, tmp_path) -> None:
    model, root, _ = r18
    bundle = export_bundle(root / "r18.safetensors", [6, 8], tmp_path / "dyn.ffn", frame_dim="dynamic")
    m = load_manifest(bundle)
    assert {g.file for g in m.graphs} == {"subnet1_t8.onnx"} and all(g.dynamic_frames for g in m.graphs)
    for frames in (6, 8):
        diff, top1 = _ort_vs_torch(model, bundle, frames)
        assert diff <= 1e-4 and top1


@pytest.mark.parametrize("kw, frames, form", [
    ({"fold_budget": 0.0, "bias_first": False}, [4, 8], "mul_add"),  # the older export
    ({"fold_budget": 0.0}, [4, 8], "bias_first"),  # every conv shared, norms as Add then Mul
    ({"fold_budget": 10.0}, [4, 8], "into_conv_copy"),  # a budget that covers every conv
    ({}, [8], "into_conv_copy"),  # one sub-network: copies cost nothing, so every norm is folded
])
@pytest.mark.slow
def test_norm_forms_keep_parity(r18, tmp_path, kw, frames, form) -> None:
    model, root, _ = r18
    bundle = export_bundle(root / "r18.safetensors", frames, tmp_path / "b.ffn", **kw)  # verifies parity
    m = load_manifest(bundle)
    norms = m.extra["folding"]["batchnorm"]
    for report in norms["graphs"].values():  # all 20 conv-following BNs of a ResNet-18 in one form
        assert report[form] == 20 and sum(report.values()) == 20, report
    for f in frames:
        diff, top1 = _ort_vs_torch(model, bundle, f)
        assert diff <= 1e-4 and top1
    if form == "into_conv_copy" and len(frames) > 1:  # each copy is stored once, in the weight file
        size = (bundle / m.weights_file).stat().st_size
        assert size >= norms["shared_param_bytes"] + norms["extra_bytes"]


def test_norm_with_a_zero_scale_stays_mul_add() -> None:
    """``(conv + b/s) * s`` needs every s != 0; otherwise the norm keeps its Mul -> Add form."""
    from ffn_edge.export.fold import fold_norms
    from onnx import helper, numpy_helper

    w = numpy_helper.from_array(np.ones((2, 1, 1, 1), np.float32), "model.conv.weight")
    scale = numpy_helper.from_array(np.array([0.0, 2.0], np.float32).reshape(1, 2, 1, 1), "model.bn.subnet_scale")
    shift = numpy_helper.from_array(np.array([1.0, 3.0], np.float32).reshape(1, 2, 1, 1), "model.bn.subnet_shift")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", w.name], ["c"]), helper.make_node("Mul", ["c", scale.name], ["m"]),
         helper.make_node("Add", ["m", shift.name], ["y"])], "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2, 2, 2])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2, 2, 2])], [w, scale, shift])
    model = helper.make_model(graph)
    report = fold_norms(model, 0)
    assert (report.mul_add, report.bias_first, report.into_conv_copy) == (1, 0, 0)
    assert [n.op_type for n in model.graph.node] == ["Conv", "Mul", "Add"]


@pytest.mark.slow
def test_failed_verification_leaves_old_bundle_intact(r18, tmp_path, monkeypatch) -> None:
    from ffn_edge.export import bundle as bundle_mod
    from ffn_edge.export.verify import Parity

    _, root, good = r18
    out = tmp_path / "b.ffn"
    shutil.copytree(good, out)
    monkeypatch.setattr(bundle_mod, "parity", lambda *a: Parity(1.0, False, 1))
    with pytest.raises(ExportError, match="verification failed for 4 frames"):
        export_bundle(root / "r18.safetensors", [4], out, force=True)
    load_manifest(out)  # the old bundle, complete and unmodified
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.ffn"]  # no temporary directory left behind


def _cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ffn_edge.export.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_cli_errors_are_one_line(r18, tmp_path) -> None:
    _, root, bundle = r18
    ckpt = str(root / "r18.safetensors")
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}" + bytes(64))
    meta = json.loads(CheckpointMeta(ModelConfig("tsm_resnet18", 2), ["a", "b"]).to_json())
    meta["config"]["arch"] = "tsm_resnet999"
    from safetensors.torch import save_file

    unknown = tmp_path / "unknown.safetensors"
    save_file({"w": torch.zeros(1)}, str(unknown), metadata={META_KEY: json.dumps(meta)})
    out = str(tmp_path / "o.ffn")
    cases = {
        "missing checkpoint": (["--ckpt", str(tmp_path / "nope.safetensors"), "--frames", "8", "--out", out],
                               "not found"),
        "corrupt checkpoint": (["--ckpt", str(corrupt), "--frames", "8", "--out", out], "corrupt.safetensors"),
        "unknown architecture": (["--ckpt", str(unknown), "--frames", "8", "--out", out], "tsm_resnet999"),
        "empty frames": (["--ckpt", ckpt, "--frames", "--out", out], "--frames is empty"),
        "zero frames": (["--ckpt", ckpt, "--frames", "4", "0", "--out", out], "must be positive"),
        "negative frames": (["--ckpt", ckpt, "--frames", "-4", "--out", out], "must be positive"),
        "existing output": (["--ckpt", ckpt, "--frames", "8", "--out", str(bundle)], "--force"),
        "no TensorRT here": (["--ckpt", ckpt, "--frames", "8", "--out", out, "--trt"], "TensorRT"),
        "negative fold budget": (["--ckpt", ckpt, "--frames", "8", "--out", out, "--fold-budget", "-0.1"],
                                 "--fold-budget must be >= 0"),
    }
    if gpu_name() is not None:
        del cases["no TensorRT here"]
    procs = {k: _cli(*argv) for k, (argv, _) in cases.items()}
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=120)
        assert proc.returncode != 0, name
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("ffn-export: error: "), (name, err)
        assert cases[name][1] in lines[0], (name, lines[0])
    assert not Path(out).exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".o.ffn")]
    load_manifest(bundle)  # the refused --out was not touched


def test_device_key_separates_gpu_version_precision() -> None:
    keys = {device_key(g, v, p) for g in ("NVIDIA H100 80GB HBM3", "Orin (nvgpu)") for v in ("10.3.0", "10.8.0")
            for p in ("fp16", "fp32")}
    assert len(keys) == 8 and all("/" not in k and " " not in k for k in keys)


@pytest.mark.gpu
@pytest.mark.slow
def test_tensorrt_engines(r18, tmp_path) -> None:
    pytest.importorskip("tensorrt")
    if gpu_name() is None:
        pytest.skip("no CUDA GPU")
    import tensorrt as trt
    from ffn_edge.export.tensorrt import build_engines, load_engine

    _, _, good = r18
    bundle = tmp_path / "b.ffn"
    shutil.copytree(good, bundle)
    entry = build_engines(bundle, fp16=False, max_batch=2)
    m = load_manifest(bundle)  # engines and timing cache are hashed into the manifest
    assert set(entry["engines"]) == {"4", "8", "16"} and entry["stripped"]
    assert build_engines(bundle, fp16=False, max_batch=2) == entry  # cache hit: same key, same files
    e = entry["engines"]["8"]
    engine = load_engine(trt, bundle / e["file"], bundle / e["refit_from"])
    assert engine.num_io_tensors == 2 and m.files[e["file"]]["size"] < (bundle / m.weights_file).stat().st_size
