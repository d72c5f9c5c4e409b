"""Inference backends: one small interface over ONNX Runtime and native TensorRT engines (no torch).

Every backend holds ALL the bundle's sub-network graphs ready at once (switching the frame count
is a dictionary lookup, never a load) and answers ``run(frames, clip) -> logits`` for a float32
clip (N, T, 3, H, W) already normalised, on the graph exported for ``frames`` (T == ``frames``,
or any T when that graph has a dynamic frame dimension).

* ``OrtBackend``: one ``onnxruntime.InferenceSession`` per graph, explicit providers (CPU EP by
  default; CUDA / TensorRT EPs when ``get_available_providers()`` lists them), all options built in
  ``session_options``. Weight sharing on the CPU EP (``share_weights=True``, the default): ORT
  normally gives every session its own copy of the weights — the copy it loads, plus the copy its
  optimiser rewrites (x86 NCHWc weight layout) — so N sub-networks cost N models. Instead each graph
  is optimised once at open (all ORT optimisations except the fusions that would bake a
  sub-network's norm into a shared convolution), saved to a temporary file, and its large tensors
  (now identical across sub-networks) are pooled by content and handed to every session as the same
  ``OrtValue`` (``SessionOptions.add_initializer``); the sessions also share one activation arena
  (they run one at a time). Where the exporter gave a sub-network its own copy of an early
  convolution with the norm folded in (``--fold-budget``), that copy is pooled like any tensor:
  one per sub-network, shared by graphs of the same sub-network, never mistaken for another's
  (pooling is by content, dtype and shape). Simply adding the bundle's weights with ``add_initializer`` is not
  enough: the NCHWc re-layout still copies them per session, and turning it off costs ~35 % latency
  on x86. ``benchmarks/runtime_latency.py`` measures RSS and latency of both modes.
* ``TensorRTBackend``: the engines listed in ``manifest.extra["engines"]`` for this device
  (weight-stripped ones are refitted from the shared weight file at load); ``tensorrt`` and
  ``cuda-python`` are imported lazily. Engines built for another GPU, TensorRT version or precision
  are refused with a message that says how to rebuild them.
* ``open_backend(..., backend="auto")`` picks TensorRT engines > ORT TensorRT EP > ORT CUDA EP >
  ORT CPU and logs which one it chose (``Backend.name``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .errors import BundleError, ConfigError
from .manifest import Manifest, resolve

log = logging.getLogger("ffn_edge.runtime")

BACKENDS = ("auto", "onnxruntime", "ort-cpu", "ort-cuda", "ort-tensorrt", "tensorrt")
CPU_EP = "CPUExecutionProvider"
CUDA_EP = "CUDAExecutionProvider"
TRT_EP = "TensorrtExecutionProvider"
# ORT rewrites that bake a sub-network's own constants (its folded norm) into a shared convolution's
# weight, making it differ per sub-network. Disabled when weights are shared (see module docstring).
# ConvAddFusion stays on: it only changes the (small, per-graph) bias, and the exporter writes each
# norm it keeps apart as Add(shift/scale) then Mul(scale) so that this fusion takes half of it.
COPYING_OPTIMIZERS = ("ConvBNFusion", "ConvMulFusion")
# Tensors from this size up are pooled; smaller ones (per-channel norm constants, which differ per
# sub-network anyway: 2048 channels x 4 B = 8 KiB) stay inside each graph.
POOL_MIN_BYTES = 16384


class Backend(Protocol):
    """What FFNRuntime needs from an inference backend."""

    name: str  # e.g. "onnxruntime[CPUExecutionProvider]", "tensorrt[fp16]": said in logs and results
    frame_counts: tuple[int, ...]  # the exported graphs' frame counts, ascending

    def run(self, frames: int, clip: np.ndarray) -> np.ndarray:
        """Logits (N, K) float32 for ``clip`` (N, frames, 3, H, W) float32."""
        ...

    def close(self) -> None:
        """Free sessions / engines; idempotent."""
        ...


# ------------------------------------------------------------------------------------------------
# Reading the external-tensor table of an ONNX graph without the ``onnx`` package (not a runtime
# dependency): a few protobuf wire-format fields of ModelProto.graph.initializer.

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


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, value) of one protobuf message: ints for varints, bytes otherwise."""
    out: list[tuple[int, int, Any]] = []
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + size], pos + size
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        out.append((number, wire, value))
    if pos != end:
        raise ValueError("truncated protobuf message")
    return out


