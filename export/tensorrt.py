"""TensorRT engines for a bundle, built on the target device (``ffn-export engines --bundle B``).

Everything TensorRT-specific (names per major, profiles, the build itself, the GPU name) lives in
``runtime/backends/trt_engine.py``, shared with the runtime that loads these engines; this module decides what
to build and records it in the manifest. No torch: it runs on a device.

How weights are shared. A TensorRT engine bakes its constants into its plan, so one engine cannot
switch sub-networks and two engines never share device weights. What is shared is the *file*: every
engine is built weight-stripped (``STRIP_PLAN`` + ``REFIT_IDENTICAL``) and refitted at load time from
its ONNX graph, i.e. from the bundle's one ``weights.bin``. Engines stay a few MB each.

FP16. On TensorRT 10 (``BuilderFlag.FP16`` exists) an fp16 engine is built from the fp32 graph and
refitted from ``weights.bin`` like fp32: nothing extra is stored. TensorRT 11 has no such flag
(networks are strongly typed): the exporter writes an fp16-typed copy of each graph (fp32 inputs
and outputs, cast inside; ``onnxconverter-common``) whose weights go, deduplicated by content, into
ONE ``engines/<key>/weights.fp16.bin`` for all sub-networks; engines are refitted from it. Extra
bytes stored: about half of ``weights.bin`` (once, whatever the number of sub-networks), plus the
small graphs; recorded as ``extra_bytes`` in the manifest entry.

Engines are valid only for the GPU model, TensorRT version and precision they were built with: they
live under ``engines/<key>/`` (``device_key``) and are listed in ``extra["engines"][key]``, with
their hashes in ``files``. A lookup with this device's key finds matching engines or rebuilds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import warnings
from pathlib import Path
from typing import Any

from ..bundle.manifest import Manifest, file_entry, load_manifest, resolve, write_manifest
from ..core import defaults as D
from ..core.atomic import atomic_write_bytes
from ..core.deps import first_missing
from ..core.errors import ConfigError
from ..runtime.backends import trt_engine as trt_mod
from .errors import ExportError

ENGINES_DIR = trt_mod.ENGINES_DIR
device_key = trt_mod.device_key
FP16_WEIGHTS = "weights.fp16.bin"
SMALL_TENSOR = 64  # bytes: smaller initializers (shapes, scalars) stay inside each fp16 graph


def gpu_name(device: int = 0) -> str | None:
    """cudart's name of CUDA device ``device``, or None without cuda-python, driver or GPU (tests skip on None)."""
    try:
        return trt_mod.gpu_name(trt_mod.import_cudart(), device)
    except ConfigError:
        return None


def require(device: int = 0) -> Any:
    """The ``tensorrt`` module when TensorRT, cuda-python and a GPU are all here, else a one-line FFNError."""
    trt = trt_mod.import_tensorrt()
    trt_mod.gpu_name(trt_mod.import_cudart(), device)
    return trt


def _precision(fp16: bool) -> str:
    return "fp16" if fp16 else "fp32"


