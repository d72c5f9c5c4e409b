"""Step graphs (runtime/backends/steps.py): what ``step()`` accepts as buffers, and which graph runs which
sub-network. Each case here escaped as an ONNX Runtime error, a TypeError or a NaN label before."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
from builders import CAUSAL_SIZE
from ffn_edge.runtime import FFNRuntime

from ffn_edge.bundle.manifest import seal
from ffn_edge.core.errors import BundleError, InputError


@pytest.fixture(scope="module")
def graphs(causal_bundle):
    with FFNRuntime(causal_bundle, threads=1, warmup=False) as rt:
        yield rt.step_graphs()


FRAME = np.zeros((3, CAUSAL_SIZE, CAUSAL_SIZE), np.float32)


def _first(state):
    return next(iter(state))


def _bad_states(zero):
    k = _first(zero)
    nan = {**zero, k: zero[k].copy()}
    nan[k].flat[0] = np.nan
    return {
        "not a dict": [1, 2],
        "None": None,
        "empty": {},
        "missing buffer": {n: v for n, v in zero.items() if n != k},
        "unknown buffer": {**zero, "extra": zero[k]},
        "float64": {**zero, k: zero[k].astype(np.float64)},
        "wrong shape": {**zero, k: np.zeros((1, 1, 1, 1), np.float32)},
        "no batch axis": {**zero, k: zero[k][0]},
        "a list": {**zero, k: zero[k].tolist()},
        "NaN": nan,
    }


@pytest.mark.parametrize("case", list(_bad_states({"a": np.zeros((1, 1), np.float32)})))
def test_step_refuses_bad_buffers_in_one_line(graphs, case):
    state = _bad_states(graphs.zero_state(0))[case]
    with pytest.raises(InputError) as e:
        graphs.run(FRAME, 0, state)
    assert "\n" not in str(e.value) and "step()" in str(e.value)


def test_step_takes_its_own_state_back(graphs):
    state = graphs.zero_state(1)
    for _ in range(3):
        step = graphs.run(FRAME, 1, state)
        state = step.state
    assert np.isfinite(step.logits).all()


def _rehash_and_seal(bundle, files):
    m = json.loads((bundle / "manifest.json").read_text())
    for rel in files:
        data = (bundle / rel).read_bytes()
        m["files"][rel] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (bundle / "manifest.json").write_text(json.dumps(seal(m)))


def test_step_graphs_swapped_between_subnetworks_are_refused(causal_bundle, private_copy):
    """Two sub-networks' step graphs exchanged, re-hashed and re-sealed: every file check passes, and
    sub-network 0 would run sub-network 1's norms; the graphs' own metadata gives it away."""
    b = private_copy(causal_bundle)
    files = [g["file"] for g in json.loads((b / "manifest.json").read_text())["extra"]["step"]["graphs"]]
    tmp = b / "swap.tmp"
    shutil.move(b / files[0], tmp)
    shutil.move(b / files[1], b / files[0])
    shutil.move(tmp, b / files[1])
    _rehash_and_seal(b, files)
    with FFNRuntime(b, threads=1, warmup=False) as rt, pytest.raises(BundleError, match="step graph of sub-network"):
        rt.step_graphs()


def test_step_graphs_without_their_subnetwork_metadata_still_open(causal_bundle, private_copy):
    """Bundles exported before step graphs named their sub-network keep working."""
    import onnx

    b = private_copy(causal_bundle)
    files = [g["file"] for g in json.loads((b / "manifest.json").read_text())["extra"]["step"]["graphs"]]
    for rel in files:
        proto = onnx.load(str(b / rel), load_external_data=False)
        assert {p.key for p in proto.metadata_props} == {"ffn_edge.step_subnet"}
        del proto.metadata_props[:]
        onnx.save_model(proto, str(b / rel))
    _rehash_and_seal(b, files)
    with FFNRuntime(b, threads=1, warmup=False) as rt:
        g = rt.step_graphs()
        assert np.isfinite(g.run(FRAME, 0, g.zero_state(0)).logits).all()


def test_a_causal_model_with_a_shift_of_zero_channels_exports_and_runs_online(tmp_path, video):
    """At width 1/16 a ResNet-18's first stage has 4 channels, and 4 // shift_div 8 = 0 are shifted: that
    buffer is empty. The exporter wrote such a bundle, then refused it at its own final check."""
    import builders
    from ffn_edge.export import export_bundle

    ckpt = builders.save_tiny_checkpoint(tmp_path / "c.safetensors", "tsm_resnet18", ["a", "b", "c"], (2, 4),
                                         0.0625, CAUSAL_SIZE, CAUSAL_SIZE, shift="causal", perturb=builders.STRONG)
    export_bundle(ckpt, (2, 4), tmp_path / "c.ffn", n_verify=1)  # the step graphs' parity is checked
    with FFNRuntime(tmp_path / "c.ffn", threads=1) as rt:
        g = rt.step_graphs()
        assert any(b.shape[0] == 0 for b in g.spec.graphs[0].buffers)
        results = list(rt.online_stream(str(video), max_decisions=6))
    assert len(results) == 6 and results[-1].prediction is not None