def _tensor_entry(buf: bytes) -> ExternalTensor | None:
    dims: list[int] = []
    name, dtype, external, location_kind = "", 0, {}, 0
    for number, wire, value in _fields(buf):
        if number == 1 and wire == 0:
            dims.append(value)
        elif number == 1 and wire == 2:  # packed dims
            pos = 0
            while pos < len(value):
                d, pos = _varint(value, pos)
                dims.append(d)
        elif number == 2:
            dtype = value
        elif number == 8:
            name = value.decode("utf-8")
        elif number == 13:
            kv = {n: v.decode("utf-8") for n, _, v in _fields(value)}
            external[kv.get(1, "")] = kv.get(2, "")
        elif number == 14:
            location_kind = value
    if location_kind != 1 or dtype not in _ONNX_DTYPES:  # 1 = TensorProto.EXTERNAL
        return None
    np_dtype = np.dtype(_ONNX_DTYPES[dtype])
    shape = tuple(dims)
    length = int(external.get("length", int(np.prod(shape, dtype=np.int64)) * np_dtype.itemsize))
    return ExternalTensor(name, np_dtype, shape, external.get("location", ""), int(external.get("offset", 0)), length)


def external_tensors(graph_path: Path) -> list[ExternalTensor]:
    """The external initializers of an ONNX graph file (name, dtype, shape, file, offset, length)."""
    try:
        model = _fields(graph_path.read_bytes())
        graphs = [v for n, w, v in model if n == 7 and w == 2]
        found = [_tensor_entry(v) for g in graphs for n, w, v in _fields(g) if n == 5 and w == 2]
    except (ValueError, IndexError, UnicodeDecodeError) as e:
        raise BundleError(f"{graph_path}: not a readable ONNX graph ({e})") from None
    return [t for t in found if t is not None]


class TensorPool:
    """External tensors deduplicated by content: equal bytes become ONE OrtValue for every session.

    Each external file is memory-mapped read-only; a tensor whose bytes were already seen reuses
    the first OrtValue. A map is kept (its new tensors used in place) only when those new tensors
    are at least half of it; otherwise they are copied out and the map is dropped, so the pages of
    the duplicates (touched to hash them) leave this process's RSS. That is the case for a graph
    whose only new tensors are its sub-network's own convolution copies (``--fold-budget``): keeping
    its map for them would keep a whole second copy of the shared weights resident. OrtValues built
    here do not own their memory: the pool keeps the arrays alive.
    """

    def __init__(self) -> None:
        self._by_digest: dict[bytes, tuple[Any, np.ndarray]] = {}
        self.tensors_seen = 0
        self.bytes_seen = 0
        self.bytes_kept = 0

    def add_graph(self, graph_path: Path, so: Any) -> None:
        """Hand every external tensor of ``graph_path`` to ``so`` (SessionOptions) from the pool."""
        import onnxruntime as ort

        maps: dict[Path, np.memmap] = {}
        refs: list[tuple[str, bytes]] = []
        fresh: dict[bytes, tuple[ExternalTensor, Path, np.ndarray]] = {}
        for t in external_tensors(graph_path):
            file = resolve(graph_path.parent, t.location)
            if file not in maps:
                maps[file] = np.memmap(file, dtype=np.uint8, mode="r")
            data = maps[file]
            if t.offset < 0 or t.offset + t.length > data.size:
                raise BundleError(f"{file.name}: tensor {t.name} lies outside the file")
            raw = data[t.offset : t.offset + t.length]
            digest = hashlib.sha1(memoryview(raw), usedforsecurity=False).digest() + t.dtype.str.encode() \
                + repr(t.shape).encode()
            self.tensors_seen += 1
            self.bytes_seen += t.length
            refs.append((t.name, digest))
            if digest not in self._by_digest:
                fresh.setdefault(digest, (t, file, raw))
        fresh_bytes = {f: sum(t.length for t, tf, _ in fresh.values() if tf == f) for f in maps}
        for digest, (t, file, raw) in fresh.items():
            if t.offset % t.dtype.itemsize or 2 * fresh_bytes[file] < maps[file].size:
                raw = raw.copy()  # unaligned, or not worth keeping the map for: an own copy
            array = raw.view(t.dtype).reshape(t.shape)
            self._by_digest[digest] = (ort.OrtValue.ortvalue_from_numpy(array), array)
            self.bytes_kept += t.length
        for name, digest in refs:
            so.add_initializer(name, self._by_digest[digest][0])

    @property
    def tensor_count(self) -> int:
        return len(self._by_digest)


