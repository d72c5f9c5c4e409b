"""Step graphs on ONNX Runtime's CUDA EP, the shift buffers kept on the GPU between steps (IO binding).

Per step: the frame is bound from the host (ORT copies it in), each buffer input is bound to the
``OrtValue`` on the device that the previous step wrote, each buffer output to the stream's other
set of device ``OrtValue``s (``step_state.BufferPair``: the two sets swap every step), and only the
logits are bound to host memory. So a step moves one frame in and one row of logits out, whatever
the number of temporal shifts; ``zero_state`` writes zeros to the device once per stream start.

``device_type`` is ORT's device name for ``OrtValue`` ("cuda"); with "cpu" and the CPU EP the same
code runs on any onnxruntime build (what the API-level tests do).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ...bundle.manifest import Manifest
from ...core.errors import ConfigError
from .ort_libs import provider_load_error
from .ort_options import CPU_EP, import_onnxruntime, ort_providers, provider_name, session_options
from .step_state import BufferPair, DeviceState, as_device_state
from .steps import State, StepGraphs, check_step_subnet, load_session


class OrtDeviceStepGraphs(StepGraphs):
    """One ORT session per step graph on a device EP; buffers as device ``OrtValue``s, swapped each step."""

    def __init__(self, bundle: str | os.PathLike[str], manifest: Manifest, device: int = 0,
                 threads: int | None = None, *, device_type: str = "cuda", providers: list[Any] | None = None) -> None:
        self.device_type, self.device_id = device_type, device
        self._providers = providers if providers is not None else ort_providers("cuda", device)
        super().__init__(bundle, manifest, threads)

    def _open(self, manifest: Manifest, threads: int | None) -> None:
        self._ort = ort = import_onnxruntime()
        wanted = provider_name(self._providers[0])
        if wanted not in ort.get_available_providers():
            raise ConfigError(f"this onnxruntime has no {wanted} for the step graphs "
                              f"(it has {', '.join(sorted(ort.get_available_providers()))})")
        self._sessions = {}
        for k, g in self._graphs.items():
            session = load_session(ort, self.bundle, g.file, session_options(threads, shared=False), self._providers)
            check_step_subnet(session, self.bundle / g.file, k)
            landed = session.get_providers()[0]
            if landed != wanted:
                why = provider_load_error(wanted)
                raise ConfigError(f"ONNX Runtime could not start {wanted} for {g.file} (the session landed on "
                                  f"{landed}" + (f": its library does not load: {why})" if why else ")"))
            if wanted != CPU_EP:
                session.disable_fallback()
            self._sessions[k] = session
        self.name = f"onnxruntime[{wanted}] (step buffers on {self.device_type}:{self.device_id})"

    def zero_state(self, subnet: int) -> State:
        """Two sets of device buffers: zeros (the first step's inputs) and room for its outputs."""
        g = self._graphs[self.check_subnet(subnet)]
        value = self._ort.OrtValue
        zeros = [value.ortvalue_from_numpy(np.zeros((1, *b.shape), np.float32), self.device_type, self.device_id)
                 for b in g.buffers]
        room = [value.ortvalue_from_shape_and_type((1, *b.shape), np.float32, self.device_type, self.device_id)
                for b in g.buffers]
        return DeviceState(BufferPair(self, subnet, [zeros, room]))

    def _step(self, frame: np.ndarray, subnet: int, state: State) -> tuple[np.ndarray, State]:
        pair = as_device_state(state).claim(self, subnet)
        ins, outs = pair.sets
        g = self._graphs[subnet]
        session = self._sessions[subnet]
        binding = session.io_binding()
        binding.bind_cpu_input(self.spec.input_name, frame[None])
        binding.bind_output(self.spec.output_name, "cpu")  # the logits, and nothing else, come to the host
        for b, x, y in zip(g.buffers, ins, outs, strict=True):
            binding.bind_ortvalue_input(b.input, x)
            binding.bind_ortvalue_output(b.output, y)
        session.run_with_iobinding(binding)
        logits = binding.get_outputs()[0].numpy()[0]
        return logits, pair.swap()

