"""Static INT8 quantization (QDQ) of a bundle's graphs with ONNX Runtime's tools, calibrated per sub-network.

Per graph: ``calibrate`` runs ORT's MinMax calibrator on that graph's own clips (its sub-network at
its own frame count) and returns the activation ranges; ``quantize`` hands them to
``onnxruntime.quantization.quantize_static`` (QDQ format, per-channel symmetric INT8 weights) through
its calibration-cache file, so ORT's quantizer does the rewriting. With ``scope="shared"`` the
ranges of every graph are first merged by tensor name (min of minima, max of maxima: exactly a
MinMax calibration over all sub-networks' clips together) and every graph is quantized with that
one table: the comparison the issue asks for.

Why weights can be stored once: per-channel symmetric weights have zero points 0 and scales
``max|W_c| / 127`` (or 63 with ``reduce_range``), so a weight's INT8 bytes and scales depend on the
weight alone; the sub-networks' graphs carry byte-identical quantized weights under the same name,
and ``share.share_weights`` (content-addressed) writes each once. ORT's quantizer also writes
tensors that depend on a graph's activation ranges (a convolution's or Gemm's INT32 bias is
quantized with ``input_scale * weight_scale``); ``tag_calibrated`` gives those a per-sub-network
name so they stay inside their graph instead of clashing in the shared file.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from ..core.progress import Progress
from .errors import ExportError
from .fold import SUBNET_TAG, is_per_subnet
from .int8_config import QuantConfig
from .onnx_export import INPUT_NAME


class _Feeds:
    """ORT CalibrationDataReader over graph inputs: one feed (input name -> array) per inference."""

    def __init__(self, feeds: Iterable[dict[str, np.ndarray]], report: Progress | None = None) -> None:
        self._it: Iterator[dict[str, np.ndarray]] = iter(feeds)
        self._report = report
        self._given = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._report is not None and self._given:  # the previous clip has been run
            self._report.update()
        item = next(self._it, None)
        self._given += item is not None
        return item


class _Clips(_Feeds):
    """ORT CalibrationDataReader over clips (N, T, 3, H, W): one clip per inference."""

    def __init__(self, clips: np.ndarray, report: Progress | None = None) -> None:
        super().__init__(({INPUT_NAME: clips[i : i + 1]} for i in range(len(clips))), report)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """ORT's quantizer logs advice through the root logger (pre-processing, ...) on every call."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def preprocess(proto: onnx.ModelProto, workdir: Path) -> onnx.ModelProto:
    """ORT's basic graph optimisations before quantization (what ``quant_pre_process`` recommends), minus
    the fusions that bake a sub-network's norm into a shared convolution weight.

    The one that matters here is ConvAddFusion: a kept norm's ``Add(shift / scale)`` becomes the
    convolution's bias, so the quantizer sees ``Conv -> Mul`` instead of ``Conv -> Add -> Mul`` (one
    quantized op fewer per norm). Measured on TSM-ResNet-50 at 224, 4 frames, 1 thread: INT8 latency
    0.58x FP32 with it, 0.62x without (``benchmarks/int8.py``'s set-up, plain sessions).
    """
    import onnxruntime as ort

    from ..runtime.backends.ort_options import COPYING_OPTIMIZERS

    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        so.optimized_model_filepath = str(Path(tmp) / "pre.onnx")
        so.log_severity_level = 3
        ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"],
                             disabled_optimizers=list(COPYING_OPTIMIZERS))
        out = onnx.load(str(Path(tmp) / "pre.onnx"))
    return out


def calibrate(proto: onnx.ModelProto, clips: np.ndarray, workdir: Path,
              desc: str | None = None) -> dict[str, tuple[float, float]]:
    """MinMax range of every float tensor of ``proto`` over ``clips`` (ORT's calibrator); ``desc``: progress."""
    return calibrate_feeds(proto, _Clips(clips)._it, len(clips), workdir, desc)


def calibrate_feeds(proto: onnx.ModelProto, feeds: Iterable[dict[str, np.ndarray]], count: int, workdir: Path,
                    desc: str | None = None) -> dict[str, tuple[float, float]]:
    """MinMax range of every float tensor of ``proto`` over ``count`` feeds (a step graph's frames and buffers)."""
    from onnxruntime.quantization import CalibrationMethod, create_calibrator

    with tempfile.TemporaryDirectory(dir=workdir) as tmp, _quiet():
        path = Path(tmp) / "model.onnx"
        onnx.save_model(proto, str(path))
        calibrator = create_calibrator(path, None, augmented_model_path=str(Path(tmp) / "augmented.onnx"),
                                       calibrate_method=CalibrationMethod.MinMax)
        with Progress(count, desc or "", enabled=desc is not None) as report:
            calibrator.collect_data(_Feeds(feeds, report))
        data = calibrator.compute_data()
    return {name: (float(np.min(td.lowest)), float(np.max(td.highest))) for name, td in data.items()}