# ------------------------------------------------------------------------------------------------
# ONNX Runtime


def ort_providers(kind: str, device: int = 0) -> list[Any]:
    """The explicit provider list for ``kind`` in ("cpu", "cuda", "tensorrt"); CPU is always last."""
    if kind == "cpu":
        return [CPU_EP]
    if kind == "cuda":
        return [(CUDA_EP, {"device_id": device}), CPU_EP]
    if kind == "tensorrt":
        return [(TRT_EP, {"device_id": device, "trt_fp16_enable": True}), (CUDA_EP, {"device_id": device}), CPU_EP]
    raise ConfigError(f"unknown ONNX Runtime provider kind {kind!r}")


def session_options(threads: int | None = None, shared: bool = True, optimization: str = "all") -> Any:
    """Every ORT session option the runtime uses, in one place.

    ``threads``: intra-op threads (None: ORT's default, one per physical core). Sessions run one at
    a time (a lock in the caller), so inter-op parallelism stays off. ``shared``: the session takes
    its weights from a TensorPool and its activations from the shared arena; pre-packing is off (it
    would give each session a private packed copy). ``optimization``: "all" | "extended" | "basic" |
    "none" (graphs already optimised by ``optimize_for_sharing`` load with "none").
    """
    import onnxruntime as ort

    levels = {"none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
              "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
              "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
    so = ort.SessionOptions()
    so.graph_optimization_level = levels[optimization]
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.inter_op_num_threads = 1
    if threads is not None:
        so.intra_op_num_threads = int(threads)
    so.log_severity_level = 3  # warnings from EP fallbacks are expected on CPU-only machines
    # No spin-waiting after a run: the runtime shares the cores with its capture thread (and an edge
    # device with everything else), and spinning threads burn power. Measured with 2 threads on a
    # busy 2-core machine: spinning made the run after another sub-network ~40 ms slower (TSM-R18).
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if shared:
        so.add_session_config_entry("session.disable_prepacking", "1")
        so.add_session_config_entry("session.use_env_allocators", "1")
    return so


def optimize_for_sharing(graph: Path, out_dir: Path, threads: int | None, providers: Sequence[Any]) -> Path:
    """Optimise ``graph`` once (ORT_ENABLE_ALL minus the copying fusions) and save it with external data.

    The saved graph's large tensors (convolution weights already in the layout this CPU runs
    fastest, e.g. x86 NCHWc blocks) are identical for every sub-network, so a TensorPool shares
    them; the saved graph then loads with no further optimisation. The file is specific to this
    machine and ORT version, which is why it is made at open time and never shipped.
    """
    import onnxruntime as ort

    out = out_dir / graph.name
    so = session_options(threads, shared=False, optimization="all")
    so.optimized_model_filepath = str(out)
    so.add_session_config_entry("session.optimized_model_external_initializers_file_name", f"{graph.stem}.bin")
    so.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes",
                                str(POOL_MIN_BYTES))
    so.log_severity_level = 3  # ORT warns that an NCHWc-optimised file is hardware specific: we know
    ort.InferenceSession(str(graph), so, providers=list(providers), disabled_optimizers=list(COPYING_OPTIMIZERS))
    return out


_env_arena_lock = threading.Lock()
_env_arena_registered = False


def register_shared_arena() -> None:
    """Register one CPU arena in ORT's (process-wide) environment for sessions that opt in.

    Without it every session grows its own activation arena to its own peak, so N sub-networks hold
    N arenas although the runtime runs one at a time. Only sessions created with
    ``session.use_env_allocators`` (``session_options(share_weights=True)``) use it; other ORT users
    in the process are not affected. Idempotent.
    """
    global _env_arena_registered
    import onnxruntime as ort

    with _env_arena_lock:
        if _env_arena_registered:
            return
        info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
        try:
            ort.create_and_register_allocator(info, None)
        except Exception as e:  # already registered by another user of the environment: reuse it
            log.debug("shared ORT arena not registered: %s", e)
        _env_arena_registered = True


