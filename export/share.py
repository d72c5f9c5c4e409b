"""One weight file for all graphs: every shared tensor stored once, as ONNX external data.

Each graph's initializers that are not per-sub-network (``fold.is_per_subnet``), each
sub-network's folded convolution copies (``fold.is_conv_copy``), and per-sub-network constants that
several graphs hold byte for byte (a sub-network's clip and step graphs) are moved out: a
tensor whose bytes were already written points at the same offset (keyed by the bytes alone; its
dtype and shape stay in its graph), anything new is appended. The graphs keep only their small
per-sub-network tensors (norm constants, WA factors, copies' biases) and tiny exporter constants.
Offsets are aligned (4 KiB for tensors of 4 KiB or more, 64 bytes otherwise) so a runtime can map
large tensors straight from the file.

``check_shared`` re-reads a written bundle and proves the claim independently of how it was
written: same name -> same bytes range in every graph, and no two ranges hold the same tensor.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Collection
from pathlib import Path

import onnx
from onnx import numpy_helper
from onnx.external_data_helper import ExternalDataInfo, uses_external_data

from .errors import ExportError
from .fold import is_conv_copy, is_per_subnet

PAGE = 4096
SMALL_ALIGN = 64


def _align(offset: int, nbytes: int) -> int:
    a = PAGE if nbytes >= PAGE else SMALL_ALIGN
    return -(-offset // a) * a


def _point_to(t: onnx.TensorProto, location: str, offset: int, length: int) -> None:
    """Mark ``t`` (data fields already cleared) as ONNX external data at ``location[offset:offset+length]``."""
    del t.external_data[:]
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(length))):
        entry = t.external_data.add()
        entry.key, entry.value = key, value
    t.data_location = onnx.TensorProto.EXTERNAL


@dataclasses.dataclass
class ShareReport:
    """What went where: shared tensors (once) in the weight file, per-graph inline bytes."""

    shared_tensors: int
    shared_bytes: int  # tensor bytes in the weight file (without alignment padding)
    weights_file_bytes: int
    references: int  # initializers, over all graphs, that point into the weight file
    inline_bytes: dict[str, int]  # graph file -> bytes of tensors kept inside it


def _le_bytes(t: onnx.TensorProto) -> bytes:
    """A tensor's data as ONNX stores it (little-endian), whichever field the exporter used."""
    arr = numpy_helper.to_array(t)
    return arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()


def share_weights(
    graphs: dict[str, onnx.ModelProto],
    out_dir: Path,
    weights_name: str,
    param_names: Collection[str] = (),
) -> ShareReport:
    """Write ``out_dir/weights_name`` and point each graph's shared initializers into it (in place).

    Shared = not tagged per-sub-network, and either a model parameter (``param_names``, however
    small, e.g. a 5-class bias) or 64 bytes or more; tiny exporter constants (shapes) stay inline.
    A sub-network's folded convolution copy (``fold.is_conv_copy``) goes to the file too: its name
    is unique to its content, and graphs of one sub-network share it.
    """
    params = set(param_names)
    repeated = _share_repeated_constants(graphs)

    def shared(t: onnx.TensorProto) -> bool:
        if is_conv_copy(t.name) or t.name in repeated:
            return True
        return not is_per_subnet(t.name) and (t.name in params or numpy_helper.to_array(t).nbytes >= SMALL_ALIGN)
    where: dict[bytes, tuple[int, int]] = {}
    refs, inline = 0, {}
    with open(out_dir / weights_name, "wb") as f:
        end = 0
        for file, proto in graphs.items():
            for t in proto.graph.initializer:
                if not shared(t):
                    continue
                data = _le_bytes(t)
                key = hashlib.sha256(data).digest()  # same bytes -> same range, whatever the name
                if key not in where:
                    offset = _align(end, len(data))
                    f.write(b"\0" * (offset - end))
                    f.write(data)
                    end = offset + len(data)
                    where[key] = (offset, len(data))
                offset, length = where[key]
                for field in ("raw_data", "float_data", "double_data", "int32_data", "int64_data"):
                    t.ClearField(field)
                _point_to(t, weights_name, offset, length)
                refs += 1
            inline[file] = sum(len(t.raw_data) for t in proto.graph.initializer if not uses_external_data(t))
    return ShareReport(len(where), sum(n for _, n in where.values()), end, refs, inline)


