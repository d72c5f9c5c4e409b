"""The bundle manifest: what ``ffn-export`` writes and what ``FFNRuntime`` verifies before use.

A bundle is a directory::

    model.ffn/
      manifest.json     this file's schema (format "ffn-bundle", FORMAT_VERSION)
      weights.bin       every shared tensor exactly once (ONNX external data)
      f4.onnx, f8.onnx  one graph per frame count, referencing weights.bin, carrying only its own
                        small per-sub-network tensors
      engines/          optional TensorRT engines (built on the target device)

Both sides use this one module (it is torch-free), so the format has one definition.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from .atomic import atomic_write_bytes
from .errors import BundleError

FORMAT = "ffn-bundle"
FORMAT_VERSION = 1
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
        return {"format": FORMAT, "format_version": FORMAT_VERSION, **d}

    @staticmethod
    def from_json(d: dict[str, Any]) -> Manifest:
        if d.get("format") != FORMAT:
            raise BundleError(f"not an ffn-edge bundle manifest (format={d.get('format')!r})")
        if d.get("format_version") != FORMAT_VERSION:
            raise BundleError(
                f"bundle format version {d.get('format_version')!r} is not supported "
                f"(this ffn-edge reads version {FORMAT_VERSION}); re-export the bundle"
            )
        try:
            inp = d["input"]
            return Manifest(
                arch=str(d["arch"]),
                model_config=dict(d["model_config"]),
                subnet_frame_counts=tuple(int(n) for n in d["subnet_frame_counts"]),
                graphs=tuple(GraphEntry(**g) for g in d["graphs"]),
                weights_file=str(d["weights_file"]),
                input=InputSpec(
                    name=str(inp["name"]),
                    layout=str(inp["layout"]),
                    size=(int(inp["size"][0]), int(inp["size"][1])),
                    resize_shorter=int(inp["resize_shorter"]),
                    mean=tuple(float(v) for v in inp["mean"]),
                    std=tuple(float(v) for v in inp["std"]),
                ),
                output_name=str(d["output_name"]),
                class_names=tuple(str(c) for c in d["class_names"]),
                opset=int(d["opset"]),
                files={str(k): dict(v) for k, v in d["files"].items()},
                extra=dict(d.get("extra", {})),
            )
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise BundleError(f"manifest is malformed: {type(e).__name__}: {e}") from None

    def graph_for(self, frames: int) -> GraphEntry:
        for g in self.graphs:
            if g.frames == frames:
                return g
        raise KeyError(frames)


def file_entry(path: Path) -> dict[str, Any]:
    """Size and sha256 of one file, streamed (weight files can be hundreds of MB)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return {"size": path.stat().st_size, "sha256": h.hexdigest()}


def _inside(root: Path, rel: str) -> Path:
    """Resolve ``rel`` under ``root``; refuse absolute paths and anything that leaves the bundle."""
    if os.path.isabs(rel) or not rel:
        raise BundleError(f"manifest path {rel!r} is not a relative path inside the bundle")
    p = (root / rel).resolve()
    if root.resolve() not in p.parents:
        raise BundleError(f"manifest path {rel!r} leaves the bundle directory")
    return p


def load_manifest(bundle: str | os.PathLike[str], verify: bool = True) -> Manifest:
    """Read ``manifest.json``; with ``verify`` check every listed file's size and sha256.

    Every graph and the weight file must be listed, and every path must stay inside the bundle.
    """
    root = Path(bundle)
    if not root.is_dir():
        raise BundleError(f"{root}: bundle directory not found")
    mpath = root / MANIFEST_NAME
    try:
        raw = json.loads(mpath.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{root}: no {MANIFEST_NAME} (not an ffn-edge bundle)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BundleError(f"{mpath}: not valid JSON ({e})") from None
    if not isinstance(raw, dict):
        raise BundleError(f"{mpath}: expected a JSON object")
    try:
        m = Manifest.from_json(raw)
    except BundleError as e:
        raise BundleError(f"{mpath}: {e}") from None
    needed = {m.weights_file, *(g.file for g in m.graphs)}
    for rel in sorted(needed | set(m.files)):
        _inside(root, rel)
        if rel not in m.files:
            raise BundleError(f"{mpath}: {rel} is used but has no size/sha256 entry")
    if verify:
        for rel, want in sorted(m.files.items()):
            p = _inside(root, rel)
            if not p.is_file():
                raise BundleError(f"{root}: {rel} is listed in the manifest but missing")
            got = file_entry(p)
            if got["size"] != want.get("size") or got["sha256"] != want.get("sha256"):
                raise BundleError(
                    f"{root}: {rel} does not match the manifest (size {got['size']} vs "
                    f"{want.get('size')}, sha256 mismatch): the file was modified or truncated"
                )
    return m


def resolve(bundle: str | os.PathLike[str], rel: str) -> Path:
    """Absolute path of a manifest-relative file, checked to stay inside the bundle."""
    return _inside(Path(bundle), rel)


def write_manifest(bundle: str | os.PathLike[str], manifest: Manifest) -> Path:
    """Write ``manifest.json`` (sorted, indented) into ``bundle`` atomically (never half-written)."""
    path = Path(bundle) / MANIFEST_NAME
    atomic_write_bytes(path, (json.dumps(manifest.to_json(), indent=2, sort_keys=True) + "\n").encode("utf-8"))
    return path