class OrtBackend:
    """All sub-network graphs of a bundle as ONNX Runtime sessions, created up front.

    ``share_weights=True`` (CPU): each graph is optimised once into a temporary directory
    (``optimize_for_sharing``), its large tensors are pooled by content across graphs (one copy
    in memory for all sessions, via ``SessionOptions.add_initializer``), and the sessions draw
    activations from one shared arena. ``share_weights=False``: every session loads and optimises
    its graph on its own (ORT's defaults: fastest per session, one private copy of the weights each).
    """

    def __init__(
        self,
        bundle: str | os.PathLike[str],
        manifest: Manifest,
        providers: Sequence[Any] = (CPU_EP,),
        threads: int | None = None,
        share_weights: bool = True,
        frame_counts: Sequence[int] | None = None,
    ) -> None:
        import onnxruntime as ort

        self.bundle = Path(bundle)
        self.manifest = manifest
        self.providers = list(providers)
        self.share_weights = share_weights
        wanted = set(frame_counts) if frame_counts is not None else {g.frames for g in manifest.graphs}
        graphs = [g for g in sorted(manifest.graphs, key=lambda g: g.frames) if g.frames in wanted]
        if not graphs:
            raise BundleError(f"{self.bundle}: no graph for frame counts {sorted(wanted)}")
        self.pool = TensorPool() if share_weights else None
        if share_weights:
            register_shared_arena()
        self.sessions: dict[int, Any] = {}
        self._input = manifest.input.name
        self._output = manifest.output_name
        # Mapped files may be unlinked once mapped (POSIX); elsewhere the directory may outlive us.
        with tempfile.TemporaryDirectory(prefix="ffn-ort-", ignore_cleanup_errors=True) as tmp:
            for g in graphs:
                path = resolve(self.bundle, g.file)
                try:
                    if self.pool is not None:
                        path = optimize_for_sharing(path, Path(tmp), threads, self.providers)
                        so = session_options(threads, shared=True, optimization="none")
                        self.pool.add_graph(path, so)
                    else:
                        so = session_options(threads, shared=False, optimization="all")
                    self.sessions[g.frames] = ort.InferenceSession(str(path), so, providers=self.providers)
                except BundleError:
                    raise
                except Exception as e:  # ORT raises its own types (Fail, InvalidGraph, ...)
                    raise BundleError(f"{self.bundle / g.file}: ONNX Runtime cannot load the graph: "
                                      f"{str(e).strip().splitlines()[0]}") from None
        self.frame_counts = tuple(sorted(self.sessions))
        first = next(iter(self.sessions.values()))
        self.active_providers: list[str] = first.get_providers()
        self.name = f"onnxruntime[{self.active_providers[0]}]"

    def run(self, frames: int, clip: np.ndarray) -> np.ndarray:
        """Logits for one clip batch on the ``frames`` graph."""
        session = self.sessions.get(frames)
        if session is None:
            raise ValueError(f"no graph for {frames} frames (have {list(self.frame_counts)})")
        return session.run([self._output], {self._input: clip})[0]

    def close(self) -> None:
        self.sessions.clear()
        self.pool = None


# ------------------------------------------------------------------------------------------------
# Native TensorRT engines (optional; built on the target device by ``ffn-export engines``)
#
# Manifest format (written by the exporter): ``extra["engines"][key]`` for each device key (GPU model
# + TensorRT version + precision) = {"gpu", "tensorrt", "precision", "stripped", "max_batch",
# "engines": {"<frames>": {"file", "profile", "refit_from"}}}. A stripped engine carries no weights:
# it is refitted at load time from its ONNX graph, i.e. from the one shared weights.bin.


@dataclasses.dataclass(frozen=True)
class EngineSet:
    """The engines a bundle holds for one device key."""

    gpu: str
    trt_version: str
    precision: str  # "fp32" | "fp16"
    stripped: bool
    engines: dict[int, tuple[str, int, str]]  # frames -> (engine file, optimisation profile, ONNX graph)

    def describe(self) -> str:
        return f"{self.gpu!r} / TensorRT {self.trt_version} / {self.precision}"


def tensorrt_engine_sets(manifest: Manifest) -> list[EngineSet]:
    """Every engine set the manifest lists (empty when none); BundleError when malformed."""
    sets = []
    try:
        for entry in (manifest.extra.get("engines") or {}).values():
            engines = {int(t): (str(e["file"]), int(e.get("profile", 0)), str(e["refit_from"]))
                       for t, e in entry["engines"].items()}
            sets.append(EngineSet(str(entry["gpu"]), str(entry["tensorrt"]), str(entry["precision"]),
                                  bool(entry.get("stripped", True)), engines))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise BundleError(f"manifest extra.engines is malformed: {type(e).__name__}: {e}") from None
    return sets


