"""The TensorRT path (build with ffn-export engines, run with --backend tensorrt) against both majors.

Without a GPU: the real code runs against fakes of TensorRT 10.3 and 11.4 that answer only the
names the real bindings export (``trt_fakes``), on a real exported bundle. With a GPU (``-m gpu``,
``./run.sh test-gpu``): the same on the real TensorRT, checked against ONNX Runtime on the CPU.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import trt_fakes
from ffn_edge.export import tensorrt as export_trt
from ffn_edge.runtime import FFNRuntime
from ffn_edge.runtime.backends import trt_engine as trt_mod
from ffn_edge.runtime.backends.select import open_backend
from ffn_edge.runtime.backends.tensorrt import TensorRTBackend

from ffn_edge.bundle.manifest import load_manifest, write_manifest
from ffn_edge.core.errors import ConfigError

FRAMES = (4, 8)
CLASSES = ["wave", "clap", "jump", "sit", "run"]


@pytest.fixture(scope="module")
def exported(tiny_bundle) -> Path:
    return tiny_bundle


@pytest.fixture
def bundle(exported, tmp_path) -> Path:
    out = tmp_path / "b.ffn"
    shutil.copytree(exported, out)
    return out


def _fake(monkeypatch, major: str, **cudart_kw) -> trt_fakes.FakeTensorRT:
    return trt_fakes.install(monkeypatch, major, trt_fakes.FakeCudart(**cudart_kw), len(CLASSES))


def _plan(bundle: Path, entry: dict, frames: int) -> dict:
    import json

    return json.loads((bundle / entry["engines"][str(frames)]["file"]).read_bytes())


@pytest.mark.parametrize("major", trt_fakes.MAJORS)
def test_fp16_engines_build_and_refit_on_both_majors(bundle, monkeypatch, major):
    trt = _fake(monkeypatch, major)
    entry = export_trt.build_engines(bundle, fp16=True)
    plan = _plan(bundle, entry, 8)
    assert set(plan["flags"]) >= {"STRIP_PLAN", "REFIT_IDENTICAL"}
    if major == "10":  # weakly typed: the builder flag, the fp32 graph, refit from weights.bin
        assert "FP16" in plan["flags"] and plan["dtype"] == "fp32" and entry["extra_bytes"] == 0
        assert entry["engines"]["8"]["refit_from"] == "f8.onnx"
    else:  # strongly typed: an fp16-typed graph whose weights are in ONE extra file for all sub-networks
        assert plan["dtype"] == "fp16"
        fp16_weights = bundle / entry["timing_cache"].replace("timing.cache", export_trt.FP16_WEIGHTS)
        assert fp16_weights.stat().st_size < 0.6 * (bundle / "weights.bin").stat().st_size
        assert entry["extra_bytes"] > fp16_weights.stat().st_size
        refit = bundle / entry["engines"]["8"]["refit_from"]
        g = onnx.load(str(refit), load_external_data=False)
        assert g.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # fp32 in and out
        assert g.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    m = load_manifest(bundle, verify=True)  # every new file is listed with its hash
    assert set(entry["files"]) <= set(m.files)
    backend = TensorRTBackend(bundle, m)
    assert backend.name == "tensorrt[fp16]" and backend.frame_counts == FRAMES
    clip = np.random.default_rng(0).standard_normal((2, 8, 3, 64, 64)).astype(np.float32)
    out = backend.run(8, clip)
    np.testing.assert_allclose(out, clip.reshape(2, -1).mean(1)[:, None] + np.arange(5), rtol=1e-5, atol=1e-6)
    assert trt.contexts and all(c._engine._refitted_from for c in trt.contexts)
    backend.close()


def test_fp16_typed_graphs_keep_top1_and_logits_close_on_onnxruntime(bundle):
    """The TensorRT 11 fp16 graphs are real ONNX: ORT's CPU EP runs them next to the fp32 ones."""
    import onnxruntime as ort

    m = load_manifest(bundle)
    fp16 = export_trt.write_fp16_graphs(bundle, m, bundle / "engines" / "x")
    clip = np.random.default_rng(1).standard_normal((1, 8, 3, 64, 64)).astype(np.float32)
    ref = ort.InferenceSession(str(bundle / "f8.onnx"), providers=["CPUExecutionProvider"])
    half = ort.InferenceSession(str(fp16["f8.onnx"]), providers=["CPUExecutionProvider"])
    want, got = (s.run(None, {m.input.name: clip})[0] for s in (ref, half))
    assert got.dtype == np.float32 and got.argmax() == want.argmax()
    assert np.abs(got - want).max() < 1e-2 * max(1.0, np.abs(want).max())


