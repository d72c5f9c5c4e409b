"""Step graphs of a causal model: one frame in, that frame's logits out, the temporal shift's state explicit.

A causal temporal shift (``layers.temporal_shift``, mode "causal") gives frame t the previous
frame's first ``2 * (C // shift_div)`` channels at every shift. Run one frame at a time, that is a
buffer per shift: ``concat(buffer, current[n:])`` goes on through the block, and ``current[:n]``
is the buffer for the next frame. ``StepGraph`` is the deployed sub-network with each shift
replaced by that logic (``StepShift``), traced like the clip graphs (``onnx_export.trace_to_onnx``)
with parameters under the same ``model.`` names, so weight sharing stores nothing twice.

Inputs ``frame`` (N, 3, H, W) and ``shift_in_i``; outputs ``logits`` (N, K) and ``shift_out_i``,
i in module order (``StepBuffer`` in the manifest names each and its shape). Zero buffers before a
stream's first frame are exactly the clip's zero padding, so the mean of n steps' logits is the
clip graph's output for those n frames (TSN average consensus is a mean of per-frame logits).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from ..bundle.sections import StepBuffer
from ..layers import TemporalShift
from ..layers.temporal_shift import causal_shift_channels
from ..models import VideoClassifier
from .errors import ExportError
from .fold import FoldReport, deploy_model
from .onnx_export import DEFAULT_OPSET, OUTPUT_NAME, trace_to_onnx
from .verify import Parity

STEP_INPUT = "frame"
BUFFER_IN, BUFFER_OUT = "shift_in_{}", "shift_out_{}"


def step_file(subnet: int) -> str:
    """The bundle file of sub-network ``subnet``'s step graph."""
    return f"step_subnet{subnet}.onnx"


class StepShift(nn.Module):
    """A causal shift for one frame: the previous frame's channels come from ``incoming`` (None: zeros)."""

    def __init__(self, shift_div: int) -> None:
        super().__init__()
        self.shift_div = shift_div
        self.incoming: torch.Tensor | None = None
        self.outgoing: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = causal_shift_channels(int(x.shape[1]), self.shift_div)
        prev = torch.zeros_like(x[:, :n]) if self.incoming is None else self.incoming
        self.outgoing = x[:, :n]
        return torch.cat([prev, x[:, n:]], dim=1)


class StepGraph(nn.Module):
    """(frame, *buffers) -> (logits, *new buffers) for one sub-network of a causal model."""

    def __init__(self, model: VideoClassifier, subnet: int) -> None:
        super().__init__()
        self.model = deploy_model(model, subnet)  # "model.": the parameter names the clip graphs use
        self.subnet = subnet
        for name, m in list(self.model.named_modules()):
            if isinstance(m, TemporalShift):
                if m.mode != "causal":
                    raise ExportError(f"{name}: a {m.mode} temporal shift cannot run one frame at a time")
                parent, _, child = name.rpartition(".")
                setattr(self.model.get_submodule(parent) if parent else self.model, child, StepShift(m.shift_div))
        self.shifts = [(name, m) for name, m in self.model.named_modules() if isinstance(m, StepShift)]

    def forward(self, frame: torch.Tensor, *buffers: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if buffers and len(buffers) != len(self.shifts):
            raise ValueError(f"{len(buffers)} buffers for {len(self.shifts)} temporal shifts")
        for (_, s), b in zip(self.shifts, buffers or [None] * len(self.shifts), strict=True):
            s.incoming = b
        try:
            with self.model.ctx.use(self.subnet, 1):
                logits = self.model.forward_frames(frame)
            return (logits, *(s.outgoing for _, s in self.shifts))
        finally:
            for _, s in self.shifts:
                s.incoming = s.outgoing = None

    def buffers_spec(self, size: tuple[int, int]) -> list[StepBuffer]:
        """Each shift's buffer: names and per-frame shape, found by running one zero frame."""
        with torch.no_grad():
            outs = self(torch.zeros(1, 3, *size))[1:]
        return [StepBuffer(BUFFER_IN.format(i), BUFFER_OUT.format(i), tuple(int(d) for d in o.shape[1:]))
                for i, o in enumerate(outs)]


def export_step_graph(model: VideoClassifier, subnet: int, size: tuple[int, int], *,
                      opset: int = DEFAULT_OPSET) -> tuple[onnx.ModelProto, FoldReport, list[StepBuffer]]:
    """Sub-network ``subnet``'s step graph (WA folded as in the clip graphs) and its buffers."""
    wrapper = StepGraph(model, subnet).eval()
    buffers = wrapper.buffers_spec(size)
    if not buffers:
        raise ExportError("the model has no temporal shift: there is nothing to carry between frames")
    example = (torch.zeros(1, 3, *size), *(torch.zeros(1, *b.shape) for b in buffers))
    axes = {STEP_INPUT: {0: "batch"}, **{b.input: {0: "batch"} for b in buffers},
            OUTPUT_NAME: {0: "batch"}, **{b.output: {0: "batch"} for b in buffers}}
    proto, report = trace_to_onnx(wrapper, example, axes, opset)
    return proto, report, buffers


def step_parity(model: VideoClassifier, subnet: int, graph: Path, buffers: list[StepBuffer],
                clips: np.ndarray) -> Parity:
    """ONNX Runtime (CPU): each clip's frames one by one from zero buffers, mean logits vs the PyTorch clip."""
    sess = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ref = model(torch.from_numpy(clips), subnet=subnet).numpy()
    got = np.stack([run_frames(sess, buffers, clip).mean(axis=0) for clip in clips])
    return Parity(float(np.abs(got - ref).max()), bool((got.argmax(1) == ref.argmax(1)).all()), len(clips))


def run_frames(sess: ort.InferenceSession, buffers: list[StepBuffer], frames: np.ndarray) -> np.ndarray:
    """Per-frame logits (T, K) of frames (T, 3, H, W) run one by one from zero buffers."""
    state = {b.input: np.zeros((1, *b.shape), np.float32) for b in buffers}
    names = [OUTPUT_NAME, *(b.output for b in buffers)]
    logits = []
    for frame in frames:
        out = sess.run(names, {STEP_INPUT: frame[None], **state})
        logits.append(out[0][0])
        state = {b.input: o for b, o in zip(buffers, out[1:], strict=True)}
    return np.stack(logits)