def pick_engine_set(sets: Sequence[EngineSet], gpu: str, trt_version: str, precision: str | None) -> EngineSet:
    """The engine set built for this GPU and TensorRT version (fp16 first unless ``precision`` says).

    Engines are not portable: one built for another GPU model, TensorRT version or precision is
    refused with a message naming both sides, never run.
    """
    fits = [s for s in sets if s.gpu == gpu and s.trt_version == trt_version
            and (precision is None or s.precision == precision)]
    if not fits:
        have = "; ".join(s.describe() for s in sets) or "none"
        want = f"{gpu!r} / TensorRT {trt_version}" + (f" / {precision}" if precision else "")
        raise BundleError(f"no TensorRT engines for this device ({want}); the bundle has: {have}. "
                          "Build them here with 'ffn-export engines --bundle BUNDLE', or use --backend onnxruntime")
    return sorted(fits, key=lambda s: s.precision != "fp16")[0]


class TensorRTBackend:
    """The bundle's TensorRT engines for this GPU, one execution context per frame count, one stream.

    Needs ``tensorrt`` (>= 10, name-based tensor API) and ``cuda-python``; both are imported here,
    lazily, so machines without them never load them.
    """

    def __init__(self, bundle: str | os.PathLike[str], manifest: Manifest, device: int = 0,
                 precision: str | None = None) -> None:
        try:
            import tensorrt as trt
        except ImportError as e:
            raise ConfigError(f"backend 'tensorrt' needs the tensorrt package ({e})") from None
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:
            try:
                from cuda import cudart
            except ImportError as e:
                raise ConfigError(f"backend 'tensorrt' needs the cuda-python package ({e})") from None
        self._trt, self._cudart = trt, cudart
        self._stream = None
        self._buffers: dict[tuple[int, str], tuple[int, int]] = {}  # (frames, tensor) -> (ptr, nbytes)
        self._check(cudart.cudaSetDevice(device))
        props = self._check(cudart.cudaGetDeviceProperties(device))
        gpu = (props.name.decode() if isinstance(props.name, bytes) else str(props.name)).strip("\0 ")
        chosen = pick_engine_set(tensorrt_engine_sets(manifest), gpu, trt.__version__, precision)
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._stream = self._check(cudart.cudaStreamCreate())
        engines: dict[str, Any] = {}
        self._contexts: dict[int, Any] = {}
        for frames, (file, profile, graph) in sorted(chosen.engines.items()):
            if file not in engines:
                engines[file] = self._load(resolve(bundle, file), resolve(bundle, graph), chosen.stripped)
            ctx = engines[file].create_execution_context()
            ctx.set_optimization_profile_async(profile, self._stream)
            self._contexts[frames] = ctx
        self._engines = engines
        self._input, self._output = manifest.input.name, manifest.output_name
        self.frame_counts = tuple(sorted(self._contexts))
        self.name = f"tensorrt[{chosen.precision}]"

    def _load(self, engine_path: Path, onnx_path: Path, stripped: bool) -> Any:
        """Deserialize an engine; refit a weight-stripped one from its ONNX graph (+ weights.bin)."""
        trt = self._trt
        engine = trt.Runtime(self._logger).deserialize_cuda_engine(engine_path.read_bytes())
        if engine is None:
            raise BundleError(f"{engine_path}: TensorRT cannot deserialize this engine (corrupt, or built "
                              "for another GPU / TensorRT version)")
        if stripped:
            refitter = trt.Refitter(engine, self._logger)
            parser = trt.OnnxParserRefitter(refitter, self._logger)
            if not parser.refit_from_file(str(onnx_path)) or not refitter.refit_cuda_engine():
                raise BundleError(f"{engine_path}: refitting weights from {onnx_path.name} failed")
        return engine

    def _check(self, result: Any) -> Any:
        """Unwrap a cuda-python (err, *values) result; RuntimeError naming the CUDA error."""
        err, *rest = result if isinstance(result, tuple) else (result,)
        if int(err) != 0:
            raise RuntimeError(f"CUDA error {err}")
        return rest[0] if len(rest) == 1 else (rest or None)

    def _device_buffer(self, frames: int, tensor: str, nbytes: int) -> int:
        ptr, size = self._buffers.get((frames, tensor), (0, 0))
        if size < nbytes:
            if ptr:
                self._check(self._cudart.cudaFree(ptr))
            ptr = self._check(self._cudart.cudaMalloc(nbytes))
            self._buffers[(frames, tensor)] = (ptr, nbytes)
        return ptr

    def run(self, frames: int, clip: np.ndarray) -> np.ndarray:
        """Copy the clip in, enqueue the engine, copy the logits out, wait for the stream."""
        cudart = self._cudart
        ctx = self._contexts.get(frames)
        if ctx is None:
            raise ValueError(f"no engine for {frames} frames (have {list(self.frame_counts)})")
        clip = np.ascontiguousarray(clip, dtype=np.float32)
        if not ctx.set_input_shape(self._input, clip.shape):
            raise ValueError(f"the {frames}-frame engine does not accept a clip of shape {clip.shape}")
        out = np.empty(tuple(ctx.get_tensor_shape(self._output)), dtype=np.float32)
        d_in = self._device_buffer(frames, self._input, clip.nbytes)
        d_out = self._device_buffer(frames, self._output, out.nbytes)
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._check(cudart.cudaMemcpyAsync(d_in, clip.ctypes.data, clip.nbytes, h2d, self._stream))
        ctx.set_tensor_address(self._input, d_in)
        ctx.set_tensor_address(self._output, d_out)
        if not ctx.execute_async_v3(self._stream):
            raise RuntimeError(f"TensorRT execution failed for the {frames}-frame engine")
        self._check(cudart.cudaMemcpyAsync(out.ctypes.data, d_out, out.nbytes, d2h, self._stream))
        self._check(cudart.cudaStreamSynchronize(self._stream))
        return out

    def close(self) -> None:
        for ptr, _ in self._buffers.values():
            self._cudart.cudaFree(ptr)
        self._buffers.clear()
        self._contexts = {}
        self._engines = {}
        if self._stream is not None:
            self._cudart.cudaStreamDestroy(self._stream)
            self._stream = None


