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
import functools
import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

from ..core import validate as V
from ..core.atomic import atomic_write_bytes
from ..core.errors import BundleError
from ..core.files import open_regular, parse_json, read_regular
from .accuracy import AccuracySpec, parse_accuracy
from .identify import file_given_as_bundle, format_version_message
from .onnx_refs import GraphInfo, read_graph_info
from .quant_scales import check_scales
from .sections import (
    PRECISION_KEY,
    QUANT_KEY,
    STEP_KEY,
    EngineSet,
    QuantSpec,
    StepSpec,
    as_object,
    parse_engines,
    parse_precision,
    parse_quantization,
    parse_step,
)

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
            raise BundleError(format_version_message(version, FORMAT_VERSION, d))
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

    # The optional sections, parsed once on first use (``load_manifest`` touches each, so a bundle
    # with a malformed section is refused at open, not at the first online stream).
    @functools.cached_property
    def step(self) -> StepSpec | None:
        """The step graphs (causal bundles), or None."""
        return parse_step(self.extra, self.model_config, self.subnet_frame_counts)

    @functools.cached_property
    def precision(self) -> str:
        """"fp32" or "int8"."""
        return parse_precision(self.extra)

    @functools.cached_property
    def quantization(self) -> QuantSpec | None:
        """How an INT8 bundle was quantized, or None (fp32)."""
        return parse_quantization(self.extra)

    @functools.cached_property
    def accuracy(self) -> AccuracySpec | None:
        """Measured top-1 per frame count (``ffn-export --accuracy``), None when the bundle has none."""
        return parse_accuracy(self.extra)

    @functools.cached_property
    def engine_sets(self) -> tuple[EngineSet, ...]:
        """The TensorRT engine sets built for this bundle (``ffn-export engines``), possibly none."""
        return parse_engines(self.extra)

    def graph_for(self, frames: int) -> GraphEntry:
        for g in self.graphs:
            if g.frames == frames:
                return g
        raise KeyError(frames)


# What a user may edit without changing any number a bundle produces: everything else at the top level
# (and these keys of "extra") is covered by MEANING_KEY.
USER_EDITABLE = ("class_names", "extra", MEANING_KEY)
MEANING_EXTRA = ("frame_map", STEP_KEY, PRECISION_KEY, QUANT_KEY)  # the parts of "extra" that decide numbers


def meaning_digest(d: dict[str, Any]) -> str:
    """sha256 of what decides the numbers: graph <-> frame-count mapping, preprocessing, model config,
    file hashes (weights, graphs), step and INT8 specs. Class names and free-form notes are left out."""
    extra = d.get("extra") if isinstance(d.get("extra"), dict) else {}
    core = {k: v for k, v in d.items() if k not in USER_EDITABLE}
    core["extra"] = {k: extra[k] for k in MEANING_EXTRA if k in extra}
    try:
        text = json.dumps(core, sort_keys=True, separators=(",", ":"), allow_nan=True, default=str)
    except (TypeError, ValueError):  # not JSON-shaped: cannot match any digest
        return ""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def seal(d: dict[str, Any]) -> dict[str, Any]:
    """``d`` (a manifest as JSON) with its digest recomputed: for a tool that changes it on purpose."""
    return {**d, MEANING_KEY: meaning_digest(d)}


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
        g = as_object(f"graphs[{i}]", g)
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
    inp = as_object("input", d["input"])
    size = V.check_list("input.size", inp["size"], 2, 2)
    height = V.check_int("input.size[0]", size[0], V.MIN_INPUT_SIZE, V.MAX_INPUT_SIZE)
    width = V.check_int("input.size[1]", size[1], V.MIN_INPUT_SIZE, V.MAX_INPUT_SIZE)
    V.check_preprocessing(max(height, width), inp["resize_shorter"], inp["mean"], inp["std"])
    if inp["layout"] != "NTCHW":
        raise ValueError(f"input.layout must be 'NTCHW', got {inp['layout']!r}")
    files = {}
    for rel, entry in as_object("files", d["files"]).items():
        entry = as_object(f"files[{rel!r}]", entry)
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
        extra=dict(as_object("extra", d.get("extra", {}))),
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
    if root.is_file():
        raise BundleError(file_given_as_bundle(root))
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
        step = m.step
        _ = m.quantization, m.engine_sets, m.accuracy
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
    data = read_regular(path, m.files[rel]["size"], BundleError)
    try:
        info = read_graph_info(data)
    except ValueError as e:
        raise BundleError(f"{root}: {rel} is not a readable ONNX graph ({e})") from None
    if m.precision == "int8":  # every graph of an INT8 bundle, clip and step graphs alike
        check_scales(root, rel, data)
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
