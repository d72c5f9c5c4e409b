"""Step graphs with the shift buffers on the device (``steps_ort_cuda``), at ONNX Runtime's API boundary.

This machine's onnxruntime is the CPU build: the IO-binding code runs here with ``device_type="cpu"``
and the CPU EP, i.e. through the real ``IOBinding`` / ``OrtValue`` API, and is checked against the
plain CPU step graphs. Counting wrappers around that API prove that no buffer comes to the host: per
step only the frame goes in and the logits come out. Asking for the CUDA EP on a build without it is
refused in one line; the real CUDA run is the ``gpu``-marked test.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from builders import decode_preprocessed
from ffn_edge.runtime import FFNRuntime
from ffn_edge.runtime.backends.steps import StepGraphs
from ffn_edge.runtime.backends.steps_ort_cuda import OrtDeviceStepGraphs
from onnxruntime.capi import onnxruntime_inference_collection as oic

from ffn_edge.bundle.manifest import load_manifest
from ffn_edge.core.errors import ConfigError, InputError


def _frames(m, n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, *m.input.size)).astype(np.float32)


def _device_cpu(bundle):
    return OrtDeviceStepGraphs(bundle, load_manifest(bundle), 0, 1, device_type="cpu",
                               providers=["CPUExecutionProvider"])


def _logits(graphs, subnet: int, frames: np.ndarray) -> np.ndarray:
    state, out = graphs.zero_state(subnet), []
    for f in frames:
        r = graphs.run(f, subnet, state)
        state = r.state
        out.append(r.logits)
    return np.stack(out)


def test_io_bound_steps_equal_the_host_steps(causal_bundle) -> None:
    m = load_manifest(causal_bundle)
    host, dev = StepGraphs(causal_bundle, m, 1), _device_cpu(causal_bundle)
    for k in host.subnets:
        frames = _frames(m, 6, seed=k)
        want, got = _logits(host, k, frames), _logits(dev, k, frames)
        assert got.shape == (6, len(m.class_names))
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
        assert not np.allclose(want[0], want[-1])  # the buffers carry something: frames differ in their logits


class Counts:
    """Wrap the IOBinding / OrtValue entry points that move data between host and device."""

    def __init__(self, monkeypatch) -> None:
        self.cpu_inputs: list[str] = []
        self.host_outputs: list[str] = []
        self.to_host = 0
        self.from_host = 0
        real_cpu_input, real_output = oic.IOBinding.bind_cpu_input, oic.IOBinding.bind_output
        real_numpy, real_from_numpy = oic.OrtValue.numpy, oic.OrtValue.ortvalue_from_numpy

        def bind_cpu_input(binding, name, arr):
            self.cpu_inputs.append(name)
            return real_cpu_input(binding, name, arr)

        def bind_output(binding, name, device_type="cpu", *a, **kw):
            if device_type == "cpu":
                self.host_outputs.append(name)
            return real_output(binding, name, device_type, *a, **kw)

        def numpy(value):
            self.to_host += 1
            return real_numpy(value)

        def from_numpy(arr, device_type="cpu", device_id=0, *a):
            self.from_host += 1
            return real_from_numpy(arr, device_type, device_id, *a)

        monkeypatch.setattr(oic.IOBinding, "bind_cpu_input", bind_cpu_input)
        monkeypatch.setattr(oic.IOBinding, "bind_output", bind_output)
        monkeypatch.setattr(oic.OrtValue, "numpy", numpy)
        monkeypatch.setattr(oic.OrtValue, "ortvalue_from_numpy", staticmethod(from_numpy))


def test_no_buffer_makes_a_host_round_trip(causal_bundle, monkeypatch) -> None:
    m = load_manifest(causal_bundle)
    dev = _device_cpu(causal_bundle)
    counts = Counts(monkeypatch)
    k = dev.subnets[-1]
    buffers = len(m.step.for_subnet(k).buffers)
    assert buffers > 1
    state = dev.zero_state(k)
    assert counts.from_host == buffers  # the zeros, once per stream start
    steps = 5
    for f in _frames(m, steps):
        state = dev.run(f, k, state).state
    assert counts.from_host == buffers  # nothing more copied in as a buffer
    assert counts.cpu_inputs == [m.step.input_name] * steps  # the frame only
    assert counts.host_outputs == [m.step.output_name] * steps  # the logits only
    assert counts.to_host == steps  # and only they are read back


def test_a_used_or_foreign_state_is_refused(causal_bundle) -> None:
    m = load_manifest(causal_bundle)
    dev, other = _device_cpu(causal_bundle), _device_cpu(causal_bundle)
    f = _frames(m, 1)[0]
    first = dev.zero_state(0)
    second = dev.run(f, 0, first).state
    with pytest.raises(InputError, match="already used"):
        dev.run(f, 0, first)  # its buffers are the ones the next step writes
    with pytest.raises(InputError, match="sub-network 0's buffers"):
        dev.run(f, 1, second)
    with pytest.raises(InputError, match="other step graphs"):
        other.run(f, 0, second)
    with pytest.raises(InputError, match="not from these step graphs"):
        dev.run(f, 0, StepGraphs(causal_bundle, m, 1).zero_state(0))
    dev.run(f, 0, second)  # the latest state still runs


def test_cuda_step_graphs_on_a_build_without_cuda_are_one_line(causal_bundle) -> None:
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA EP")
    with pytest.raises(ConfigError, match="no CUDAExecutionProvider for the step graphs"):
        OrtDeviceStepGraphs(causal_bundle, load_manifest(causal_bundle))


@pytest.mark.gpu
def test_ort_cuda_step_graphs_equal_the_cpu_ones_on_a_gpu(causal_bundle) -> None:
    """Real GPU: FFNRuntime on ort-cuda opens device-buffer step graphs whose logits match ORT CPU's."""
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu is not installed")
    m = load_manifest(causal_bundle)
    with FFNRuntime(causal_bundle, backend="ort-cuda") as rt:
        steps = rt.step_graphs()
        assert isinstance(steps, OrtDeviceStepGraphs) and "CUDAExecutionProvider" in steps.name
        host = StepGraphs(causal_bundle, m, 1)
        for k in host.subnets:
            frames = _frames(m, 8, seed=k)
            np.testing.assert_allclose(_logits(steps, k, frames), _logits(host, k, frames), rtol=0, atol=1e-3)


def test_online_mode_carries_device_state_it_never_reads(causal_bundle, video, monkeypatch) -> None:
    """An online stream on step graphs whose state is a device handle: same labels as the host reference."""
    from ffn_edge.runtime import session
    from test_online import Alternate, _check_against_step_graphs

    monkeypatch.setattr(session, "open_step_graphs", lambda bundle, m, backend, device, threads: _device_cpu(bundle))
    with FFNRuntime.open(causal_bundle, threads=1) as rt:
        results = list(rt.online_stream(str(video), scheduler=Alternate(), window_s=0.4))
        assert isinstance(rt.step_graphs(), OrtDeviceStepGraphs)
        decoded = decode_preprocessed(video, rt.preprocessor)
    monkeypatch.undo()  # the reference replays the frames on the host step graphs
    assert len([r for r in results if r.switched]) >= 3
    assert _check_against_step_graphs(results, causal_bundle, decoded) > 0
