"""ffn-export --int8: INT8 weights stored once, per-sub-network vs shared calibration, the agreement check,
the manifest's precision record, and INT8 bundles through the runtime (ORT CPU)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from builders import INT8_FRAMES, INT8_SIZE, write_video
from ffn_edge.export import export_bundle
from ffn_edge.export import int8 as int8_mod
from ffn_edge.export.calib import CalibSource, parse_calib
from ffn_edge.export.cli import run as export_cli
from ffn_edge.export.errors import ExportError
from ffn_edge.export.fold import is_per_subnet
from ffn_edge.export.int8_config import Int8Options, QuantConfig
from ffn_edge.export.quantize import merge_ranges
from ffn_edge.export.share import check_int8_external, check_shared
from ffn_edge.runtime.backends.ort import OrtBackend
from onnx import numpy_helper
from onnx.external_data_helper import ExternalDataInfo, uses_external_data

from ffn_edge.bundle.manifest import MANIFEST_NAME, load_manifest, seal
from ffn_edge.core.errors import BundleError, ConfigError, FFNError

SIZE = INT8_SIZE
FRAMES = list(INT8_FRAMES)


@pytest.fixture(scope="module")
def ckpt(int8_ckpt) -> Path:
    return int8_ckpt


def _export(ckpt: Path, out: Path, verify: bool = True, **cfg) -> Path:
    opts = Int8Options(calib_clips=4, config=QuantConfig(**cfg), min_agreement=0.0)
    return Path(export_bundle(ckpt, FRAMES, out, int8=opts, verify=verify, n_verify=4))


@pytest.fixture(scope="module")
def per_subnet(int8_bundle) -> Path:
    """Per-sub-network calibration, shared layout (the session's INT8 bundle)."""
    return int8_bundle


@pytest.fixture(scope="module")
def shared(ckpt, tmp_path_factory) -> Path:
    return _export(ckpt, tmp_path_factory.mktemp("int8") / "shared.ffn", verify=False, scope="shared",
                   layout="shared")


def _int8_weights(bundle: Path, graph: str) -> dict[str, tuple[int, int] | None]:
    """INT8 initializers of a graph: name -> (offset, length) in the weight file, None when inline."""
    proto = onnx.load(str(bundle / graph), load_external_data=False)
    out = {}
    for t in proto.graph.initializer:
        if t.data_type == onnx.TensorProto.INT8 and len(t.dims) >= 2:
            info = ExternalDataInfo(t) if uses_external_data(t) else None
            out[t.name] = (int(info.offset or 0), int(info.length)) if info else None
    return out


@pytest.mark.slow
def test_each_int8_weight_is_stored_once_for_every_sub_network(per_subnet, ckpt, tmp_path):
    m = load_manifest(per_subnet)
    graphs = [g.file for g in m.graphs]
    by_graph = {g: _int8_weights(per_subnet, g) for g in graphs}
    shared_names = set.intersection(*(set(w) for w in by_graph.values()))
    assert len(shared_names) >= 15  # the convolutions shared by both sub-networks (and the classifier)
    for name in shared_names:
        ranges = {by_graph[g][name] for g in graphs}
        assert None not in ranges, f"{name} is inline in a graph"
        assert len(ranges) == 1, f"{name}: the graphs carry their own copies {ranges}"
    # and no two ranges of the weight file hold the same INT8 weight, under any name
    data = (per_subnet / m.weights_file).read_bytes()
    chunks = [data[o : o + n] for o, n in {r for w in by_graph.values() for r in w.values()}]
    assert len(set(chunks)) == len(chunks)
    fp32 = Path(export_bundle(ckpt, FRAMES, tmp_path / "fp32.ffn", verify=False))
    assert (per_subnet / m.weights_file).stat().st_size < 0.35 * (fp32 / "weights.bin").stat().st_size


def test_a_graph_with_its_own_copy_of_an_int8_weight_is_refused(per_subnet, tmp_path):
    bundle = tmp_path / "b.ffn"
    shutil.copytree(per_subnet, bundle)
    graphs = [g.file for g in load_manifest(bundle).graphs]
    assert check_int8_external(bundle, graphs)[0] > 0
    proto = onnx.load(str(bundle / graphs[1]))  # external data read in: every tensor now inline
    onnx.save_model(proto, str(bundle / graphs[1]))
    with pytest.raises(ExportError, match="stored inside the graph"):
        check_int8_external(bundle, graphs)
    # the same weight written a second time into the weight file, for one graph only
    proto = onnx.load(str(per_subnet / graphs[1]), load_external_data=False)
    t = next(t for t in proto.graph.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.dims) >= 2)
    info = ExternalDataInfo(t)
    with open(bundle / "weights.bin", "r+b") as f:
        f.seek(int(info.offset or 0))
        payload = f.read(int(info.length))
        f.seek(0, 2)
        end = f.tell()
        f.write(payload)
    for e in t.external_data:
        if e.key == "offset":
            e.value = str(end)
    onnx.save_model(proto, str(bundle / graphs[1]))
    with pytest.raises(ExportError, match="stored twice"):
        check_shared(bundle, "weights.bin", graphs)


