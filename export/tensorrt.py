"""TensorRT engines for a bundle, built on the target device (``ffn-export engines --bundle B``).

How weights are shared. Sub-networks differ only in per-channel constants, but a TensorRT engine
bakes its constants into its plan, so one engine cannot switch sub-networks, and two engines never
share device weights. What can be shared is the *file*: every engine is built weight-stripped
(``BuilderFlag.STRIP_PLAN`` with ``REFIT_IDENTICAL``: kernels are chosen for the real weights, the
plan keeps only what it cannot refit) and refitted at load time from its ONNX graph, i.e. from the
one ``weights.bin`` (``trt.OnnxParserRefitter``, see ``load_engine``). Engines stay a few MB each
instead of a model's size each. Within one graph file, an engine has one optimisation profile per
frame count that graph serves (a dynamic-T graph serving 6 and 8 frames gives one engine, two
profiles, one copy of weights); across sub-networks there is one engine per graph.

Batch is dynamic in every profile (1..``max_batch``, tuned for 1, the streaming case); T is fixed
per profile. Precision ``fp32`` disables TF32 (parity with ONNX Runtime), ``fp16`` enables half.
A timing cache per device key (``engines/<key>/timing.cache``) makes rebuilds fast.

Engines are valid only for the GPU model, TensorRT version and precision they were built with:
they live under ``engines/<key>/`` with ``key = gpu + TensorRT version + precision`` and are listed in
the manifest's ``extra["engines"][key]`` (with their hashes in ``files``). A lookup with the current
device's key either finds matching engines or finds none and rebuilds; an engine built for another
key is never run. ``tensorrt`` is imported lazily, so this module imports on any machine, with no
torch (the runtime uses ``load_engine`` and ``device_key``).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from ..runtime.atomic import atomic_write_bytes
from ..runtime.manifest import Manifest, file_entry, load_manifest, write_manifest
from .errors import ExportError

ENGINES_DIR = "engines"


def gpu_name() -> str | None:
    """Name of CUDA device 0, or None when there is no usable NVIDIA GPU."""
    try:
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:
            from cuda import cudart
        err, count = cudart.cudaGetDeviceCount()
        if int(err) == 0 and count > 0:
            err, props = cudart.cudaGetDeviceProperties(0)
            if int(err) == 0:  # the same spelling the runtime compares against
                name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
                return name.strip("\0 ")
    except Exception:  # any failure here only means "ask nvidia-smi"
        pass
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run([smi, "--query-gpu=name", "--format=csv,noheader", "-i", "0"],
                             capture_output=True, text=True, timeout=20, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out or None


def require() -> Any:
    """The ``tensorrt`` module if TensorRT and a GPU are present, else an ExportError in one line."""
    try:
        import tensorrt as trt
    except ImportError:
        raise ExportError("TensorRT engines need an NVIDIA GPU and TensorRT: the tensorrt package is not "
                          "installed (pip install 'ffn-edge[tensorrt]' on the target device)") from None
    if gpu_name() is None:
        raise ExportError("TensorRT engines need an NVIDIA GPU and TensorRT: no CUDA GPU found on this machine")
    return trt


def device_key(gpu: str, trt_version: str, precision: str) -> str:
    """Directory-safe cache key: GPU model + TensorRT version + precision."""
    slug = re.sub(r"[^A-Za-z0-9.]+", "-", gpu).strip("-")
    return f"{slug}_trt{trt_version}_{precision}"


def _precision(fp16: bool) -> str:
    return "fp16" if fp16 else "fp32"


def _profiles(m: Manifest) -> dict[str, list[int]]:
    """Graph file -> the frame counts it serves (one optimisation profile each)."""
    out: dict[str, list[int]] = {}
    for g in m.graphs:
        out.setdefault(g.file, []).append(g.frames)
    return out


def _build_one(trt: Any, onnx_path: Path, frames: list[int], input_name: str, size: tuple[int, int], *,
               fp16: bool, max_batch: int, workspace: int, cache_blob: bytes) -> tuple[bytes, bytes]:
    """Serialized weight-stripped engine for one graph, and the updated timing cache."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):  # resolves weights.bin next to the graph
        errors = "; ".join(str(parser.get_error(i).desc()) for i in range(parser.num_errors))
        raise ExportError(f"{onnx_path.name}: TensorRT cannot parse the graph: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace)
    config.set_flag(trt.BuilderFlag.STRIP_PLAN)
    config.set_flag(trt.BuilderFlag.REFIT_IDENTICAL)
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    else:
        config.clear_flag(trt.BuilderFlag.TF32)
    cache = config.create_timing_cache(cache_blob)
    config.set_timing_cache(cache, ignore_mismatch=False)
    for t in frames:
        profile = builder.create_optimization_profile()
        shape = (t, 3, *size)
        profile.set_shape(input_name, (1, *shape), (1, *shape), (max_batch, *shape))
        config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise ExportError(f"{onnx_path.name}: TensorRT failed to build an engine (see the log above)")
    return bytes(plan), bytes(cache.serialize())


def _cached(bundle: Path, m: Manifest, key: str) -> dict[str, Any] | None:
    """The manifest's engine entry for ``key`` if every file it lists is present and unmodified."""
    entry = m.extra.get("engines", {}).get(key)
    if not entry:
        return None
    for rel in [e["file"] for e in entry["engines"].values()]:
        want = m.files.get(rel)
        if want is None or not (bundle / rel).is_file() or file_entry(bundle / rel) != want:
            return None
    return entry


def build_engines(bundle: str | os.PathLike[str], *, fp16: bool = False, max_batch: int = 8,
                  workspace_gib: float = 4.0, rebuild: bool = False) -> dict[str, Any]:
    """Build (or find cached) engines for this device and record them in the manifest; returns the entry."""
    trt = require()
    root = Path(bundle)
    m = load_manifest(root, verify=True)
    precision = _precision(fp16)
    key = device_key(gpu_name() or "unknown", trt.__version__, precision)
    if not rebuild and (hit := _cached(root, m, key)) is not None:
        return hit
    rel_dir = f"{ENGINES_DIR}/{key}"
    (root / rel_dir).mkdir(parents=True, exist_ok=True)
    cache_path = root / rel_dir / "timing.cache"
    cache_blob = cache_path.read_bytes() if cache_path.is_file() else b""
    engines: dict[str, dict[str, Any]] = {}
    new_files: dict[str, dict[str, Any]] = {}
    for graph, frames in _profiles(m).items():
        plan, cache_blob = _build_one(trt, root / graph, frames, m.input.name, m.input.size, fp16=fp16,
                                      max_batch=max_batch, workspace=int(workspace_gib * (1 << 30)),
                                      cache_blob=cache_blob)
        rel = f"{rel_dir}/{Path(graph).stem}.engine"
        atomic_write_bytes(root / rel, plan)
        new_files[rel] = file_entry(root / rel)
        for i, t in enumerate(frames):
            engines[str(t)] = {"file": rel, "profile": i, "refit_from": graph}
    atomic_write_bytes(cache_path, cache_blob)
    new_files[f"{rel_dir}/timing.cache"] = file_entry(cache_path)
    entry = {"gpu": gpu_name(), "tensorrt": trt.__version__, "precision": precision, "stripped": True,
             "max_batch": max_batch, "timing_cache": f"{rel_dir}/timing.cache", "engines": engines}
    files = {k: v for k, v in m.files.items() if not k.startswith(rel_dir + "/")}
    all_engines = {**m.extra.get("engines", {}), key: entry}
    write_manifest(root, dataclasses.replace(m, files={**files, **new_files},
                                             extra={**m.extra, "engines": all_engines}))
    return entry


def load_engine(trt: Any, engine_path: Path, onnx_path: Path, logger: Any = None) -> Any:
    """Deserialize a weight-stripped engine and refit it from its ONNX graph (and so ``weights.bin``)."""
    logger = logger or trt.Logger(trt.Logger.WARNING)
    engine = trt.Runtime(logger).deserialize_cuda_engine(engine_path.read_bytes())
    if engine is None:
        raise ExportError(f"{engine_path}: TensorRT cannot load this engine (built for another GPU or version?)")
    refitter = trt.Refitter(engine, logger)
    if not trt.OnnxParserRefitter(refitter, logger).refit_from_file(str(onnx_path)) or not refitter.refit_cuda_engine():
        raise ExportError(f"{engine_path}: refitting weights from {onnx_path.name} failed")
    return engine

