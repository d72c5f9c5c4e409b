"""TensorRT step engines: built by ``ffn-export engines`` beside the clip engines, run with the shift buffers
in device memory (``steps_tensorrt``), against fakes of TensorRT 10.3 and 11.4 that answer only the names
the real bindings export (``trt_fakes``, names in ``tests/data/tensorrt_api.json``; no name was added for
this). The fake step engine computes shift_out = shift_in + mean(frame) and logits = mean(frame) + k +
sum(mean(shift_in)) in fake device memory, so a wrong buffer address or a missed swap changes the logits;
the fake cudart records every copy, so a buffer that visits the host fails the copy count.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import trt_fakes
from builders import CAUSAL_CLASSES, CAUSAL_FRAMES, CAUSAL_SIZE
from ffn_edge.export import export_bundle
from ffn_edge.export import tensorrt as export_trt
from ffn_edge.export.int8_config import Int8Options, QuantConfig
from ffn_edge.runtime import FFNRuntime
from ffn_edge.runtime.backends.steps import StepGraphs
from ffn_edge.runtime.backends.steps_tensorrt import TensorRTStepGraphs

from ffn_edge.bundle.manifest import load_manifest, write_manifest
from ffn_edge.core.errors import BundleError

K = len(CAUSAL_CLASSES)


@pytest.fixture
def bundle(causal_bundle, tmp_path) -> Path:
    out = tmp_path / "c.ffn"
    shutil.copytree(causal_bundle, out)
    return out


def _fake(monkeypatch, major: str) -> trt_fakes.FakeTensorRT:
    return trt_fakes.install(monkeypatch, major, trt_fakes.FakeCudart(), K)


def _frames(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, CAUSAL_SIZE, CAUSAL_SIZE)).astype(np.float32)


def _fake_reference(frames: np.ndarray, shapes: list[tuple[int, ...]]) -> np.ndarray:
    """What the fake step engine gives for ``frames`` from zero buffers, computed on the host."""
    level, out = [0.0] * len(shapes), []
    for f in frames:
        m = float(f.mean())
        out.append(m + np.arange(K) + sum(level))
        level = [x + m for x in level]
    return np.stack(out)


@pytest.mark.parametrize("major", trt_fakes.MAJORS)
def test_step_engines_are_built_beside_the_clip_engines(bundle, monkeypatch, major) -> None:
    _fake(monkeypatch, major)
    entry = export_trt.build_engines(bundle, fp16=True)
    m = load_manifest(bundle, verify=True)  # every engine file listed with its hash
    (engine_set,) = m.engine_sets
    assert sorted(engine_set.steps) == [g.subnet for g in m.step.graphs] and set(entry["files"]) <= set(m.files)
    for g in m.step.graphs:
        ref = engine_set.steps[g.subnet]
        plan = json.loads((bundle / ref.file).read_bytes())
        (profile,) = plan["profiles"]  # batch 1, the frame and every buffer at their own shapes
        assert profile[m.step.input_name] == [[1, 3, CAUSAL_SIZE, CAUSAL_SIZE]] * 3
        assert {n: p[0] for n, p in profile.items() if n != m.step.input_name} == {
            b.input: [1, *b.shape] for b in g.buffers}
        assert set(plan["flags"]) >= {"STRIP_PLAN", "REFIT_IDENTICAL"}
        if major == "10":
            assert "FP16" in plan["flags"] and ref.refit_from == g.file  # refitted from the bundle's step graph
        else:  # the fp16-typed copy, its weights in the one weights.fp16.bin of the engine set
            assert plan["dtype"] == "fp16" and ref.refit_from.endswith(f"{Path(g.file).stem}.fp16.onnx")


@pytest.mark.parametrize("major", trt_fakes.MAJORS)
def test_step_engines_keep_the_buffers_on_the_device(bundle, monkeypatch, major) -> None:
    trt = _fake(monkeypatch, major)
    export_trt.build_engines(bundle)
    m = load_manifest(bundle)
    steps = TensorRTStepGraphs(bundle, m)
    cudart = trt.cudart
    for g in m.step.graphs:
        frames = _frames(6, seed=g.subnet)
        state = steps.zero_state(g.subnet)
        copies, mallocs = len(cudart.copies), len(cudart.mallocs)
        got = []
        for f in frames:
            r = steps.run(f, g.subnet, state)
            state = r.state
            got.append(r.logits)
        np.testing.assert_allclose(np.stack(got), _fake_reference(frames, [b.shape for b in g.buffers]),
                                   rtol=1e-5, atol=1e-4)
        made = cudart.copies[copies:]
        kinds = cudart.cudaMemcpyKind
        # per step: the frame in, the logits out; never a buffer, never an allocation
        assert [(n, kd) for _, n, kd in made] == [(3 * CAUSAL_SIZE**2 * 4, kinds.cudaMemcpyHostToDevice),
                                                  (K * 4, kinds.cudaMemcpyDeviceToHost)] * len(frames)
        assert len(cudart.mallocs) == mallocs
    steps.close()


@pytest.mark.parametrize("major", trt_fakes.MAJORS)
def test_a_session_on_tensorrt_opens_tensorrt_step_graphs_and_frees_them(bundle, monkeypatch, major) -> None:
    trt = _fake(monkeypatch, major)
    export_trt.build_engines(bundle)
    rt = FFNRuntime(bundle, backend="tensorrt", threads=1)
    steps = rt.step_graphs()
    assert isinstance(steps, TensorRTStepGraphs) and steps.name.startswith("tensorrt[fp32]")
    zero = steps.zero_state(0)  # one allocation of two buffer sets, zeroed by one copy
    state = steps.run(_frames(1)[0], 0, zero).state
    assert len(trt.cudart.memory) > 0
    rt.close()
    assert trt.cudart.memory == {} and trt.cudart.host == {}  # the stream's buffers too
    del state, zero


def test_engines_without_step_engines_are_rebuilt_and_refused_until_then(bundle, monkeypatch) -> None:
    _fake(monkeypatch, "10")
    entry = export_trt.build_engines(bundle)
    m = load_manifest(bundle)
    key = next(iter(m.extra["engines"]))
    old = {k: v for k, v in entry.items() if k != "steps"}  # as written before step engines existed
    write_manifest(bundle, dataclasses.replace(m, extra={**m.extra, "engines": {key: old}}))
    with pytest.raises(BundleError, match=r"no step engine for sub-network\(s\) \[0, 1\].*--rebuild"):
        TensorRTStepGraphs(bundle, load_manifest(bundle))
    assert export_trt.build_engines(bundle)["steps"]  # a cached set without step engines is rebuilt
    TensorRTStepGraphs(bundle, load_manifest(bundle)).close()


@pytest.mark.slow
@pytest.mark.parametrize("major", trt_fakes.MAJORS)
def test_int8_step_engines_come_from_the_qdq_step_graphs(causal_ckpt_and_bundle, tmp_path, monkeypatch, major):
    ckpt = causal_ckpt_and_bundle[0]
    opts = Int8Options(calib_clips=2, config=QuantConfig(activations="s8"), min_agreement=0.0)
    bundle = export_bundle(ckpt, CAUSAL_FRAMES, tmp_path / "s8.ffn", verify=False, int8=opts)
    _fake(monkeypatch, major)
    entry = export_trt.build_engines(bundle)
    assert entry["precision"] == "int8" and set(entry["steps"]) == {"0", "1"}
    for ref in entry["steps"].values():
        plan = json.loads((bundle / ref["file"]).read_bytes())
        assert plan["dtype"] == "int8" and Path(plan["graph"]).name.startswith("step_subnet")
        assert not {"STRIP_PLAN", "FP16"} & set(plan["flags"]) and ("INT8" in plan["flags"]) == (major == "10")
    steps = TensorRTStepGraphs(bundle, load_manifest(bundle))
    assert steps.name.startswith("tensorrt[int8]")
    frames = _frames(3)
    state, got = steps.zero_state(1), []
    for f in frames:
        r = steps.run(f, 1, state)
        state = r.state
        got.append(r.logits)
    g = load_manifest(bundle).step.for_subnet(1)
    np.testing.assert_allclose(np.stack(got), _fake_reference(frames, [b.shape for b in g.buffers]), atol=1e-4)
    steps.close()


@pytest.mark.gpu
@pytest.mark.parametrize("fp16", [False, True])
def test_real_tensorrt_step_engines_match_onnxruntime(bundle, fp16) -> None:
    """Real TensorRT: step engines built here give the CPU step graphs' logits, frame after frame."""
    if export_trt.gpu_name() is None:
        pytest.skip("no cuda-python / CUDA GPU")
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        pytest.skip("TensorRT is not installed")
    entry = export_trt.build_engines(bundle, fp16=fp16)
    m = load_manifest(bundle, verify=True)
    steps, host = TensorRTStepGraphs(bundle, m, precision=entry["precision"]), StepGraphs(bundle, m, 1)
    for k in host.subnets:
        frames = _frames(8, seed=k)
        s1, s2 = steps.zero_state(k), host.zero_state(k)
        for f in frames:
            a, b = steps.run(f, k, s1), host.run(f, k, s2)
            s1, s2 = a.state, b.state
            assert a.logits.argmax() == b.logits.argmax()
            assert np.abs(a.logits - b.logits).max() < (5e-2 if fp16 else 1e-3) * max(1.0, np.abs(b.logits).max())
    steps.close()


def test_ffn_export_engines_lists_the_step_engines(bundle, monkeypatch, capsys) -> None:
    from ffn_edge.export import cli as export_cli

    _fake(monkeypatch, "11")
    assert export_cli._engines(["--bundle", str(bundle)]) == 0
    out = capsys.readouterr().out
    assert "step graph of sub-network 0: engines/" in out and "step graph of sub-network 1: engines/" in out
