"""INT8 step graphs of a causal checkpoint: quantized beside the clip graphs, weights stored once, checked
against the INT8 clip graph, recorded in the manifest's step section, run by the runtime on ORT CPU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from builders import CAUSAL_CLASSES, CAUSAL_FRAMES, CAUSAL_SIZE, STRONG, save_tiny_checkpoint
from ffn_edge.export import export_bundle
from ffn_edge.export.errors import ExportError
from ffn_edge.export.int8_config import Int8Options, QuantConfig
from ffn_edge.export.int8_step import StepAgreement
from ffn_edge.export.verify import resample, synthetic_clips
from ffn_edge.runtime import FFNRuntime
from onnx.external_data_helper import ExternalDataInfo, uses_external_data

from ffn_edge.bundle.manifest import load_manifest
from ffn_edge.bundle.sections import parse_step
from ffn_edge.core.errors import BundleError

OPTS = Int8Options(calib_clips=4, config=QuantConfig(layout="shared"), min_agreement=0.0)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("int8step")
    return save_tiny_checkpoint(d / "c.safetensors", "tsm_resnet18", CAUSAL_CLASSES, CAUSAL_FRAMES, 0.125,
                                CAUSAL_SIZE, CAUSAL_SIZE, shift="causal", perturb=STRONG)


@pytest.fixture(scope="module")
def bundle(ckpt) -> Path:
    return export_bundle(ckpt, CAUSAL_FRAMES, ckpt.parent / "c8.ffn", int8=OPTS, verify=True, n_verify=4)


def _int8_ranges(bundle: Path, file: str) -> dict[str, tuple[int, int]]:
    proto = onnx.load(str(bundle / file), load_external_data=False)
    out = {}
    for t in proto.graph.initializer:
        if t.data_type == onnx.TensorProto.INT8 and uses_external_data(t):
            info = ExternalDataInfo(t)
            out[t.name] = (int(info.offset or 0), int(info.length))
    return out


def test_int8_step_graphs_are_qdq_and_store_no_weight_twice(bundle) -> None:
    m = load_manifest(bundle, verify=True)
    assert m.precision == "int8" and m.step is not None and m.step.precision == "int8"
    clip_ranges = {r for g in m.graphs for r in _int8_ranges(bundle, g.file).values()}
    for g in m.step.graphs:
        proto = onnx.load(str(bundle / g.file), load_external_data=False)
        assert any(n.op_type == "DequantizeLinear" for n in proto.graph.node)
        ranges = _int8_ranges(bundle, g.file)
        assert ranges, f"{g.file} has no INT8 weight in weights.bin"
        # every INT8 weight of a step graph is a range a clip graph already uses: nothing new was stored
        assert set(ranges.values()) <= clip_ranges, f"{g.file} stores INT8 weights of its own"
        assert not [t.name for t in proto.graph.initializer
                    if t.data_type == onnx.TensorProto.INT8 and not uses_external_data(t) and len(t.raw_data) >= 64]


def test_int8_step_agreement_with_the_int8_clip_graph_is_recorded_and_true(bundle) -> None:
    """The recorded check is what the runtime computes: n steps from zero buffers vs the INT8 clip graph."""
    m = load_manifest(bundle)
    rec = m.extra["quantization"]["step_agreement"]
    assert set(rec["graphs"]) == {g.file for g in m.step.graphs}
    clips = synthetic_clips(4, max(CAUSAL_FRAMES), CAUSAL_SIZE, m.input.resize_shorter, m.input.mean, m.input.std)
    with FFNRuntime(bundle, backend="ort-cpu", threads=1) as rt:
        steps = rt.step_graphs()
        for g in m.step.graphs:
            n = m.subnet_frame_counts[g.subnet]
            got = rec["graphs"][g.file]
            assert got["frames"] == n and got["clips"] == 4
            picked = resample(clips, n)
            ref = np.concatenate([rt._backend.run(n, c[None]) for c in picked])
            out = []
            for clip in picked:
                state, logits = steps.zero_state(g.subnet), []
                for frame in clip:
                    r = steps.run(frame, g.subnet, state)
                    state = r.state
                    logits.append(r.logits)
                out.append(np.mean(logits, axis=0))
            diff = float(np.abs(np.stack(out) - ref).max())
            # INT8 step and clip graphs quantize the same activations with ranges from the same frames:
            # stated tolerance 0.05 logits, top-1 equal on every clip (tiny model, 4 clips)
            assert diff <= 0.05 and (np.stack(out).argmax(1) == ref.argmax(1)).all()
            assert got["top1_agreement"] == 1.0 and got["max_abs_diff"] <= 0.05


def test_fp32_step_parity_still_runs_before_quantization(bundle) -> None:
    checks = load_manifest(bundle).extra["verification"]["graphs"]
    for k in range(len(CAUSAL_FRAMES)):
        assert checks[f"step_subnet{k}"]["max_abs_diff"] <= 1e-4 and checks[f"step_subnet{k}"]["top1_equal"]


def test_a_step_graph_below_the_minimum_agreement_is_refused(ckpt, tmp_path, monkeypatch) -> None:
    from ffn_edge.export import int8

    monkeypatch.setattr(int8, "step_agreement", lambda *a: StepAgreement(2, 4, 0.25, 3.0))
    opts = Int8Options(calib_clips=2, config=QuantConfig(layout="shared"), min_agreement=0.5)
    with pytest.raises(ExportError, match="INT8 step check failed for step_subnet0.onnx.*25% of 4 clips"):
        export_bundle(ckpt, CAUSAL_FRAMES, tmp_path / "low.ffn", int8=opts, verify=True, n_verify=4)
    assert not (tmp_path / "low.ffn").exists()


def test_step_section_precision_defaults_to_fp32_and_must_match_the_bundle(causal_bundle) -> None:
    m = json.loads((causal_bundle / "manifest.json").read_text())
    extra, cfg, counts = m["extra"], m["model_config"], tuple(m["subnet_frame_counts"])
    assert extra["step"]["precision"] == "fp32"
    older = {**extra, "step": {k: v for k, v in extra["step"].items() if k != "precision"}}
    assert parse_step(older, cfg, counts).precision == "fp32"  # bundles written before the field
    with pytest.raises(BundleError, match="precision int8 in a bundle whose precision is fp32"):
        parse_step({**extra, "step": {**extra["step"], "precision": "int8"}}, cfg, counts)
    with pytest.raises(BundleError, match="precision must be one of"):
        parse_step({**extra, "step": {**extra["step"], "precision": "int4"}}, cfg, counts)


def test_int8_step_graphs_name_their_sub_network(bundle) -> None:
    from ffn_edge.bundle.sections import STEP_SUBNET_META

    for g in load_manifest(bundle).step.graphs:  # quantization rewrites the graphs; the name must survive it
        props = {p.key: p.value for p in onnx.load(str(bundle / g.file), load_external_data=False).metadata_props}
        assert props.get(STEP_SUBNET_META) == str(g.subnet)