def merge_ranges(ranges: list[dict[str, tuple[float, float]]]) -> dict[str, tuple[float, float]]:
    """One table for all graphs: per tensor name the widest range any graph saw (MinMax over all clips)."""
    merged: dict[str, tuple[float, float]] = {}
    for table in ranges:
        for name, (lo, hi) in table.items():
            old = merged.get(name)
            merged[name] = (lo, hi) if old is None else (min(old[0], lo), max(old[1], hi))
    return merged


def quantize(proto: onnx.ModelProto, ranges: dict[str, tuple[float, float]], cfg: QuantConfig,
             workdir: Path) -> onnx.ModelProto:
    """``proto`` as a QDQ graph: per-channel symmetric INT8 weights, activations from ``ranges``."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import TensorData, TensorsData, save_tensors_data

    table = TensorsData(CalibrationMethod.MinMax, {
        name: TensorData(lowest=np.array(lo, np.float32), highest=np.array(hi, np.float32))
        for name, (lo, hi) in ranges.items()})
    with tempfile.TemporaryDirectory(dir=workdir) as tmp, _quiet():
        cache, out = Path(tmp) / "ranges.json", Path(tmp) / "int8.onnx"
        save_tensors_data(table, cache)
        quantize_static(
            proto, str(out), None, calibration_cache_path=str(cache), quant_format=QuantFormat.QDQ,
            per_channel=True, reduce_range=cfg.reduce_range,
            activation_type=QuantType.QUInt8 if cfg.activations == "u8" else QuantType.QInt8,
            weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
            extra_options={"WeightSymmetric": True, "ActivationSymmetric": cfg.activations == "s8"},
        )
        q = onnx.load(str(out))
    compact(q)
    q.producer_name = "ffn-export"
    return q


def compact(proto: onnx.ModelProto) -> None:
    """Shrink a quantized graph in place: short names for intermediate tensors, no node names or shapes.

    ORT's quantizer names every Q/DQ node and tensor after the tensor it wraps (~100 characters each,
    ~450 pairs in a TSM-ResNet-18), which made a small model's graph files a third of its bundle.
    Graph inputs, outputs and initializers keep their names (weight sharing keys on them).
    """
    g = proto.graph
    keep = {v.name for v in g.input} | {v.name for v in g.output} | {t.name for t in g.initializer} | {""}
    new: dict[str, str] = {}
    for node in g.node:
        for o in node.output:
            if o not in keep and o not in new:
                new[o] = f"t{len(new)}"
    for node in g.node:
        node.name = ""
        node.input[:] = [new.get(i, i) for i in node.input]
        node.output[:] = [new.get(o, o) for o in node.output]
    del g.value_info[:]
    del proto.metadata_props[:]


def tag_calibrated(graphs: dict[str, onnx.ModelProto], subnet_of: dict[str, int]) -> list[str]:
    """Rename, in place, initializers whose bytes differ between graphs under one name (per-sub-network).

    These are tensors ORT derived from a graph's activation ranges (INT32 biases); weights and their
    scales are identical everywhere and keep their shared name. Returns the renamed names.
    """
    digests: dict[str, set[bytes]] = {}
    for proto in graphs.values():
        for t in proto.graph.initializer:
            digests.setdefault(t.name, set()).add(numpy_helper.to_array(t).tobytes())
    clash = {name for name, seen in digests.items() if len(seen) > 1 and not is_per_subnet(name)}
    for file, proto in graphs.items():
        new = {name: f"{name}{SUBNET_TAG}{subnet_of[file]}" for name in clash}
        for t in proto.graph.initializer:
            t.name = new.get(t.name, t.name)
        for node in proto.graph.node:
            node.input[:] = [new.get(i, i) for i in node.input]
    return sorted(clash)


def cpu_session(proto: onnx.ModelProto):  # noqa: ANN201 - an onnxruntime.InferenceSession
    """An ONNX Runtime CPU session of ``proto`` (from memory), its warnings silenced."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])


def agreement(fp32: onnx.ModelProto, int8: onnx.ModelProto, clips: np.ndarray) -> float:
    """Share of ``clips`` whose top-1 class is the same in the INT8 graph as in the FP32 one (ORT CPU)."""

    def top1(proto: onnx.ModelProto) -> np.ndarray:
        sess = cpu_session(proto)
        return np.concatenate([sess.run(None, {INPUT_NAME: clips[i : i + 1]})[0].argmax(1)
                               for i in range(len(clips))])

    if len(clips) == 0:
        raise ExportError("no clips to compare INT8 with FP32 on")
    return float((top1(fp32) == top1(int8)).mean())