# ------------------------------------------------------------------------------------------------
# Choosing a backend

_ORT_KINDS = {"ort-cpu": "cpu", "ort-cuda": "cuda", "ort-tensorrt": "tensorrt"}


def _tensorrt_importable() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("tensorrt") is not None and importlib.util.find_spec("cuda") is not None
    except (ImportError, ValueError):
        return False


def open_backend(
    bundle: str | os.PathLike[str],
    manifest: Manifest,
    backend: str = "auto",
    device: int = 0,
    threads: int | None = None,
    share_weights: bool = True,
) -> Backend:
    """Create the backend named ``backend`` (see BACKENDS); "auto" takes the best that works here.

    Order for "auto": native TensorRT engines from the bundle (when listed, importable, and built
    for this GPU) > ORT TensorRT EP > ORT CUDA EP > ORT CPU EP. "onnxruntime" is the best ORT
    provider available. The choice is logged and is the returned backend's ``name``.
    """
    import onnxruntime as ort

    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    available = set(ort.get_available_providers())
    if backend == "tensorrt":
        chosen: Backend = TensorRTBackend(bundle, manifest, device)
    elif backend in _ORT_KINDS:
        kind = _ORT_KINDS[backend]
        need = {"cpu": CPU_EP, "cuda": CUDA_EP, "tensorrt": TRT_EP}[kind]
        if need not in available:
            raise ConfigError(f"backend {backend!r} needs ONNX Runtime's {need}; this onnxruntime has "
                              f"{', '.join(sorted(available))}")
        chosen = OrtBackend(bundle, manifest, ort_providers(kind, device), threads, share_weights)
    else:
        chosen = None  # type: ignore[assignment]
        if backend == "auto" and tensorrt_engine_sets(manifest) and _tensorrt_importable():
            try:
                chosen = TensorRTBackend(bundle, manifest, device)
            except (BundleError, ConfigError, RuntimeError) as e:
                log.warning("TensorRT engines not usable (%s); falling back to ONNX Runtime", e)
        if chosen is None:
            kind = "tensorrt" if TRT_EP in available else "cuda" if CUDA_EP in available else "cpu"
            # GPU providers share device memory, not the host map: only the CPU EP shares weights.
            chosen = OrtBackend(bundle, manifest, ort_providers(kind, device), threads,
                                share_weights and kind == "cpu")
    log.info("ffn-edge runtime backend: %s (requested %r)", chosen.name, backend)
    return chosen