def _activation_scales(bundle: Path, graph: str) -> dict[str, float]:
    proto = onnx.load(str(bundle / graph), load_external_data=False)
    return {t.name: float(numpy_helper.to_array(t)) for t in proto.graph.initializer
            if t.name.endswith("_scale") and len(t.dims) == 0 and not is_per_subnet(t.name)}


@pytest.mark.slow
def test_shared_calibration_gives_every_sub_network_one_range_table_and_per_subnet_does_not(per_subnet, shared):
    # shared: every activation scale is the same in both graphs, so it keeps its one name
    a, b = (_activation_scales(shared, f"f{n}.onnx") for n in FRAMES)
    assert len(set(a) & set(b)) >= 20 and all(np.isclose(a[k], b[k], rtol=1e-6) for k in set(a) & set(b))
    renamed = load_manifest(shared).extra["quantization"]["per_graph_tensors"]
    assert not [n for n in renamed if n.endswith("_scale")]
    # per sub-network: the scales differ, so each graph keeps its own under a per-sub-network name
    renamed = load_manifest(per_subnet).extra["quantization"]["per_graph_tensors"]
    assert len([n for n in renamed if n.endswith("_scale")]) >= 20
    a, b = (_activation_scales(per_subnet, f"f{n}.onnx") for n in FRAMES)
    assert len(a) < 0.5 * len(_activation_scales(shared, "f4.onnx"))
    for bundle, scope in ((shared, "shared"), (per_subnet, "per-subnet")):
        assert load_manifest(bundle).quantization.calib_scope == scope


def test_merge_ranges_is_minmax_over_all_tables():
    assert merge_ranges([{"x": (-1.0, 2.0), "y": (0.0, 1.0)}, {"x": (-3.0, 1.0)}]) == {"x": (-3.0, 2.0),
                                                                                       "y": (0.0, 1.0)}


def test_manifest_records_precision_and_calibration_and_the_runtime_checks_them(per_subnet, tmp_path):
    m = load_manifest(per_subnet)
    q = m.quantization
    assert (m.extra["precision"], q.format, q.calib_method, q.calib_count, q.layout) == \
        ("int8", "QDQ", "MinMax", 4, "shared")
    assert q.calib_data.startswith("synthetic")
    agree = m.extra["quantization"]["agreement"]["graphs"]
    assert set(agree) == {"4", "8"} and all(0.0 <= v <= 1.0 for v in agree.values())
    raw = json.loads((per_subnet / MANIFEST_NAME).read_text())
    for path, value, match in ((("quantization", "calibration", "method"), "Entropy", "method"),
                               (("quantization", "calibration", "count"), 0, "count"),
                               (("precision",), "int4", "precision"),
                               (("quantization", "activations"), "u4", "activations")):
        bad = json.loads(json.dumps(raw))
        node = bad["extra"]
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        bundle = tmp_path / f"bad-{match}.ffn"
        shutil.copytree(per_subnet, bundle)
        (bundle / MANIFEST_NAME).write_text(json.dumps(seal(bad)))
        with pytest.raises(BundleError, match=match):
            load_manifest(bundle)
    bad = json.loads(json.dumps(raw))
    del bad["extra"]["precision"]  # an fp32 bundle must not claim a quantization
    bundle = tmp_path / "fp32-claim.ffn"
    shutil.copytree(per_subnet, bundle)
    (bundle / MANIFEST_NAME).write_text(json.dumps(seal(bad)))
    with pytest.raises(BundleError, match="precision is fp32"):
        load_manifest(bundle)


