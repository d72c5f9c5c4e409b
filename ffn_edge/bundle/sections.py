"""The manifest's optional sections, typed: step graphs, INT8 quantisation, TensorRT engine sets.

They are stored under ``manifest.extra`` (so an older reader skips them) and parsed once, by the
``Manifest`` properties ``step``, ``quantization``, ``precision`` and ``engine_sets``; every other
module reads the typed objects, never the raw dictionaries.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..core import defaults as D
from ..core import validate as V
from ..core.errors import BundleError


@dataclasses.dataclass(frozen=True)
class StepBuffer:
    """One temporal shift's state between frames: graph input ``input`` -> graph output ``output``.

    A float32 tensor (N, *shape): the previous frame's shifted channels at that shift (zeros before
    the first frame of a stream).
    """

    input: str
    output: str
    shape: tuple[int, int, int]  # (channels, height, width)


@dataclasses.dataclass(frozen=True)
class StepGraph:
    """Sub-network ``subnet`` of a causal model, one frame at a time: (frame, buffers) -> (logits, buffers)."""

    subnet: int
    file: str
    buffers: tuple[StepBuffer, ...]


@dataclasses.dataclass(frozen=True)
class StepSpec:
    """The step graphs of a bundle (``manifest.extra["step"]``; causal checkpoints only).

    Running a clip's n frames one by one through sub-network k's step graph, from zero buffers, and
    averaging the per-frame logits gives the clip graph's logits for those n frames.
    """

    input_name: str  # one preprocessed frame (N, 3, H, W), H, W = manifest input size
    output_name: str  # that frame's logits (N, classes)
    graphs: tuple[StepGraph, ...]
    # "int8": QDQ step graphs of an INT8 bundle (weights in the clip graphs' weights.bin); absent = "fp32"
    precision: str = "fp32"

    def for_subnet(self, subnet: int) -> StepGraph:
        for g in self.graphs:
            if g.subnet == subnet:
                return g
        raise KeyError(subnet)

    def batch1_shapes(self, g: StepGraph, size: tuple[int, int]) -> dict[str, tuple[int, ...]]:
        """``g``'s inputs at batch 1 (a frame of ``size`` (H, W), then its buffers): what its engines are built
        for and run with."""
        return {self.input_name: (1, 3, *size), **{b.input: (1, *b.shape) for b in g.buffers}}


STEP_KEY = "step"  # key of the StepSpec in manifest.extra
STEP_SUBNET_META = "ffn_edge.step_subnet"  # a step graph's ONNX metadata: the sub-network it runs


def parse_step(extra: dict[str, Any], model_config: dict[str, Any], counts: tuple[int, ...]) -> StepSpec | None:
    """The StepSpec ``extra["step"]`` describes (None when absent), every field checked (BundleError).

    Its ``precision`` (absent in bundles written before INT8 step graphs: "fp32") must be the bundle's.
    """
    if STEP_KEY not in extra:
        return None
    try:
        spec = _parse_step(as_object("extra.step", extra[STEP_KEY]), model_config, counts)
        if spec.precision != parse_precision(extra):
            raise ValueError(f"step graphs of precision {spec.precision} in a bundle whose precision is "
                             f"{parse_precision(extra)}")
        return spec
    except KeyError as e:
        raise BundleError(f"manifest is malformed: extra.step: missing key {e}") from None
    except ValueError as e:
        raise BundleError(f"manifest is malformed: extra.step: {e}") from None


PRECISION_KEY = "precision"  # manifest.extra: "fp32" (also when absent) or "int8"
QUANT_KEY = "quantization"  # manifest.extra of an INT8 bundle: a QuantSpec


@dataclasses.dataclass(frozen=True)
class QuantSpec:
    """How an INT8 bundle's graphs were quantized (QDQ) and calibrated; ``ffn-export --int8`` writes it."""

    format: str  # "QDQ": QuantizeLinear / DequantizeLinear pairs around float ops
    activations: str  # V.INT8_ACTIVATIONS
    layout: str  # V.INT8_LAYOUTS
    calib_data: str  # what the clips were ("synthetic (seed 1)", "list val.txt (frames)", ...)
    calib_count: int  # clips per sub-network
    calib_method: str  # V.CALIB_METHODS
    calib_scope: str  # V.INT8_SCOPES: ranges per sub-network, or one table shared by all


def parse_precision(extra: dict[str, Any]) -> str:
    """The bundle's precision, "fp32" or "int8" (BundleError when the field is bad)."""
    try:
        return V.check_choice("extra.precision", extra.get(PRECISION_KEY, "fp32"), V.PRECISIONS)
    except ValueError as e:
        raise BundleError(f"manifest is malformed: {e}") from None


def parse_quantization(extra: dict[str, Any]) -> QuantSpec | None:
    """The QuantSpec of an INT8 bundle (None for fp32), every field checked (BundleError)."""
    if parse_precision(extra) == "fp32":
        if QUANT_KEY in extra:
            raise BundleError("manifest is malformed: extra.quantization in a bundle whose precision is fp32")
        return None
    try:
        d = as_object("extra.quantization", extra[QUANT_KEY])
        c = as_object("extra.quantization.calibration", d["calibration"])
        if d["format"] != "QDQ":
            raise ValueError(f"extra.quantization.format must be 'QDQ', got {d['format']!r}")
        return QuantSpec(
            format="QDQ",
            activations=V.check_choice("extra.quantization.activations", d["activations"], V.INT8_ACTIVATIONS),
            layout=V.check_choice("extra.quantization.layout", d["layout"], V.INT8_LAYOUTS),
            calib_data=V.check_str("extra.quantization.calibration.data", c["data"], 512),
            calib_count=V.check_int("extra.quantization.calibration.count", c["count"], 1, V.MAX_CALIB_CLIPS),
            calib_method=V.check_choice("extra.quantization.calibration.method", c["method"], V.CALIB_METHODS),
            calib_scope=V.check_choice("extra.quantization.calibration.scope", c["scope"], V.INT8_SCOPES),
        )
    except KeyError as e:
        raise BundleError(f"manifest is malformed: an int8 bundle's extra.quantization lacks {e}") from None
    except ValueError as e:
        raise BundleError(f"manifest is malformed: {e}") from None