def write_fp16_graphs(root: Path, m: Manifest, out_dir: Path) -> dict[str, Path]:
    """fp16-typed copies of the bundle's graphs (fp32 I/O) in ``out_dir``, weights in ONE shared file.

    Returns graph file -> its fp16 copy. A weight is stored once however many graphs use it
    (content-addressed, as in ``weights.bin``), so sub-networks still share every shared tensor.
    """
    try:
        import onnx
        from onnx.external_data_helper import set_external_data
        from onnxconverter_common import float16
    except ImportError:
        missing = first_missing(("onnx", "onnxconverter_common")) or "onnx or onnxconverter-common is broken"
        raise ConfigError(f"fp16 engines on TensorRT 11 need onnx and onnxconverter-common ([tensorrt-cu13]): "
                          f"{missing}") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    where: dict[bytes, tuple[int, int]] = {}
    written: dict[str, Path] = {}
    with open(out_dir / FP16_WEIGHTS, "wb") as f:
        for file in sorted(graph_files(m)):
            with warnings.catch_warnings():  # it warns for every constant below fp16's range (set to 1e-7)
                warnings.simplefilter("ignore", UserWarning)
                model = float16.convert_float_to_float16(onnx.load(str(resolve(root, file))), keep_io_types=True)
            for t in model.graph.initializer:
                data = t.raw_data or onnx.numpy_helper.to_array(t).tobytes()
                if len(data) < SMALL_TENSOR:
                    continue
                key = hashlib.sha256(data).digest() + bytes([t.data_type])
                if key not in where:
                    offset = -(-f.tell() // SMALL_TENSOR) * SMALL_TENSOR
                    f.write(b"\0" * (offset - f.tell()))
                    f.write(data)
                    where[key] = (offset, len(data))
                offset, length = where[key]
                t.raw_data = data
                for field in ("float_data", "int32_data", "int64_data", "double_data"):
                    t.ClearField(field)
                set_external_data(t, FP16_WEIGHTS, offset, length)
                t.ClearField("raw_data")
            target = out_dir / f"{Path(file).stem}.fp16.onnx"
            atomic_write_bytes(target, model.SerializeToString())
            written[file] = target
    return written


def graph_files(m: Manifest) -> set[str]:
    """Every graph engines are built from: the clip graphs and, in a causal bundle, the step graphs."""
    return {g.file for g in m.graphs} | ({g.file for g in m.step.graphs} if m.step is not None else set())


def _int8_precision(activations: str, fp16: bool) -> str:
    """INT8 bundles build explicit-quantization engines from their QDQ graphs: TensorRT takes only
    symmetric INT8 activations (zero point 0), i.e. bundles exported with ``--int8-activations s8``."""
    if activations != "s8":
        raise ExportError(f"this INT8 bundle has {activations} activations (asymmetric, for ONNX Runtime on the CPU); "
                          "TensorRT takes symmetric int8 only: re-export with --int8 --int8-activations s8")
    if fp16:
        raise ExportError("--fp16 does not apply to an INT8 bundle (its engines run the QDQ graph's own precisions)")
    return "int8"


def _cached(bundle: Path, m: Manifest, key: str) -> dict[str, Any] | None:
    """The manifest's engine entry for ``key`` if every file it lists is present and unmodified."""
    entry = m.extra.get("engines", {}).get(key)
    if not entry or (m.step is not None and not entry.get("steps")):  # built before step engines existed
        return None
    for rel in entry.get("files") or [e["file"] for e in entry["engines"].values()]:
        want = m.files.get(rel)
        if want is None or not (bundle / rel).is_file() or file_entry(bundle / rel) != want:
            return None
    return entry


def build_engines(bundle: str | os.PathLike[str], *, fp16: bool = False, max_batch: int = D.MAX_BATCH,
                  workspace_gib: float = 4.0, rebuild: bool = False, device: int = 0) -> dict[str, Any]:
    """Build (or find cached) engines for this device and record them in the manifest; returns the entry."""
    if max_batch < 1:
        raise ExportError(f"max_batch must be >= 1, got {max_batch}")
    trt = require(device)
    cudart = trt_mod.import_cudart()
    gpu = trt_mod.gpu_name(cudart, device)
    trt_mod.cuda_call(cudart.cudaSetDevice(device), "cudaSetDevice")  # TensorRT builds on the current device
    root = Path(bundle)
    m = load_manifest(root, verify=True)
    precision = _precision(fp16)
    q = m.quantization
    if q is not None:
        precision = _int8_precision(q.activations, fp16)
    key = device_key(gpu, trt.__version__, precision)
    if not rebuild and (hit := _cached(root, m, key)) is not None:
        return hit
    rel_dir = f"{ENGINES_DIR}/{key}"
    (root / rel_dir).mkdir(parents=True, exist_ok=True)
    typed = fp16 and trt_mod.fp16_needs_typed_graph(trt)
    sources = {file: root / file for file in graph_files(m)}
    if typed:
        sources = write_fp16_graphs(root, m, root / rel_dir)
    cache_path = root / rel_dir / "timing.cache"
    cache_blob = cache_path.read_bytes() if cache_path.is_file() else b""
    engines: dict[str, dict[str, Any]] = {}
    new_files: list[str] = []
    for graph, by_frames in trt_mod.frame_profiles(m).items():
        profiles = trt_mod.distinct_profiles(by_frames)
        plan, cache_blob = trt_mod.build_plan(trt, sources[graph], profiles, m.input.name, m.input.size,
                                              precision=precision, max_batch=max_batch,
                                              workspace=int(workspace_gib * (1 << 30)), cache_blob=cache_blob)
        rel = f"{rel_dir}/{Path(graph).stem}.engine"
        atomic_write_bytes(root / rel, plan)
        new_files.append(rel)
        refit = sources[graph].relative_to(root).as_posix()
        for t, p in by_frames.items():
            engines[str(t)] = {"file": rel, "profile": profiles.index(p), "refit_from": refit,
                               "t_min": p.t_min, "t_max": p.t_max}
    steps, cache_blob = _build_step_engines(trt, root, m, rel_dir, sources, precision, workspace_gib, cache_blob)
    new_files += [e["file"] for e in steps.values()]
    atomic_write_bytes(cache_path, cache_blob)
    extra_files = [f"{rel_dir}/{FP16_WEIGHTS}", *(p.relative_to(root).as_posix() for p in sources.values())] \
        if typed else []
    new_files += [f"{rel_dir}/timing.cache", *dict.fromkeys(extra_files)]
    entries = {rel: file_entry(root / rel) for rel in new_files}
    entry = {"gpu": gpu, "tensorrt": trt.__version__, "precision": precision,
             "stripped": trt_mod.is_stripped(precision),
             "max_batch": max_batch, "timing_cache": f"{rel_dir}/timing.cache", "engines": engines, "steps": steps,
             "files": new_files, "extra_bytes": sum(entries[r]["size"] for r in extra_files)}
    files = {k: v for k, v in m.files.items() if not k.startswith(rel_dir + "/")}
    all_engines = {**m.extra.get("engines", {}), key: entry}
    write_manifest(root, dataclasses.replace(m, files={**files, **entries},
                                             extra={**m.extra, "engines": all_engines}))
    return entry


def _build_step_engines(trt: Any, root: Path, m: Manifest, rel_dir: str, sources: dict[str, Path], precision: str,
                        workspace_gib: float, cache_blob: bytes) -> tuple[dict[str, dict[str, str]], bytes]:
    """One engine per step graph of a causal bundle (batch 1), beside the clip engines; its manifest entries."""
    steps: dict[str, dict[str, str]] = {}
    if m.step is None:
        return steps, cache_blob
    for g in m.step.graphs:
        shapes = m.step.batch1_shapes(g, m.input.size)
        plan, cache_blob = trt_mod.build_step_plan(trt, sources[g.file], shapes, precision=precision,
                                                   workspace=int(workspace_gib * (1 << 30)), cache_blob=cache_blob)
        rel = f"{rel_dir}/{Path(g.file).stem}.engine"
        atomic_write_bytes(root / rel, plan)
        steps[str(g.subnet)] = {"file": rel, "refit_from": sources[g.file].relative_to(root).as_posix()}
    return steps, cache_blob


def load_engine(trt: Any, engine_path: Path, onnx_path: Path, logger: Any = None) -> Any:
    """Deserialize a weight-stripped engine and refit it from ``onnx_path`` (``runtime/tensorrt.load_engine``)."""
    return trt_mod.load_engine(trt, logger or trt.Logger(trt.Logger.WARNING), engine_path, onnx_path)