@pytest.mark.parametrize("major", trt_fakes.MAJORS)
def test_contexts_share_one_activation_buffer_and_allocate_statically(bundle, monkeypatch, major):
    trt = _fake(monkeypatch, major)
    export_trt.build_engines(bundle, max_batch=8)
    backend = TensorRTBackend(bundle, load_manifest(bundle))
    strategy = trt.ExecutionContextAllocationStrategy.USER_MANAGED
    assert [c._strategy for c in trt.contexts] == [strategy, strategy]
    memories = {c._memory for c in trt.contexts}
    assert len(memories) == 1  # one buffer for every sub-network, sized to the largest need
    assert next(iter(memories))[1] == max(c._engine.device_memory_size_v2 for c in trt.contexts)
    in_ptrs = {c._addresses["clip"] for c in trt.contexts} if "clip" in trt.contexts[0]._addresses else None
    assert in_ptrs is None or len(in_ptrs) == 1
    mallocs = list(trt.cudart.mallocs)
    clip = np.ones((8, 8, 3, 64, 64), np.float32)
    backend.run(8, clip)
    backend.run(4, clip[:1, :4])
    assert trt.cudart.mallocs == mallocs  # nothing allocated per run; batch 8 x 8 frames fits
    assert max(mallocs) >= clip.nbytes
    with pytest.raises(ValueError, match="1..8 clips"):
        backend.run(8, np.ones((9, 8, 3, 64, 64), np.float32))
    backend.close()
    assert trt.cudart.memory == {}


@pytest.mark.parametrize("major", trt_fakes.MAJORS)
def test_dynamic_frame_graphs_accept_every_count_routed_to_them(bundle, monkeypatch, major):
    m = load_manifest(bundle)
    write_manifest(bundle, dataclasses.replace(m, graphs=tuple(dataclasses.replace(g, dynamic_frames=True)
                                                              for g in m.graphs)))
    trt = _fake(monkeypatch, major)
    entry = export_trt.build_engines(bundle)
    assert (entry["engines"]["4"]["t_min"], entry["engines"]["4"]["t_max"]) == (1, 5)
    assert (entry["engines"]["8"]["t_min"], entry["engines"]["8"]["t_max"]) == (6, 8)  # 6: tie -> higher
    backend = TensorRTBackend(bundle, load_manifest(bundle))
    assert backend.frame_ranges == {4: (1, 5), 8: (6, 8)}
    for frames, t in ((4, 1), (4, 5), (8, 6), (8, 7), (8, 8)):
        clip = np.full((1, t, 3, 64, 64), t, np.float32)
        assert backend.run(frames, clip)[0, 0] == pytest.approx(t)
    with pytest.raises(ValueError, match="6..8 frames"):
        backend.run(8, np.ones((1, 5, 3, 64, 64), np.float32))
    assert len(trt.contexts) == 2
    backend.close()


def test_engines_built_and_loaded_under_the_same_cudart_name(bundle, monkeypatch):
    _fake(monkeypatch, "10", gpu=b"Orin\0\0")
    entry = export_trt.build_engines(bundle)
    assert entry["gpu"] == "Orin" and export_trt.gpu_name() == "Orin"
    assert TensorRTBackend(bundle, load_manifest(bundle)).name == "tensorrt[fp32]"