def _parse_step(d: dict[str, Any], model_config: dict[str, Any], counts: tuple[int, ...]) -> StepSpec:
    if model_config.get("shift", V.DEFAULT_SHIFT) != "causal":
        raise ValueError("step graphs need a causal model (model_config.shift is not 'causal')")
    frame = V.check_str("input", d["input"], 255)
    logits = V.check_str("output", d["output"], 255)
    graphs, subnets = [], set()
    for i, g in enumerate(V.check_list("graphs", d["graphs"], 1, len(counts))):
        g = as_object(f"graphs[{i}]", g)
        k = V.check_int(f"graphs[{i}].subnet", g["subnet"], 0, len(counts) - 1)
        if k in subnets:
            raise ValueError(f"two step graphs for sub-network {k}")
        subnets.add(k)
        buffers = []
        for j, b in enumerate(V.check_list(f"graphs[{i}].buffers", g["buffers"], 1, V.MAX_STEP_BUFFERS)):
            b = as_object(f"graphs[{i}].buffers[{j}]", b)
            at = f"graphs[{i}].buffers[{j}]"
            shape = V.check_list(f"{at}.shape", b["shape"], 3, 3)
            buffers.append(StepBuffer(
                input=V.check_str(f"{at}.input", b["input"], 255),
                output=V.check_str(f"{at}.output", b["output"], 255),
                shape=(V.check_int(f"{at}.shape[0]", shape[0], 0, V.MAX_BUFFER_CHANNELS),  # 0: C // shift_div < 1
                       V.check_int(f"{at}.shape[1]", shape[1], 1, V.MAX_INPUT_SIZE),
                       V.check_int(f"{at}.shape[2]", shape[2], 1, V.MAX_INPUT_SIZE)),
            ))
        ins, outs = [frame, *(b.input for b in buffers)], [logits, *(b.output for b in buffers)]
        if len(set(ins)) != len(ins) or len(set(outs)) != len(outs):
            raise ValueError(f"graphs[{i}]: input or output names repeat")
        graphs.append(StepGraph(k, V.check_str(f"graphs[{i}].file", g["file"], 255), tuple(buffers)))
    precision = V.check_choice("precision", d.get("precision", "fp32"), V.PRECISIONS)
    return StepSpec(frame, logits, tuple(graphs), precision)


def as_object(name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be an object, got {type(value).__name__}")
    return value


ENGINES_KEY = "engines"  # manifest.extra: TensorRT engine sets by device key (``ffn-export engines``)


@dataclasses.dataclass(frozen=True)
class EngineRef:
    """Where one frame count's engine is: file, optimisation profile, graph to refit from, T range."""

    file: str
    profile: int
    refit_from: str
    t_min: int
    t_max: int


@dataclasses.dataclass(frozen=True)
class StepEngine:
    """One sub-network's step-graph engine (batch 1, one frame and its shift buffers) and the graph to refit from."""

    file: str
    refit_from: str


@dataclasses.dataclass(frozen=True)
class EngineSet:
    """The engines a bundle holds for one device key (GPU model + TensorRT version + precision).

    A stripped engine carries no weights: it is refitted at load time from ``refit_from``, i.e. from
    the one shared weights.bin (or, for fp16 on TensorRT 11, the shared weights.fp16.bin next to the
    fp16-typed graphs).
    """

    gpu: str
    trt_version: str
    precision: str  # "fp32" | "fp16" | "int8" (explicit quantization from an INT8 bundle's QDQ graphs)
    stripped: bool
    engines: dict[int, EngineRef]  # frames -> engine
    max_batch: int = D.MAX_BATCH
    # sub-network -> its step engine (causal bundles; absent in sets built before step engines)
    steps: dict[int, StepEngine] = dataclasses.field(default_factory=dict)

    def describe(self) -> str:
        return f"{self.gpu!r} / TensorRT {self.trt_version} / {self.precision}"


def parse_engines(extra: dict[str, Any]) -> tuple[EngineSet, ...]:
    """Every engine set ``extra["engines"]`` lists (empty when none); BundleError when malformed.

    Entries written before T ranges were recorded accept exactly their own frame count; entries
    without ``steps`` (older, or of a bundle without step graphs) have no step engines.
    """
    sets = []
    try:
        for entry in (extra.get(ENGINES_KEY) or {}).values():
            engines = {int(t): EngineRef(str(e["file"]), int(e.get("profile", 0)), str(e["refit_from"]),
                                         int(e.get("t_min", t)), int(e.get("t_max", t)))
                       for t, e in entry["engines"].items()}
            steps = {int(k): StepEngine(str(e["file"]), str(e["refit_from"]))
                     for k, e in (entry.get("steps") or {}).items()}
            sets.append(EngineSet(str(entry["gpu"]), str(entry["tensorrt"]), str(entry["precision"]),
                                  bool(entry.get("stripped", True)), engines,
                                  int(entry.get("max_batch", D.MAX_BATCH)), steps))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise BundleError(f"manifest extra.engines is malformed: {type(e).__name__}: {e}") from None
    return tuple(sets)
