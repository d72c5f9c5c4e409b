"""Step graphs of causal checkpoints: one frame at a time with explicit shift buffers, same weight file.

Tiny models at 64 px (TSM-ResNet-18 and TSM-MobileNetV2), sub-networks perturbed so that they differ.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from ffn_edge.export import export_bundle
from ffn_edge.export.fold import is_conv_copy, is_per_subnet
from ffn_edge.export.step import StepGraph, run_frames
from ffn_edge.export.verify import synthetic_clips
from onnx.external_data_helper import ExternalDataInfo, uses_external_data

from ffn_edge.bundle.manifest import MANIFEST_NAME, load_manifest, seal
from ffn_edge.checkpoint import CheckpointMeta, save_checkpoint
from ffn_edge.core.errors import BundleError
from ffn_edge.models import ModelConfig, create_model, perturb_like_trained

torch.set_num_threads(2)
SIZE = 64
WIDTH = {"tsm_resnet18": 0.25, "tsm_mobilenetv2": 0.35}
# perturbation: at 0.05 an untrained MobileNetV2 barely depends on its input; at 0.1 ResNet-18's logits grow
# so large that fp32 rounding alone passes the 1e-4 parity limit
STD = {"tsm_resnet18": 0.05, "tsm_mobilenetv2": 0.1}


def _export(root: Path, arch: str, shift: str) -> tuple[torch.nn.Module, Path]:
    cfg = ModelConfig(arch, 5, width_mult=WIDTH[arch], shift=shift)
    model = create_model(cfg).eval()
    perturb_like_trained(model, weight_std=STD[arch], var_spread=1.5)
    save_checkpoint(root / f"{shift}.safetensors", model,
                    CheckpointMeta(cfg, list("abcde"), input_size=SIZE, resize_shorter=72))
    return model, export_bundle(root / f"{shift}.safetensors", [4, 8, 16], root / f"{arch}_{shift}.ffn")


@pytest.fixture(scope="module", params=sorted(WIDTH))
def causal(request, tmp_path_factory):
    return _export(tmp_path_factory.mktemp(request.param), request.param, "causal")


def _sess(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.slow
def test_every_subnet_steps_to_the_clip_graph(causal) -> None:
    """n frames one by one from zero buffers, per-frame logits averaged == the causal clip graph (ORT both)."""
    model, bundle = causal
    m = load_manifest(bundle)
    step = m.step
    assert step is not None and [g.subnet for g in step.graphs] == [0, 1, 2]
    for g in m.graphs:  # f4, f8, f16: sub-networks 0, 1, 2 at their own frame counts
        clips = synthetic_clips(2, g.frames, SIZE, m.input.resize_shorter, m.input.mean, m.input.std, seed=g.frames)
        want = _sess(bundle / g.file).run([m.output_name], {m.input.name: clips})[0]
        sg = step.for_subnet(g.subnet)
        got = np.stack([run_frames(_sess(bundle / sg.file), list(sg.buffers), c).mean(axis=0) for c in clips])
        diff = float(np.abs(got - want).max())
        print(f"{m.arch} subnet {g.subnet} ({g.frames} frames): max |dlogit| {diff:.2e}")
        assert diff <= 1e-4, (g.subnet, diff)
        assert (got.argmax(1) == want.argmax(1)).all()
        assert m.extra["verification"]["graphs"][f"step_subnet{g.subnet}"]["max_abs_diff"] <= 1e-4
    # the sub-networks differ: stepping the wrong one would have been caught
    clips = synthetic_clips(1, 8, SIZE, m.input.resize_shorter, m.input.mean, m.input.std)
    wrong = run_frames(_sess(bundle / step.for_subnet(0).file), list(step.for_subnet(0).buffers), clips[0]).mean(0)
    right = _sess(bundle / m.graph_for(8).file).run(None, {m.input.name: clips})[0][0]
    assert np.abs(wrong - right).max() > 1e-3


@pytest.mark.slow
def test_step_graph_is_causal_and_batches(causal) -> None:
    """Frame t's logits do not depend on later frames; a batch of two streams steps like each alone."""
    model, bundle = causal
    m = load_manifest(bundle)
    sg = m.step.for_subnet(1)
    sess = _sess(bundle / sg.file)
    clip = synthetic_clips(2, 8, SIZE, m.input.resize_shorter, m.input.mean, m.input.std)
    later = clip[0].copy()
    later[5:] = clip[1][5:]
    a, b = run_frames(sess, list(sg.buffers), clip[0]), run_frames(sess, list(sg.buffers), later)
    assert np.array_equal(a[:5], b[:5]) and np.abs(a[5:] - b[5:]).max() > 1e-5 * np.abs(a).max()
    state = {x.input: np.zeros((2, *x.shape), np.float32) for x in sg.buffers}
    for t in range(3):
        out = sess.run([m.output_name, *(x.output for x in sg.buffers)], {m.step.input_name: clip[:, t], **state})
        state = {x.input: o for x, o in zip(sg.buffers, out[1:], strict=True)}
    alone = run_frames(sess, list(sg.buffers), clip[1][:3])
    np.testing.assert_allclose(out[0][1], alone[2], atol=1e-5)