def test_building_without_cuda_python_says_what_to_install(bundle, monkeypatch):
    trt_fakes.install(monkeypatch, "10", trt_fakes.FakeCudart(), 5)
    for name in ("cuda", "cuda.bindings", "cuda.bindings.runtime", "cuda.cudart"):
        monkeypatch.setitem(sys.modules, name, None)  # import raises ImportError
    monkeypatch.setattr(shutil, "which", lambda _: "/usr/bin/nvidia-smi")  # an nvidia-smi is no substitute
    with pytest.raises(ConfigError, match=r"bindings are not installed: pip install 'cuda-bindings>=13,<14'"):
        export_trt.build_engines(bundle)


@pytest.mark.parametrize("version,ok", [("10.3.0", True), ("10.16.1.11", True), ("11.4.0.106", True),
                                        ("10.0.1", False), ("8.6.1", False), ("12.0.0", False)])
def test_supported_tensorrt_versions(version, ok):
    if ok:
        assert trt_mod.check_version(version) in trt_mod.SUPPORTED_MAJORS
    else:
        with pytest.raises(ConfigError, match="not supported"):
            trt_mod.check_version(version)


@pytest.mark.parametrize("failure", ["cudaSetDevice", "cudaGetDeviceCount", "oom"])
def test_auto_falls_back_when_tensorrt_cannot_start_and_explicit_fails_in_one_line(bundle, monkeypatch, caplog,
                                                                                   failure):
    trt = _fake(monkeypatch, "10")
    export_trt.build_engines(bundle)
    monkeypatch.setattr(trt.cudart, "_fail", None if failure == "oom" else failure)
    trt.oom = failure == "oom"
    m = load_manifest(bundle)
    with caplog.at_level(logging.WARNING, logger="ffn_edge.runtime"):
        backend = open_backend(bundle, m, "auto", threads=1)
    assert backend.name == "onnxruntime[CPUExecutionProvider]"
    lines = [r.getMessage() for r in caplog.records if "cannot start" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith("backend tensorrt cannot start here") and "\n" not in lines[0]
    backend.close()
    with pytest.raises(ConfigError) as e:
        open_backend(bundle, m, "tensorrt")
    assert str(e.value).startswith("backend 'tensorrt' cannot start: ") and "\n" not in str(e.value)


# ------------------------------------------------------------------------------------------------
# On a real GPU (skipped without one): ./run.sh test-gpu


def _real_gpu() -> None:
    pytest.importorskip("tensorrt")
    if export_trt.gpu_name() is None:
        pytest.skip("no CUDA GPU")


@pytest.mark.gpu
@pytest.mark.parametrize("fp16", [False, True])
def test_real_tensorrt_engines_match_onnxruntime(bundle, fp16):
    _real_gpu()
    import onnxruntime as ort

    entry = export_trt.build_engines(bundle, fp16=fp16)
    m = load_manifest(bundle, verify=True)
    backend = TensorRTBackend(bundle, m, precision=entry["precision"])
    clip = np.random.default_rng(2).standard_normal((1, 8, 3, 64, 64)).astype(np.float32)
    want = ort.InferenceSession(str(bundle / "f8.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {m.input.name: clip})[0]
    got = backend.run(8, clip)
    assert got.argmax() == want.argmax()
    assert np.abs(got - want).max() < (5e-2 if fp16 else 1e-3) * max(1.0, np.abs(want).max())
    backend.close()


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["ort-cuda", "ort-tensorrt", "ort-tensorrt-fp16"])
def test_real_ort_gpu_backends_run_on_the_gpu(bundle, name):
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers() or export_trt.gpu_name() is None:
        pytest.skip("no onnxruntime-gpu / CUDA GPU")
    m = load_manifest(bundle)
    backend = open_backend(bundle, m, name)
    assert backend.name != "onnxruntime[CPUExecutionProvider]"
    assert backend.run(4, np.zeros((1, 4, 3, 64, 64), np.float32)).shape == (1, len(CLASSES))
    backend.close()


def test_fixture_names_match_an_installed_tensorrt_and_cuda_python():
    """Where the real bindings import (a GPU machine, a Jetson), the fixture must describe them."""
    checked = 0
    try:
        import tensorrt as trt
    except Exception:  # not installed, or libnvinfer missing
        trt = None
    if trt is not None:
        api = trt_fakes.API["majors"][trt.__version__.split(".")[0]]
        for enum in ("BuilderFlag", "NetworkDefinitionCreationFlag", "ExecutionContextAllocationStrategy"):
            assert all(hasattr(getattr(trt, enum), n) for n in api[enum]), enum
        assert hasattr(trt.BuilderFlag, "FP16") == ("FP16" in api["BuilderFlag"])
        checked += 1
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        cudart = None
    if cudart is not None:
        assert all(hasattr(cudart, n) for n in trt_fakes.API["cudart"]["functions"])
        checked += 1
    if not checked:
        pytest.skip("neither tensorrt nor cuda-python is installed here")


def test_session_routes_dynamic_counts_within_the_engine_range(bundle, monkeypatch):
    """A dynamic graph serves any T on ORT, but a TensorRT engine only its profile's range: route clamps."""
    m = load_manifest(bundle)
    write_manifest(bundle, dataclasses.replace(m, graphs=tuple(dataclasses.replace(g, dynamic_frames=True)
                                                              for g in m.graphs)))
    _fake(monkeypatch, trt_fakes.MAJORS[-1])
    export_trt.build_engines(bundle)
    with FFNRuntime.open(bundle, backend="tensorrt") as rt:
        assert rt.route(7)[1] == 7  # inside the 8-frame engine's range (6..8)
        assert rt.route(20)[1] == 8  # past the largest sub-network: its engine's maximum, not a failure
        p = rt.predict(np.zeros((30, 64, 64, 3), np.uint8), n=20)
        assert p.frames == 8


def test_engines_are_built_on_the_device_they_are_named_after(bundle, monkeypatch):
    trt = trt_fakes.install(monkeypatch, trt_fakes.MAJORS[0], trt_fakes.FakeCudart(devices=2), len(CLASSES))
    calls: list[object] = []
    set_device, builder = trt.cudart.cudaSetDevice, trt.Builder
    monkeypatch.setattr(trt.cudart, "cudaSetDevice", lambda d: (calls.append(("cudaSetDevice", d)), set_device(d))[1])
    monkeypatch.setattr(trt, "Builder", lambda logger: (calls.append("Builder"), builder(logger))[1])
    export_trt.build_engines(bundle, device=1)
    assert calls[0] == ("cudaSetDevice", 1) and "Builder" in calls


def test_ffn_export_engines_takes_the_device(bundle, monkeypatch):
    from ffn_edge.export import cli as export_cli

    seen = {}
    monkeypatch.setattr(export_trt, "build_engines", lambda b, **kw: (seen.update(kw), {"engines": {}})[1])
    assert export_cli._engines(["--bundle", str(bundle), "--device", "1"]) == 0
    assert seen["device"] == 1
    with pytest.raises(ConfigError, match="--device >= 0"):
        export_cli._engines(["--bundle", str(bundle), "--device", "-1"])


@pytest.mark.parametrize("major", trt_fakes.MAJORS)
def test_every_copy_goes_through_pinned_host_buffers_freed_at_close(bundle, monkeypatch, major):
    trt = _fake(monkeypatch, major)
    export_trt.build_engines(bundle)
    backend = TensorRTBackend(bundle, load_manifest(bundle))
    clip = np.random.default_rng(1).standard_normal((2, 8, 3, 64, 64))  # float64: converted on the way in
    first = backend.run(8, clip)
    second = backend.run(8, clip[:1] + 1.0)
    np.testing.assert_allclose(first, clip.reshape(2, -1).mean(1)[:, None] + np.arange(len(CLASSES)), rtol=1e-5)
    assert first.shape == (2, len(CLASSES)) and second.shape == (1, len(CLASSES))  # not overwritten by the 2nd run
    pinned = dict(trt.cudart.host)
    assert len(pinned) == 2 and trt.cudart.copies
    for address, nbytes, _ in trt.cudart.copies:  # inside one of the pinned buffers
        assert any(p <= address and address + nbytes <= p + len(buf) for p, buf in pinned.items())
    backend.close()
    assert trt.cudart.host == {}
