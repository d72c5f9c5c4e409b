"""The bundle manifest: what ``ffn-export`` writes and what ``FFNRuntime`` verifies before use.

A bundle is a directory::

    model.ffn/
      manifest.json     this file's schema (format "ffn-bundle", FORMAT_VERSION)
      weights.bin       every shared tensor exactly once (ONNX external data)
      f4.onnx, f8.onnx  one graph per frame count, referencing weights.bin, carrying only its own
                        small per-sub-network tensors
      step_subnet0.onnx ...  causal models only: one step graph per sub-network (``StepSpec``), same weights.bin
      engines/          optional TensorRT engines (built on the target device)

Both sides use this one module (it is torch-free), so the format has one definition.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

from . import validate as V
from .atomic import atomic_write_bytes
from .errors import BundleError
from .files import open_regular, parse_json, read_regular
from .onnx_refs import GraphInfo, read_graph_info

FORMAT = "ffn-bundle"
FORMAT_VERSION = 2  # 2 adds MEANING_KEY; version 1 bundles (without it) still open
READ_VERSIONS = (1, 2)
MEANING_KEY = "meaning_sha256"
MANIFEST_NAME = "manifest.json"


@dataclasses.dataclass(frozen=True)
class GraphEntry:
    """One exported ONNX graph: serves ``frames`` input frames with sub-network ``subnet``."""

    frames: int
    subnet: int
    file: str
    dynamic_frames: bool = False


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """What a graph takes: float32 ``layout`` (N,T,C,H,W) clips, already normalised."""

    name: str
    layout: str
    size: tuple[int, int]  # (height, width) after centre crop
    resize_shorter: int  # shorter side before the centre crop
    mean: tuple[float, float, float]  # RGB, on 0..1 pixel values
    std: tuple[float, float, float]


@dataclasses.dataclass(frozen=True)
class Manifest:
    arch: str
    model_config: dict[str, Any]
    subnet_frame_counts: tuple[int, ...]
    graphs: tuple[GraphEntry, ...]
    weights_file: str
    input: InputSpec
    output_name: str
    class_names: tuple[str, ...]
    opset: int
    files: dict[str, dict[str, Any]]  # relative path -> {"size": int, "sha256": str}
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)  # exporter notes, engines, ...

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d = {"format": FORMAT, "format_version": FORMAT_VERSION, **d}
        return {**d, MEANING_KEY: meaning_digest(d)}

    @staticmethod
    def from_json(d: Any) -> Manifest:
        """The manifest a JSON object describes, every field checked (types, ranges, consistency)."""
        if not isinstance(d, dict):
            raise BundleError("manifest is not a JSON object")
        if d.get("format") != FORMAT:
            raise BundleError(f"not an ffn-edge bundle manifest (format={d.get('format')!r})")
        version = d.get("format_version")
        if isinstance(version, bool) or version not in READ_VERSIONS:
            raise BundleError(
                f"bundle format version {V._show(version)} is not supported "
                f"(this ffn-edge reads versions {', '.join(map(str, READ_VERSIONS))}); re-export the bundle"
            )
        try:
            m = _parse({k: v for k, v in d.items() if k != MEANING_KEY})
        except KeyError as e:
            raise BundleError(f"manifest is malformed: missing key {e}") from None
        except ValueError as e:
            raise BundleError(f"manifest is malformed: {e}") from None
        if version >= 2 and d.get(MEANING_KEY) != meaning_digest(d):
            raise BundleError("what decides the results (graphs and their frame counts, preprocessing, weights) was "
                              "edited after export (its digest does not match); only class names and descriptions "
                              "may be edited: re-export the bundle")
        return m

    def graph_for(self, frames: int) -> GraphEntry:
        for g in self.graphs:
            if g.frames == frames:
                return g
        raise KeyError(frames)


# What a user may edit without changing any number a bundle produces: everything else at the top level
# (and these keys of "extra") is covered by MEANING_KEY.
USER_EDITABLE = ("class_names", "extra", MEANING_KEY)


def meaning_digest(d: dict[str, Any]) -> str:
    """sha256 of what decides the numbers: graph <-> frame-count mapping, preprocessing, model config,
    file hashes (weights, graphs), step and INT8 specs. Class names and free-form notes are left out."""
    extra = d.get("extra") if isinstance(d.get("extra"), dict) else {}
    core = {k: v for k, v in d.items() if k not in USER_EDITABLE}
    core["extra"] = {k: extra[k] for k in ("frame_map", STEP_KEY, PRECISION_KEY, QUANT_KEY) if k in extra}
    try:
        text = json.dumps(core, sort_keys=True, separators=(",", ":"), allow_nan=True, default=str)
    except (TypeError, ValueError):  # not JSON-shaped: cannot match any digest
        return ""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def seal(d: dict[str, Any]) -> dict[str, Any]:
    """``d`` (a manifest as JSON) with its digest recomputed: for a tool that changes it on purpose."""
    return {**d, MEANING_KEY: meaning_digest(d)}


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

    def for_subnet(self, subnet: int) -> StepGraph:
        for g in self.graphs:
            if g.subnet == subnet:
                return g
        raise KeyError(subnet)


STEP_KEY = "step"  # key of the StepSpec in manifest.extra


def step_spec(m: Manifest) -> StepSpec | None:
    """The StepSpec ``m.extra["step"]`` describes (None when absent), every field checked (BundleError)."""
    if STEP_KEY not in m.extra:
        return None
    try:
        return _parse_step(_obj("extra.step", m.extra[STEP_KEY]), m)
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


def precision(m: Manifest) -> str:
    """The bundle's precision, "fp32" or "int8" (BundleError when the field is bad)."""
    try:
        return V.check_choice("extra.precision", m.extra.get(PRECISION_KEY, "fp32"), V.PRECISIONS)
    except ValueError as e:
        raise BundleError(f"manifest is malformed: {e}") from None