@pytest.mark.slow
def test_step_graphs_share_the_weight_file(causal, tmp_path) -> None:
    """Step graphs hold no tensor of their own: weights and per-sub-network constants are stored once."""
    model, bundle = causal
    m = load_manifest(bundle, verify=True)
    step = m.step
    assert set(m.files) == {m.weights_file, *(g.file for g in m.graphs), *(g.file for g in step.graphs)}
    for g in step.graphs:
        proto = onnx.load(str(bundle / g.file), load_external_data=False)
        assert [i.name for i in proto.graph.input] == [step.input_name, *(b.input for b in g.buffers)]
        assert [o.name for o in proto.graph.output] == [step.output_name, *(b.output for b in g.buffers)]
        assert any(uses_external_data(t) for t in proto.graph.initializer)
        for t in proto.graph.initializer:  # as in the clip graphs: per-sub-network constants and tiny shapes only
            assert uses_external_data(t) or is_per_subnet(t.name) or len(t.raw_data) < 64, t.name
    cfg = ModelConfig(m.arch, 5, width_mult=WIDTH[m.arch])  # same weights, bidirectional
    both = create_model(cfg).eval()
    both.load_state_dict(model.state_dict())
    save_checkpoint(tmp_path / "b.safetensors", both, CheckpointMeta(cfg, list("abcde"), input_size=SIZE,
                                                                     resize_shorter=72))
    plain = export_bundle(tmp_path / "b.safetensors", [4, 8, 16], tmp_path / "b.ffn", verify=False)
    assert load_manifest(plain).step is None  # bidirectional: no step graphs
    assert not list(plain.glob("step_*"))
    size = {b: sum(p.stat().st_size for p in b.iterdir()) for b in (bundle, plain)}
    steps = sum((bundle / g.file).stat().st_size for g in step.graphs)
    inline = sum(len(t.raw_data) for g in step.graphs
                 for t in onnx.load(str(bundle / g.file), load_external_data=False).graph.initializer
                 if not uses_external_data(t))
    print(f"{m.arch}: causal bundle {size[bundle]} bytes, bidirectional {size[plain]} "
          f"(x{size[bundle] / size[plain]:.3f}); step graphs {steps} bytes, {inline} of them tensors")
    assert inline < 4096  # the norm and WA constants are the clip graphs', stored once in the weight file
    moved = {(ExternalDataInfo(t).offset, ExternalDataInfo(t).length) for g in step.graphs
             for t in onnx.load(str(bundle / g.file), load_external_data=False).graph.initializer
             if uses_external_data(t) and is_per_subnet(t.name) and not is_conv_copy(t.name)}
    grown = (bundle / m.weights_file).stat().st_size - (plain / m.weights_file).stat().st_size
    assert moved and grown <= sum(n for _, n in moved) + 4096 * len(moved)  # once each, plus alignment


