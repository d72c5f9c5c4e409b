"""What an ONNX graph refers to, read from its protobuf wire format (no onnx package, no torch).

The runtime must know, before ONNX Runtime opens a graph, which external data files the graph
will read (each must be listed and hashed in the manifest) and the names and output shape it
declares (they must match the manifest). This walks ``ModelProto`` -> graphs, nodes, attributes,
sub-graphs, functions and tensors iteratively with a depth limit, skipping tensor payloads, and
collects ``TensorProto.external_data["location"]``, the main graph's inputs and outputs.
Field numbers are those of ``onnx/onnx.proto`` (IR version 10).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

MAX_DEPTH = 64

# message kind -> {field number: message kind of that (length-delimited) field}
_CHILDREN: dict[str, dict[int, str]] = {
    "model": {7: "graph", 20: "training", 25: "function"},
    "training": {1: "subgraph", 2: "subgraph"},
    "graph": {1: "node", 5: "tensor", 15: "sparse"},
    "subgraph": {1: "node", 5: "tensor", 15: "sparse"},
    "function": {7: "node"},
    "node": {5: "attribute"},
    "attribute": {5: "tensor", 6: "subgraph", 10: "tensor", 11: "subgraph", 22: "sparse", 23: "sparse"},
    "sparse": {1: "tensor", 2: "tensor"},
    "tensor": {13: "entry"},
}


@dataclasses.dataclass(frozen=True)
class GraphInfo:
    inputs: tuple[str, ...]
    outputs: dict[str, tuple[int | str | None, ...]]  # name -> dims (int, symbolic name, or None: unknown)
    external_files: frozenset[str]  # every external data "location"
    input_dims: dict[str, tuple[int | str | None, ...]] = dataclasses.field(default_factory=dict)


# ONNX TensorProto.DataType -> numpy dtype (the types an exporter writes for weights).
_ONNX_DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 5: np.int16, 6: np.int32, 7: np.int64,
                9: np.bool_, 10: np.float16, 11: np.float64}


@dataclasses.dataclass(frozen=True)
class ExternalTensor:
    """An initializer stored in an external file: where its bytes are and what they are."""

    name: str
    dtype: Any
    shape: tuple[int, ...]
    location: str
    offset: int
    length: int


def _varint(buf: memoryview, i: int, end: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if i >= end or shift > 63:
            raise ValueError("truncated or malformed varint")
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def _fields(buf: memoryview, start: int, end: int):
    """(field number, wire type, value) of one message; value is (start, end) for length-delimited."""
    i = start
    while i < end:
        key, i = _varint(buf, i, end)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i, end)
            yield field, wire, value
        elif wire == 2:
            n, i = _varint(buf, i, end)
            if i + n > end:
                raise ValueError("length-delimited field runs past its message")
            yield field, wire, (i, i + n)
            i += n
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
            if i > end:
                raise ValueError("fixed-width field runs past its message")
        else:
            raise ValueError(f"unsupported wire type {wire}")


def _text(buf: memoryview, span: tuple[int, int]) -> str:
    return bytes(buf[span[0]:span[1]]).decode("utf-8", errors="strict")


def _value_info(buf: memoryview, span: tuple[int, int]) -> tuple[str, tuple[int | str | None, ...]]:
    """ValueInfoProto -> (name, dims) of a tensor type."""
    name, dims = "", []
    for f, w, v in _fields(buf, *span):
        if f == 1 and w == 2:
            name = _text(buf, v)
        elif f == 2 and w == 2:  # TypeProto
            for f2, w2, v2 in _fields(buf, *v):
                if f2 == 1 and w2 == 2:  # TypeProto.Tensor
                    for f3, w3, v3 in _fields(buf, *v2):
                        if f3 == 2 and w3 == 2:  # TensorShapeProto
                            for f4, w4, v4 in _fields(buf, *v3):
                                if f4 == 1 and w4 == 2:  # Dimension
                                    dim: int | str | None = None
                                    for f5, w5, v5 in _fields(buf, *v4):
                                        if f5 == 1 and w5 == 0:
                                            dim = v5
                                        elif f5 == 2 and w5 == 2:
                                            dim = _text(buf, v5)
                                    dims.append(dim)
    return name, tuple(dims)


def read_graph_info(data: bytes) -> GraphInfo:
    """Inputs, outputs and external data files of a serialized ONNX ModelProto (ValueError if malformed)."""
    buf = memoryview(data)
    inputs: list[str] = []
    outputs: dict[str, tuple[int | str | None, ...]] = {}
    input_dims: dict[str, tuple[int | str | None, ...]] = {}
    files: set[str] = set()
    stack = [("model", 0, len(buf), 0)]
    try:
        while stack:
            kind, start, end, depth = stack.pop()
            if depth > MAX_DEPTH:
                raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
            if kind == "entry":
                key = value = None
                for f, w, v in _fields(buf, start, end):
                    if w == 2 and f in (1, 2):
                        key, value = (_text(buf, v), value) if f == 1 else (key, _text(buf, v))
                if key == "location":
                    files.add(value or "")
                continue
            children = _CHILDREN[kind]
            for f, w, v in _fields(buf, start, end):
                if w != 2:
                    continue
                if kind == "graph" and f == 11:
                    name, dims = _value_info(buf, v)
                    inputs.append(name)
                    input_dims[name] = dims
                elif kind == "graph" and f == 12:
                    name, dims = _value_info(buf, v)
                    outputs[name] = dims
                elif f in children:
                    stack.append((children[f], v[0], v[1], depth + 1))
    except UnicodeDecodeError:
        raise ValueError("a name is not valid UTF-8") from None
    return GraphInfo(tuple(inputs), outputs, frozenset(files), input_dims)


def _entry(buf: memoryview, span: tuple[int, int]) -> tuple[str, str]:
    """StringStringEntryProto -> (key, value)."""
    key = value = ""
    for f, w, v in _fields(buf, *span):
        if w == 2 and f == 1:
            key = _text(buf, v)
        elif w == 2 and f == 2:
            value = _text(buf, v)
    return key, value


def _external_tensor(buf: memoryview, span: tuple[int, int]) -> ExternalTensor | None:
    """TensorProto -> ExternalTensor, or None when its data is inline (or of a type weights never have)."""
    dims: list[int] = []
    name, dtype, external, location_kind = "", 0, {}, 0
    for f, w, v in _fields(buf, *span):
        if f == 1 and w == 0:
            dims.append(v)
        elif f == 1 and w == 2:  # packed dims
            i, end = v
            while i < end:
                d, i = _varint(buf, i, end)
                dims.append(d)
        elif f == 2 and w == 0:
            dtype = v
        elif f == 8 and w == 2:
            name = _text(buf, v)
        elif f == 13 and w == 2:
            key, value = _entry(buf, v)
            external[key] = value
        elif f == 14 and w == 0:
            location_kind = v
    if location_kind != 1 or dtype not in _ONNX_DTYPES:  # 1 = TensorProto.EXTERNAL
        return None
    np_dtype = np.dtype(_ONNX_DTYPES[dtype])
    shape = tuple(dims)
    length = int(external.get("length", int(np.prod(shape, dtype=np.int64)) * np_dtype.itemsize))
    return ExternalTensor(name, np_dtype, shape, external.get("location", ""), int(external.get("offset", 0)), length)


def read_external_tensors(data: bytes) -> list[ExternalTensor]:
    """The main graph's initializers stored in external files (ValueError if malformed)."""
    buf = memoryview(data)
    found: list[ExternalTensor] = []
    try:
        for f, w, v in _fields(buf, 0, len(buf)):
            if f == 7 and w == 2:  # ModelProto.graph
                for f2, w2, v2 in _fields(buf, *v):
                    if f2 == 5 and w2 == 2 and (t := _external_tensor(buf, v2)) is not None:  # initializer
                        found.append(t)
    except UnicodeDecodeError:
        raise ValueError("a name is not valid UTF-8") from None
    return found


QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


def _inline_floats(buf: memoryview, span: tuple[int, int]) -> tuple[str, np.ndarray] | None:
    """TensorProto -> (name, float32 values) when it is a float32 tensor stored inline, else None."""
    name, dtype, raw, packed = "", 0, None, None
    for f, w, v in _fields(buf, *span):
        if f == 2 and w == 0:
            dtype = v
        elif f == 8 and w == 2:
            name = _text(buf, v)
        elif f == 9 and w == 2:
            raw = bytes(buf[v[0]:v[1]])
        elif f == 4 and w == 2:
            packed = bytes(buf[v[0]:v[1]])
    data = raw if raw is not None else packed
    if dtype != 1 or data is None or len(data) % 4:
        return None
    return name, np.frombuffer(data, dtype="<f4")


def read_qdq_scales(data: bytes) -> dict[str, np.ndarray]:
    """The main graph's QuantizeLinear / DequantizeLinear scales stored inline, by name (ValueError if malformed)."""
    buf = memoryview(data)
    scale_names: set[str] = set()
    floats: dict[str, np.ndarray] = {}
    try:
        for f, w, v in _fields(buf, 0, len(buf)):
            if f != 7 or w != 2:  # ModelProto.graph
                continue
            for f2, w2, v2 in _fields(buf, *v):
                if f2 == 1 and w2 == 2:  # NodeProto: input 1, op_type 4
                    parts = [(f3, _text(buf, v3)) for f3, w3, v3 in _fields(buf, *v2) if w3 == 2 and f3 in (1, 4)]
                    inputs = [t for f3, t in parts if f3 == 1]
                    if any(f3 == 4 and t in QDQ_OPS for f3, t in parts) and len(inputs) > 1:
                        scale_names.add(inputs[1])
                elif f2 == 5 and w2 == 2 and (t := _inline_floats(buf, v2)) is not None:  # initializer
                    floats[t[0]] = t[1]
    except UnicodeDecodeError:
        raise ValueError("a name is not valid UTF-8") from None
    return {name: floats[name] for name in sorted(scale_names & set(floats))}
