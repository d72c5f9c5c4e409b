"""PyTorch -> one ONNX graph per (sub-network, frame count): input ``clip`` (N,T,3,H,W), output ``logits``.

Exporter choice (torch 2.13): the TorchScript exporter (``dynamo=False``) plus onnxscript's
optimizer. The torch.export-based exporter gives the same clean graph after optimisation but took
~8 s per graph for a small TSM-ResNet-18 on 2 cores against ~1.5 s here, and a bundle exports one
graph per frame count. Parameter names survive both, which is what weight sharing keys on.

The batch dimension is always dynamic. The frame dimension is static (the graph serves exactly T
frames) or dynamic (any T, the temporal shift reads T from the input shape); see ``frame_dim``.
"""

from __future__ import annotations

import hashlib
import io
import warnings

import onnx
import torch
from onnx import numpy_helper
from torch import nn

from ..models import VideoClassifier
from .fold import FoldReport, deploy_model, fold_channel_scales
from .optimize import optimize

INPUT_NAME = "clip"
OUTPUT_NAME = "logits"
DEFAULT_OPSET = 18  # ONNX Runtime >= 1.14, TensorRT 10's parser
GRAPH_PREFIX = "model."  # initializer name = GRAPH_PREFIX + the parameter's name in the checkpoint


class ClipGraph(nn.Module):
    """Clips (N,T,3,H,W) -> logits (N,K) for one sub-network, with a dynamic batch dimension.

    ``VideoClassifier.forward`` turns the batch size into a Python int (fixed at export); this
    wrapper keeps it symbolic and does the frame flattening and average consensus itself.
    """

    def __init__(self, model: VideoClassifier, subnet: int, frames: int | None) -> None:
        super().__init__()
        self.model = model
        self.subnet = subnet
        self.frames = frames  # None: read T from the input (dynamic frame dimension)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        t = clip.shape[1] if self.frames is None else self.frames
        with self.model.ctx.use(self.subnet, t):
            return self.model.clip_logits(clip, t)


def export_graph(
    model: VideoClassifier,
    subnet: int,
    frames: int,
    size: tuple[int, int],
    *,
    dynamic_frames: bool = False,
    opset: int = DEFAULT_OPSET,
) -> tuple[onnx.ModelProto, FoldReport]:
    """Export sub-network ``subnet`` traced at ``frames`` frames; norms and WA folded (see ``fold``)."""
    wrapper = ClipGraph(deploy_model(model, subnet), subnet, None if dynamic_frames else frames).eval()
    example = torch.zeros(1, frames, 3, *size)
    axes = {0: "batch", 1: "frames"} if dynamic_frames else {0: "batch"}
    return trace_to_onnx(wrapper, (example,), {INPUT_NAME: axes, OUTPUT_NAME: {0: "batch"}}, opset)


def name_constants_by_content(proto: onnx.ModelProto) -> None:
    """Rename the exporter's own initializers (not parameters: no ``model.`` prefix) after their bytes.

    The TorchScript exporter folds e.g. a Linear on 3-D tokens into ``MatMul(x, W^T)`` with ``W^T`` a
    new constant named by a counter (``onnx::MatMul_1823``). Counters differ between graphs, so in a
    bundle one name could mean two tensors (or one tensor two names), breaking "same name -> same
    bytes" of the shared weight file. A content name makes equal tensors equal names in every graph;
    equal constants within one graph are merged.
    """
    rename: dict[str, str] = {}
    keep, seen = [], set()
    for t in proto.graph.initializer:
        if t.name.startswith(GRAPH_PREFIX):
            keep.append(t)
            continue
        a = numpy_helper.to_array(t)
        digest = hashlib.sha256(f"{a.dtype}{a.shape}".encode() + a.tobytes()).hexdigest()
        new = f"const_{digest[:24]}"
        rename[t.name] = new
        if new not in seen:
            seen.add(new)
            t.name = new
            keep.append(t)
    if not rename:
        return
    for node in proto.graph.node:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    del proto.graph.initializer[:]
    proto.graph.initializer.extend(keep)


def trace_to_onnx(wrapper: nn.Module, example: tuple[torch.Tensor, ...], axes: dict[str, dict[int, str]],
                  opset: int) -> tuple[onnx.ModelProto, FoldReport]:
    """Trace ``wrapper`` (its parameters under ``model.``), optimise, fold WA multiplies.

    ``axes``: {input or output name: dynamic axes}, inputs first in the order of ``example``, then outputs.
    """
    names = list(axes)
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice and tracer warnings
        torch.onnx.export(
            wrapper, example, buf, dynamo=False, opset_version=opset, do_constant_folding=True,
            input_names=names[: len(example)], output_names=names[len(example) :], dynamic_axes=axes,
        )
    # one pass reaches the fixed point on these graphs (a second changed nothing) at half the time;
    # onnxscript's passes without its quadratic multi-output rule (``optimize``: same TSM graphs)
    proto = optimize(onnx.load_from_string(buf.getvalue()))
    report = fold_channel_scales(proto)
    name_constants_by_content(proto)
    del proto.graph.value_info[:]  # inferred shapes: ~20% of a graph file, re-inferred by every consumer
    proto.producer_name = "ffn-export"
    return proto, report
