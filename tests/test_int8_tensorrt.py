"""INT8 bundles on TensorRT: explicit-quantization engines from the QDQ graphs (s8 activations only).

No GPU here: the real build and load code runs against the TensorRT 10.3 / 11.4 fakes (``trt_fakes``,
names checked against ``tests/data/tensorrt_api.json``) on a real INT8 bundle. On a real TensorRT this
path is unrun.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import trt_fakes
from builders import INT8_CLASSES, INT8_FRAMES, INT8_SIZE
from ffn_edge.export import export_bundle
from ffn_edge.export import tensorrt as export_trt
from ffn_edge.export.errors import ExportError
from ffn_edge.export.int8_config import Int8Options, QuantConfig
from ffn_edge.runtime.backends.select import open_backend
from ffn_edge.runtime.backends.tensorrt import TensorRTBackend

from ffn_edge.bundle.manifest import load_manifest
from ffn_edge.core.errors import ConfigError

CLASSES = INT8_CLASSES


@pytest.fixture(scope="module")
def s8(int8_ckpt, tmp_path_factory) -> Path:
    """The session's INT8 checkpoint with s8 activations, the kind TensorRT builds."""
    opts = Int8Options(calib_clips=2, config=QuantConfig(activations="s8"), min_agreement=0.0)
    return Path(export_bundle(int8_ckpt, INT8_FRAMES, tmp_path_factory.mktemp("s8") / "s8.ffn", verify=False,
                              int8=opts))


@pytest.mark.parametrize("major", trt_fakes.MAJORS)
@pytest.mark.slow
def test_int8_engines_come_from_the_qdq_graphs_unstripped_with_the_int8_flag_where_it_exists(s8, tmp_path,
                                                                                               monkeypatch, major):
    bundle = tmp_path / "b.ffn"
    shutil.copytree(s8, bundle)
    trt = trt_fakes.install(monkeypatch, major, trt_fakes.FakeCudart(), len(CLASSES))
    entry = export_trt.build_engines(bundle)
    assert entry["precision"] == "int8" and entry["stripped"] is False
    plan = json.loads((bundle / entry["engines"]["8"]["file"]).read_bytes())
    assert plan["dtype"] == "int8" and plan["graph"].endswith("f8.onnx")  # built from the bundle's QDQ graph
    assert not {"STRIP_PLAN", "REFIT_IDENTICAL", "FP16"} & set(plan["flags"])
    assert ("INT8" in plan["flags"]) == (major == "10")  # TensorRT 10: weakly typed, INT8 kernels need the flag
    m = load_manifest(bundle, verify=True)
    backend = TensorRTBackend(bundle, m)
    assert backend.name == "tensorrt[int8]"
    clip = np.random.default_rng(0).standard_normal((2, 8, 3, INT8_SIZE, INT8_SIZE)).astype(np.float32)
    np.testing.assert_allclose(backend.run(8, clip), clip.reshape(2, -1).mean(1)[:, None] + np.arange(5), rtol=1e-5,
                               atol=1e-6)
    assert all(c._engine._refitted_from is None for c in trt.contexts)  # not stripped: nothing to refit
    backend.close()
    with pytest.raises(ExportError, match="--fp16 does not apply to an INT8 bundle"):
        export_trt.build_engines(bundle, fp16=True, rebuild=True)


def test_uint8_activation_bundles_are_refused_by_both_tensorrt_paths(int8_bundle, private_copy, monkeypatch):
    u8 = private_copy(int8_bundle)  # the session's INT8 bundle has ONNX Runtime's default, u8 activations
    assert load_manifest(u8).extra["quantization"]["activations"] == "u8"
    trt_fakes.install(monkeypatch, "10", trt_fakes.FakeCudart(), len(CLASSES))
    with pytest.raises(ExportError, match="--int8-activations s8"):
        export_trt.build_engines(u8)
    with pytest.raises(ConfigError, match="--int8-activations s8"):  # ORT's TensorRT EP, named explicitly
        open_backend(u8, load_manifest(u8), backend="ort-tensorrt")


@pytest.mark.parametrize("int8", [True, False])
def test_ort_tensorrt_ep_runs_int8_bundles_with_its_int8_option(s8, tmp_path, monkeypatch, int8):
    from ffn_edge.runtime.backends import select as backends

    bundle = tmp_path / "b.ffn"
    shutil.copytree(s8, bundle)
    m = load_manifest(bundle)
    if not int8:
        import dataclasses

        m = dataclasses.replace(m, extra={k: v for k, v in m.extra.items() if k not in ("quantization", "precision")})
        assert m.quantization is None
    seen = {}
    ort = type("FakeOrt", (), {"get_available_providers": staticmethod(lambda: [backends.TRT_EP, backends.CPU_EP])})
    monkeypatch.setattr(backends, "import_onnxruntime", lambda: ort)
    monkeypatch.setattr(backends, "OrtBackend", lambda b, man, providers, *a: seen.setdefault("providers", providers))
    backends._open_one("ort-tensorrt", bundle, m, 0, None, True, None)
    options = seen["providers"][0][1]
    assert options["trt_int8_enable"] == str(int8) and options["trt_fp16_enable"] == "False"