def quant_spec(m: Manifest) -> QuantSpec | None:
    """The QuantSpec of an INT8 bundle (None for fp32), every field checked (BundleError)."""
    p = precision(m)
    if p == "fp32":
        if QUANT_KEY in m.extra:
            raise BundleError("manifest is malformed: extra.quantization in a bundle whose precision is fp32")
        return None
    try:
        d = _obj("extra.quantization", m.extra[QUANT_KEY])
        c = _obj("extra.quantization.calibration", d["calibration"])
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


def _parse_step(d: dict[str, Any], m: Manifest) -> StepSpec:
    if m.model_config.get("shift", V.DEFAULT_SHIFT) != "causal":
        raise ValueError("step graphs need a causal model (model_config.shift is not 'causal')")
    frame = V.check_str("input", d["input"], 255)
    logits = V.check_str("output", d["output"], 255)
    graphs, subnets = [], set()
    for i, g in enumerate(V.check_list("graphs", d["graphs"], 1, len(m.subnet_frame_counts))):
        g = _obj(f"graphs[{i}]", g)
        k = V.check_int(f"graphs[{i}].subnet", g["subnet"], 0, len(m.subnet_frame_counts) - 1)
        if k in subnets:
            raise ValueError(f"two step graphs for sub-network {k}")
        subnets.add(k)
        buffers = []
        for j, b in enumerate(V.check_list(f"graphs[{i}].buffers", g["buffers"], 1, V.MAX_STEP_BUFFERS)):
            b = _obj(f"graphs[{i}].buffers[{j}]", b)
            at = f"graphs[{i}].buffers[{j}]"
            shape = V.check_list(f"{at}.shape", b["shape"], 3, 3)
            buffers.append(StepBuffer(
                input=V.check_str(f"{at}.input", b["input"], 255),
                output=V.check_str(f"{at}.output", b["output"], 255),
                shape=(V.check_int(f"{at}.shape[0]", shape[0], 1, V.MAX_BUFFER_CHANNELS),
                       V.check_int(f"{at}.shape[1]", shape[1], 1, V.MAX_INPUT_SIZE),
                       V.check_int(f"{at}.shape[2]", shape[2], 1, V.MAX_INPUT_SIZE)),
            ))
        ins, outs = [frame, *(b.input for b in buffers)], [logits, *(b.output for b in buffers)]
        if len(set(ins)) != len(ins) or len(set(outs)) != len(outs):
            raise ValueError(f"graphs[{i}]: input or output names repeat")
        graphs.append(StepGraph(k, V.check_str(f"graphs[{i}].file", g["file"], 255), tuple(buffers)))
    return StepSpec(frame, logits, tuple(graphs))