def _share_repeated_constants(graphs: dict[str, onnx.ModelProto]) -> set[str]:
    """Give per-sub-network constants that several graphs hold byte for byte one name per content.

    A sub-network's clip graph and step graph (``step``), or two frame counts served by one
    sub-network, carry the same norm and WA constants; renamed ``<name>.<sha256 prefix>`` (in the
    graphs, in place) they go to the weight file once instead of inline in every graph. The name
    stays per-sub-network (``is_per_subnet``) and differs between sub-networks, whose bytes differ.
    Returns the new names.
    """
    count: dict[bytes, int] = {}
    for proto in graphs.values():
        for key in {_key(t) for t in proto.graph.initializer if _inline_per_subnet(t)}:
            count[key] = count.get(key, 0) + 1
    renamed: set[str] = set()
    for proto in graphs.values():
        for t in proto.graph.initializer:
            if not _inline_per_subnet(t) or count[_key(t)] < 2:
                continue
            old, t.name = t.name, f"{t.name}.{_key(t).hex()[:16]}"
            for node in proto.graph.node:
                node.input[:] = [t.name if i == old else i for i in node.input]
            renamed.add(t.name)
    return renamed


def _inline_per_subnet(t: onnx.TensorProto) -> bool:
    return is_per_subnet(t.name) and not is_conv_copy(t.name) and numpy_helper.to_array(t).nbytes >= SMALL_ALIGN


def _key(t: onnx.TensorProto) -> bytes:
    return hashlib.sha256(_le_bytes(t) + str(t.data_type).encode() + str(list(t.dims)).encode()).digest()


@dataclasses.dataclass
class SharedStats:
    """What ``check_shared`` found in a bundle on disk."""

    tensors: int  # distinct byte ranges in the weight file
    bytes: int
    names: int  # distinct initializer names stored externally
    references: int


def check_shared(bundle: Path, weights_file: str, graph_files: list[str]) -> SharedStats:
    """Prove each shared tensor is stored once: by name (one range) and by bytes (no duplicates)."""
    ranges_by_name: dict[str, tuple[int, int]] = {}
    refs = 0
    for gf in graph_files:
        proto = onnx.load(str(bundle / gf), load_external_data=False)
        for t in proto.graph.initializer:
            if not uses_external_data(t):
                continue
            info = ExternalDataInfo(t)
            if info.location != weights_file:
                raise ExportError(f"{gf}: tensor {t.name} points to {info.location!r}, not {weights_file!r}")
            rng = (int(info.offset or 0), int(info.length))
            if ranges_by_name.setdefault(t.name, rng) != rng:
                raise ExportError(f"tensor {t.name} is stored twice in {weights_file} (graphs disagree on its offset)")
            refs += 1
    data = (bundle / weights_file).read_bytes()
    seen: dict[bytes, tuple[int, int]] = {}
    ranges = sorted(set(ranges_by_name.values()))
    for (o1, n1), (o2, _) in zip(ranges, ranges[1:], strict=False):
        if o1 + n1 > o2:
            raise ExportError(f"{weights_file}: tensor ranges overlap at offset {o2}")
    for off, n in ranges:
        if off + n > len(data):
            raise ExportError(f"{weights_file}: range {off}+{n} lies past the end of the file ({len(data)} bytes)")
        digest = hashlib.sha256(data[off : off + n]).digest()
        if digest in seen:
            raise ExportError(f"{weights_file}: bytes at {off} and {seen[digest][0]} are one tensor stored twice")
        seen[digest] = (off, n)
    return SharedStats(len(ranges), sum(n for _, n in ranges), len(ranges_by_name), refs)


def check_int8_external(bundle: Path, graph_files: list[str]) -> tuple[int, int]:
    """Prove no graph carries its own copy of an INT8 weight: every INT8 tensor of 64 bytes or more that is
    shared or a sub-network's conv copy lives in the weight file (where ``check_shared`` proves it is
    stored once).

    Returns how many such references there are over all graphs, and how many distinct ranges they use
    (fewer than the distinct names when two names hold the same bytes: a sub-network's folded copy whose
    per-channel symmetric INT8 bytes equal the shared weight's, since a positive per-channel factor
    cancels in ``round(W_c * s_c / (max|W_c| * s_c / 127))``).
    """
    refs, ranges = 0, set()
    for gf in graph_files:
        proto = onnx.load(str(bundle / gf), load_external_data=False)
        for t in proto.graph.initializer:
            if t.data_type != onnx.TensorProto.INT8 or (is_per_subnet(t.name) and not is_conv_copy(t.name)):
                continue
            if uses_external_data(t):
                refs += 1
                info = ExternalDataInfo(t)
                ranges.add((int(info.offset or 0), int(info.length)))
            elif len(t.raw_data) >= SMALL_ALIGN:
                raise ExportError(f"{gf}: INT8 tensor {t.name} is stored inside the graph, not once in the weight file")
    return refs, len(ranges)