@pytest.mark.slow
def test_manifest_step_entries_are_checked(causal, tmp_path) -> None:
    _, bundle = causal

    def tampered(name: str, change) -> Path:
        copy = tmp_path / name / "b.ffn"
        shutil.copytree(bundle, copy)
        d = json.loads((copy / MANIFEST_NAME).read_text())
        change(d)
        (copy / MANIFEST_NAME).write_text(json.dumps(seal(d)))
        return copy

    def drop_file(d):
        del d["files"]["step_subnet1.onnx"]

    def rename_buffer(d):
        d["extra"]["step"]["graphs"][0]["buffers"][0]["input"] = "nope"

    def wrong_shape(d):
        d["extra"]["step"]["graphs"][2]["buffers"][-1]["shape"][0] += 1

    def bidirectional(d):
        d["model_config"]["shift"] = "bidirectional"

    def bad_subnet(d):
        d["extra"]["step"]["graphs"][0]["subnet"] = 3

    for change, message in ((drop_file, "step_subnet1.onnx is used but has no size/sha256 entry"),
                            (rename_buffer, "has no input 'nope'"),
                            (wrong_shape, "output 'shift_out_.*' is .*, the manifest says"),
                            (bidirectional, "step graphs need a causal model"),
                            (bad_subnet, r"graphs\[0\].subnet must be in \[0, 2\]")):
        with pytest.raises(BundleError, match=message):
            load_manifest(tampered(change.__name__, change), verify=False)
    bad = tampered("bytes", lambda d: None)
    raw = bytearray((bad / "step_subnet0.onnx").read_bytes())
    raw[len(raw) // 2] ^= 0x01
    (bad / "step_subnet0.onnx").write_bytes(bytes(raw))
    with pytest.raises(BundleError, match="step_subnet0.onnx does not match the manifest"):
        load_manifest(bad)


def test_bidirectional_model_has_no_step_graph() -> None:
    from ffn_edge.export.errors import ExportError

    model = create_model(ModelConfig("tsm_resnet18", 5, width_mult=0.25))
    with pytest.raises(ExportError, match="bidirectional temporal shift cannot run one frame at a time"):
        StepGraph(model, 0)


@pytest.mark.slow
def test_session_step_graphs_reproduce_the_clip_graph(causal) -> None:
    """FFNRuntime.step_graphs() (torch-free): explicit buffers per sub-network, parity with the clip graphs."""
    from ffn_edge.runtime import FFNRuntime

    from ffn_edge.core.errors import InputError

    _, bundle = causal
    with FFNRuntime.open(bundle, threads=1, warmup=False) as rt:
        steps, m = rt.step_graphs(), rt.manifest
        assert steps.subnets == (0, 1, 2)

        def run(frames, subnet, state):  # logits per frame; the buffers advance
            logits = []
            for f in frames:
                r = steps.run(f, subnet, state)
                state = r.state
                logits.append(r.logits)
            return np.mean(logits, axis=0), state

        for g in m.graphs:
            clip = synthetic_clips(1, g.frames, SIZE, m.input.resize_shorter, m.input.mean, m.input.std, seed=g.frames)
            want = _sess(bundle / g.file).run([m.output_name], {m.input.name: clip})[0][0]
            for _ in range(2):  # a second pass from zero buffers: nothing of the first stream is left
                run(clip[0][:1], 0 if g.subnet else 1, steps.zero_state(0 if g.subnet else 1))  # another's steps
                got, _ = run(clip[0], g.subnet, steps.zero_state(g.subnet))
                assert np.abs(got - want).max() <= 1e-4, g.subnet
            _, carried = run(clip[0][:1], g.subnet, steps.zero_state(g.subnet))  # buffers not reset: this frame's
            assert np.abs(run(clip[0], g.subnet, carried)[0] - want).max() > 1e-6
        with pytest.raises(InputError, match="float32 frame of shape"):
            steps.run(np.zeros((3, SIZE, SIZE), np.float64), 0, steps.zero_state(0))
        with pytest.raises(InputError, match="sub-network 3"):
            steps.zero_state(3)


@pytest.mark.slow
def test_session_step_graphs_refuse_a_bidirectional_bundle(tmp_path) -> None:
    from ffn_edge.runtime import FFNRuntime

    cfg = ModelConfig("tsm_resnet18", 5, width_mult=0.125, frame_counts=(4,))
    save_checkpoint(tmp_path / "b.safetensors", create_model(cfg).eval(),
                    CheckpointMeta(cfg, list("abcde"), input_size=32, resize_shorter=36))
    bundle = export_bundle(tmp_path / "b.safetensors", [4], tmp_path / "b.ffn", verify=False)
    with FFNRuntime.open(bundle, threads=1, warmup=False) as rt, pytest.raises(BundleError, match="no step graphs"):
        rt.step_graphs()


@pytest.mark.slow
def test_session_step_graphs_run_where_torch_cannot_be_imported(causal) -> None:
    import subprocess
    import sys
    import textwrap

    _, bundle = causal
    code = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None  # any `import torch` now raises ImportError
        import numpy as np
        from ffn_edge.runtime import FFNRuntime
        steps = FFNRuntime.open({str(bundle)!r}, threads=1, warmup=False).step_graphs()
        print("OK", steps.run(np.zeros((3, {SIZE}, {SIZE}), np.float32), 2, steps.zero_state(2)).logits.shape)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("OK (5,)")