def _obj(name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be an object, got {type(value).__name__}")
    return value


def _parse(d: dict[str, Any]) -> Manifest:
    """Build a Manifest from checked values; ValueError/KeyError name the first bad field."""
    config = V.check_model_config(d["model_config"])
    arch = V.check_str("arch", d["arch"], 64)
    if config["arch"] != arch:
        raise ValueError(f"arch {arch!r} differs from model_config.arch {config['arch']!r}")
    counts = V.check_frame_counts("subnet_frame_counts", d["subnet_frame_counts"])
    if "frame_counts" in config and tuple(config["frame_counts"]) != counts:
        raise ValueError(f"subnet_frame_counts {list(counts)} differ from model_config.frame_counts")
    graphs = []
    for i, g in enumerate(V.check_list("graphs", d["graphs"], 1, V.MAX_FRAME_COUNT)):
        g = _obj(f"graphs[{i}]", g)
        unknown = sorted(set(g) - {"frames", "subnet", "file", "dynamic_frames"})
        if unknown:
            raise ValueError(f"graphs[{i}] has unknown keys {unknown}")
        graphs.append(GraphEntry(
            frames=V.check_int(f"graphs[{i}].frames", g["frames"], 1, V.MAX_FRAME_COUNT),
            subnet=V.check_int(f"graphs[{i}].subnet", g["subnet"], 0, len(counts) - 1),
            file=V.check_str(f"graphs[{i}].file", g["file"], 255),
            dynamic_frames=V.check_bool(f"graphs[{i}].dynamic_frames", g.get("dynamic_frames", False)),
        ))
    frames = [g.frames for g in graphs]
    if len(set(frames)) != len(frames):
        raise ValueError(f"two graphs serve the same frame count ({sorted(frames)})")
    inp = _obj("input", d["input"])
    size = V.check_list("input.size", inp["size"], 2, 2)
    height = V.check_int("input.size[0]", size[0], V.MIN_INPUT_SIZE, V.MAX_INPUT_SIZE)
    width = V.check_int("input.size[1]", size[1], V.MIN_INPUT_SIZE, V.MAX_INPUT_SIZE)
    V.check_preprocessing(max(height, width), inp["resize_shorter"], inp["mean"], inp["std"])
    if inp["layout"] != "NTCHW":
        raise ValueError(f"input.layout must be 'NTCHW', got {inp['layout']!r}")
    files = {}
    for rel, entry in _obj("files", d["files"]).items():
        entry = _obj(f"files[{rel!r}]", entry)
        sha = entry.get("sha256")
        if not isinstance(sha, str) or len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise ValueError(f"files[{rel!r}].sha256 must be 64 lowercase hex digits")
        files[rel] = {**entry, "size": V.check_int(f"files[{rel!r}].size", entry.get("size"), 0, 1 << 50)}
    if not 1 <= len(files) <= V.MAX_FILES:
        raise ValueError(f"files must list 1..{V.MAX_FILES} files, got {len(files)}")
    return Manifest(
        arch=arch,
        model_config=config,
        subnet_frame_counts=counts,
        graphs=tuple(graphs),
        weights_file=V.check_str("weights_file", d["weights_file"], 255),
        input=InputSpec(
            name=V.check_str("input.name", inp["name"], 255),
            layout="NTCHW",
            size=(height, width),
            resize_shorter=inp["resize_shorter"],
            mean=tuple(float(v) for v in inp["mean"]),
            std=tuple(float(v) for v in inp["std"]),
        ),
        output_name=V.check_str("output_name", d["output_name"], 255),
        class_names=tuple(V.check_class_names(d["class_names"], config["num_classes"])),
        opset=V.check_int("opset", d["opset"], 1, V.MAX_OPSET),
        files=files,
        extra=dict(_obj("extra", d.get("extra", {}))),
    )


def file_entry(path: Path) -> dict[str, Any]:
    """Size and sha256 of one regular file, streamed (weight files can be hundreds of MB)."""
    h = hashlib.sha256()
    fd = open_regular(Path(path), BundleError)
    with os.fdopen(fd, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
        size = os.fstat(f.fileno()).st_size
    return {"size": size, "sha256": h.hexdigest()}


def _inside(root: Path, rel: str) -> Path:
    """``rel`` under ``root``: a plain relative path that stays inside and crosses no symlink.

    Existing components must be directories (the last one a regular file); a path that does not
    exist yet (an engine about to be built) is returned as is. The bundle directory itself may be
    a symlink (only what is inside it is checked).
    """
    if not isinstance(rel, str) or not rel or "\0" in rel or os.path.isabs(rel) or "\\" in rel:
        raise BundleError(f"manifest path {rel!r} is not a relative path inside the bundle")
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise BundleError(f"manifest path {rel!r} leaves the bundle directory or is not normalised")
    base = root.resolve()
    p = base
    for i, part in enumerate(parts):
        p = p / part
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            return p
        except OSError as e:
            raise BundleError(f"{root}: {rel} cannot be read ({e.strerror})") from None
        last = i == len(parts) - 1
        if stat.S_ISLNK(st.st_mode):
            raise BundleError(f"{root}: {rel} is or crosses a symlink (bundles hold regular files only)")
        if not last and not stat.S_ISDIR(st.st_mode):
            raise BundleError(f"{root}: {rel}: {part} is not a directory")
        if last and not stat.S_ISREG(st.st_mode):
            raise BundleError(f"{root}: {rel} is not a regular file")
    return p


def load_manifest(bundle: str | os.PathLike[str], verify: bool = True) -> Manifest:
    """Read and check ``manifest.json``; with ``verify`` check every listed file's size and sha256.

    Every graph, the weight file and every external data file a graph refers to must be listed;
    graphs must declare the manifest's input and output names and class count; every path must be
    a regular file inside the bundle. The manifest must be a regular file (not a symlink, FIFO, ...)
    of at most MAX_JSON_BYTES, nested at most MAX_JSON_DEPTH deep.
    """
    root = Path(bundle)
    if not root.is_dir():
        raise BundleError(f"{root}: bundle directory not found")
    mpath = root / MANIFEST_NAME
    if not os.path.lexists(mpath):
        raise BundleError(f"{root}: no {MANIFEST_NAME} (not an ffn-edge bundle)")
    raw = parse_json(read_regular(mpath, V.MAX_JSON_BYTES, BundleError), str(mpath), BundleError)
    try:
        m = Manifest.from_json(raw)
    except BundleError as e:
        raise BundleError(f"{mpath}: {e}") from None
    try:
        step = step_spec(m)
        quant_spec(m)
    except BundleError as e:
        raise BundleError(f"{mpath}: {e}") from None
    needed = {m.weights_file, *(g.file for g in m.graphs), *(g.file for g in (step.graphs if step else ()))}
    for rel in sorted(needed | set(m.files)):
        _inside(root, rel)
        if rel not in m.files:
            raise BundleError(f"{mpath}: {rel} is used but has no size/sha256 entry")
    if verify:
        for rel, want in sorted(m.files.items()):
            p = _inside(root, rel)
            if not p.exists():
                raise BundleError(f"{root}: {rel} is listed in the manifest but missing")
            got = file_entry(p)
            if got["size"] != want["size"] or got["sha256"] != want["sha256"]:
                raise BundleError(
                    f"{root}: {rel} does not match the manifest (size {got['size']} vs "
                    f"{want['size']}, sha256 mismatch): the file was modified or truncated"
                )
    for file in sorted({g.file for g in m.graphs}):
        info = _check_graph(root, file, m, (m.input.name,), m.output_name)
        _check_clip_input(root, file, m, info)
    for g in step.graphs if step else ():
        info = _check_graph(root, g.file, m, (step.input_name, *(b.input for b in g.buffers)), step.output_name)
        extra = sorted(set(info.inputs) - {step.input_name, *(b.input for b in g.buffers)})
        if extra:
            raise BundleError(f"{root}: {g.file} has inputs the manifest does not describe: {', '.join(extra)}")
        for b in g.buffers:
            dims = info.outputs.get(b.output)
            if dims is None:
                raise BundleError(f"{root}: {g.file} has no output {b.output!r}")
            if len(dims) != 4 or any(isinstance(d, int) and d != s for d, s in zip(dims[1:], b.shape, strict=True)):
                raise BundleError(f"{root}: {g.file}: output {b.output!r} is {list(dims)}, the manifest says "
                                  f"(N, {', '.join(map(str, b.shape))})")
    return m


def _check_clip_input(root: Path, rel: str, m: Manifest, info: GraphInfo) -> None:
    """The graph's declared clip input is (N, T, 3, H, W) with the manifest's size and, for a graph with a
    fixed frame dimension, the frame count every manifest entry routes to it (else the first run fails
    inside the backend with many lines)."""
    dims = info.input_dims.get(m.input.name, ())
    if not dims:
        return  # a graph without shape information: nothing declared to contradict
    where = f"{root}: {rel}: input {m.input.name!r} is {list(dims)}"
    if len(dims) != 5:
        raise BundleError(f"{where}, the manifest says (N, T, 3, H, W)")
    want = {2: 3, 3: m.input.size[0], 4: m.input.size[1]}
    for axis, n in want.items():
        if isinstance(dims[axis], int) and dims[axis] != n:
            raise BundleError(f"{where}, the manifest says (N, T, 3, {m.input.size[0]}, {m.input.size[1]})")
    for g in m.graphs:
        if g.file == rel and isinstance(dims[1], int) and dims[1] != g.frames:
            raise BundleError(f"{where}: it takes {dims[1]} frames, the manifest routes {g.frames} to it")


def _check_graph(root: Path, rel: str, m: Manifest, inputs: tuple[str, ...], output: str) -> GraphInfo:
    """The graph has ``inputs`` and ``output`` (logits of the manifest's classes); its external files are listed."""
    path = _inside(root, rel)
    if not path.exists():
        raise BundleError(f"{root}: {rel} is listed in the manifest but missing")
    try:
        info = read_graph_info(read_regular(path, m.files[rel]["size"], BundleError))
    except ValueError as e:
        raise BundleError(f"{root}: {rel} is not a readable ONNX graph ({e})") from None
    for name in inputs:
        if name not in info.inputs:
            raise BundleError(f"{root}: {rel} has no input {name!r} (inputs: {', '.join(info.inputs)})")
    if output not in info.outputs:
        raise BundleError(f"{root}: {rel} has no output {output!r} (outputs: {', '.join(info.outputs)})")
    dims = info.outputs[output]
    if dims and isinstance(dims[-1], int) and dims[-1] != len(m.class_names):
        raise BundleError(f"{root}: {rel} outputs {dims[-1]} classes but the manifest names {len(m.class_names)}")
    for location in sorted(info.external_files):
        if location not in m.files:
            raise BundleError(f"{root}: {rel} reads external data {location!r}, which the manifest does not list")
        _inside(root, location)
    return info


def resolve(bundle: str | os.PathLike[str], rel: str) -> Path:
    """Absolute path of a manifest-relative file, checked to stay inside the bundle (no symlinks)."""
    return _inside(Path(bundle), rel)


def write_manifest(bundle: str | os.PathLike[str], manifest: Manifest) -> Path:
    """Write ``manifest.json`` (sorted, indented) into ``bundle`` atomically (never half-written)."""
    path = Path(bundle) / MANIFEST_NAME
    atomic_write_bytes(path, (json.dumps(manifest.to_json(), indent=2, sort_keys=True) + "\n").encode("utf-8"))
    return path