def test_int8_bundle_opens_like_any_other_and_the_shared_runtime_matches_plain_ort(per_subnet):
    m = load_manifest(per_subnet)
    clip = np.random.default_rng(3).standard_normal((2, 8, 3, SIZE, SIZE)).astype(np.float32)
    backend = OrtBackend(per_subnet, m, threads=1)  # the runtime's default: pooled weights, optimised once
    try:
        got = backend.run(8, clip)
    finally:
        backend.close()
    plain = ort.InferenceSession(str(per_subnet / "f8.onnx"), providers=["CPUExecutionProvider"])
    want = plain.run(None, {m.input.name: clip})[0]
    assert got.shape == (2, 5)
    np.testing.assert_allclose(got, want, atol=1e-4)
    ops = {n.op_type for n in onnx.load(str(per_subnet / "f8.onnx"), load_external_data=False).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops


@pytest.mark.slow
def test_agreement_below_the_threshold_refuses_the_export(ckpt, tmp_path, monkeypatch):
    real = int8_mod.calibrate

    def broken(proto, clips, workdir, **kw):  # ranges 1000x too narrow: every activation saturates
        return {k: (lo / 1000, hi / 1000) for k, (lo, hi) in real(proto, clips, workdir, **kw).items()}

    monkeypatch.setattr(int8_mod, "calibrate", broken)
    opts = Int8Options(calib_clips=2, min_agreement=1.0)
    with pytest.raises(ExportError, match=r"INT8 check failed for \d+ frames .* --int8-min-agreement"):
        export_bundle(ckpt, FRAMES, tmp_path / "x.ffn", int8=opts, verify=True, n_verify=8)
    assert not (tmp_path / "x.ffn").exists()


@pytest.mark.parametrize("argv, match", [
    (["--calib", "synthetic"], "--calib applies to INT8 export: add --int8"),
    (["--int8", "--calib", "/nonexistent/list.txt"], "not 'synthetic', a data list file or a folder of videos"),
    (["--int8", "--int8-min-agreement", "1.5"], r"--int8-min-agreement must be in \[0, 1\]"),
    (["--int8", "--calib-clips", "0"], r"--calib-clips must be in \[1, "),
    (["--int8", "--calib-root", "x"], "--calib-root applies to a data list"),
])
def test_cli_int8_options_fail_in_one_line(ckpt, tmp_path, argv, match):
    with pytest.raises(FFNError, match=match) as e:
        export_cli(["--ckpt", str(ckpt), "--frames", "4", "8", "--out", str(tmp_path / "o.ffn"), *argv])
    assert "\n" not in str(e.value) and isinstance(e.value, ConfigError | ExportError)


def test_calibration_sources(tmp_path):
    assert parse_calib("synthetic") == CalibSource("synthetic")
    videos = tmp_path / "videos"
    videos.mkdir()
    with pytest.raises(ExportError, match="no video files"):
        parse_calib(str(videos))
    write_video(videos / "a.avi", (np.full((40, 48, 3), i * 20, np.uint8) for i in range(12)), fps=10, fourcc="MJPG")
    src = parse_calib(str(videos))
    from ffn_edge.export.calib import calibration_clips

    clips = calibration_clips(src, 3, 4, SIZE, 36, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    assert clips.shape == (1, 4, 3, SIZE, SIZE)  # one video -> one clip, TSN-sampled to 4 frames
    assert np.all(np.diff(clips[0, :, 0, 0, 0]) > 0)  # frames in time order (brightness grows)
    lst = tmp_path / "val.txt"
    lst.write_text("")
    assert parse_calib(str(lst)).kind == "list" and parse_calib(str(lst)).root == str(tmp_path)


@pytest.mark.slow
def test_folded_layout_stores_int8_copies_whose_bytes_equal_the_shared_weight_once(ckpt, per_subnet, tmp_path):
    """Folding a positive per-channel norm scale into a weight does not change its per-channel symmetric
    INT8 bytes (the factor cancels), so the per-sub-network copies mostly dedupe to one range."""
    folded = _export(ckpt, tmp_path / "folded.ffn", verify=False, layout="folded")
    q = load_manifest(folded).extra["quantization"]
    names = {n for g in ("f4.onnx", "f8.onnx") for n in _int8_weights(folded, g)}
    assert any(".conv_copy" in n for n in names)  # every norm went into a per-sub-network copy
    assert q["int8_tensors_stored"] < 0.75 * len(names)
    shared_bytes = (per_subnet / "weights.bin").stat().st_size
    assert (folded / "weights.bin").stat().st_size < 1.2 * shared_bytes
