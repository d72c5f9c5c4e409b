"""Inference backends: one small interface over ONNX Runtime and native TensorRT engines (no torch).

Every backend holds ALL the bundle's sub-network graphs ready at once (switching the frame count
is a dictionary lookup, never a load) and answers ``run(frames, clip) -> logits`` for a float32
clip (N, T, 3, H, W) already normalised, T == ``frames`` (one of the exported counts).

* ``OrtBackend``: one ``onnxruntime.InferenceSession`` per graph, explicit providers (CPU EP by
  default; CUDA / TensorRT EPs when ``get_available_providers()`` lists them), all options built in
  ``session_options``. The bundle's graphs share one external weight file; by default
  (``share_weights=True``) that file is memory-mapped once and every external tensor is handed to
  every session as the same ``OrtValue`` (``SessionOptions.add_initializer``), so N sessions do not
  hold N private copies; ORT rewrites that would copy a shared tensor (Conv+BN/Add/Mul fusion, the
  x86 NCHWc re-layout, pre-packing) are disabled, and the sessions draw activations from one shared
  arena instead of one arena each (they run one at a time). Measured on TSM-ResNet-18 (45 MB of
  weights, 3 sub-networks, 112 px): RSS of all 3 sessions / one = 1.94 with private copies, 1.46
  sharing weights only, 1.03 sharing weights and the arena, at the same latency within noise;
  ``benchmarks/runtime_latency.py`` re-measures it.
* ``TensorRTBackend``: serialized engines listed in ``manifest.extra["tensorrt"]``; ``tensorrt``
  and ``cuda-python`` are imported lazily. An engine built for another GPU, TensorRT version or
  precision is refused with a message that says how to rebuild it.
* ``open_backend(..., backend="auto")`` picks TensorRT engines > ORT TensorRT EP > ORT CUDA EP >
  ORT CPU and logs which one it chose (``Backend.name``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
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
# ORT rewrites that create a private, per-session copy of a (shared) weight: folding BN into the
# convolution and the x86 NCHWc re-layout. Disabled when weights are shared (see module docstring).
COPYING_OPTIMIZERS = ("ConvBNFusion", "ConvAddFusion", "ConvMulFusion", "NchwcTransformer")


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


class SharedWeights:
    """The bundle's weight file mapped once; each external tensor becomes ONE OrtValue for all sessions.

    The map is read-only and backed by the page cache, so the weights cost their size once per
    machine, whatever the number of sessions (or processes) using them.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._map = np.memmap(path, dtype=np.uint8, mode="r")
        self._values: dict[tuple[int, int, str, tuple[int, ...]], Any] = {}

    def ortvalue(self, t: ExternalTensor) -> Any:
        """The OrtValue viewing tensor ``t``'s bytes in the mapped file (cached by position and type)."""
        import onnxruntime as ort

        key = (t.offset, t.length, t.dtype.str, t.shape)
        value = self._values.get(key)
        if value is None:
            if t.offset < 0 or t.offset + t.length > self._map.size:
                raise BundleError(f"{self.path.name}: tensor {t.name} lies outside the weight file")
            raw = self._map[t.offset : t.offset + t.length]
            if t.offset % t.dtype.itemsize:  # unaligned in the file: one aligned copy, still shared
                raw = raw.copy()
            array = raw.view(t.dtype).reshape(t.shape)
            value = ort.OrtValue.ortvalue_from_numpy(array)
            self._values[key] = (value, array)  # the OrtValue does not own the buffer: keep both
        return self._values[key][0]

    @property
    def tensor_count(self) -> int:
        return len(self._values)


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


def session_options(threads: int | None = None, share_weights: bool = True, optimization: str = "all") -> Any:
    """Every ORT session option the runtime uses, in one place.

    ``threads``: intra-op threads (None: ORT's default, one per physical core). Sessions run one at
    a time (a lock in the caller), so inter-op parallelism stays off. ``share_weights`` turns off
    pre-packing, which would give each session its own packed copy of every shared weight.
    """
    import onnxruntime as ort

    levels = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
              "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
    so = ort.SessionOptions()
    so.graph_optimization_level = levels[optimization]
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.inter_op_num_threads = 1
    if threads is not None:
        so.intra_op_num_threads = int(threads)
    so.log_severity_level = 3  # warnings from EP fallbacks are expected on CPU-only machines
    if share_weights:
        so.add_session_config_entry("session.disable_prepacking", "1")
        so.add_session_config_entry("session.use_env_allocators", "1")
    return so


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
    """All sub-network graphs of a bundle as ONNX Runtime sessions, created up front."""

    def __init__(
        self,
        bundle: str | os.PathLike[str],
        manifest: Manifest,
        providers: Sequence[Any] = (CPU_EP,),
        threads: int | None = None,
        share_weights: bool = True,
        frame_counts: Sequence[int] | None = None,
        optimization: str = "all",
    ) -> None:
        import onnxruntime as ort

        self.bundle = Path(bundle)
        self.manifest = manifest
        self.providers = list(providers)
        self.share_weights = share_weights
        wanted = set(frame_counts) if frame_counts is not None else {g.frames for g in manifest.graphs}
        self.shared = SharedWeights(resolve(self.bundle, manifest.weights_file)) if share_weights else None
        if share_weights:
            register_shared_arena()
        self.sessions: dict[int, Any] = {}
        self._input = manifest.input.name
        self._output = manifest.output_name
        for g in sorted(manifest.graphs, key=lambda g: g.frames):
            if g.frames not in wanted:
                continue
            path = resolve(self.bundle, g.file)
            so = session_options(threads, share_weights, optimization)
            kwargs: dict[str, Any] = {}
            if self.shared is not None:
                for t in external_tensors(path):
                    if resolve(path.parent, t.location) == self.shared.path.resolve():
                        so.add_initializer(t.name, self.shared.ortvalue(t))
                kwargs["disabled_optimizers"] = list(COPYING_OPTIMIZERS)
            try:
                self.sessions[g.frames] = ort.InferenceSession(str(path), so, providers=self.providers, **kwargs)
            except Exception as e:  # ORT raises its own exception types (Fail, InvalidGraph, ...)
                raise BundleError(f"{path}: ONNX Runtime cannot load the graph: {str(e).splitlines()[0]}") from None
        if not self.sessions:
            raise BundleError(f"{self.bundle}: no graph for frame counts {sorted(wanted)}")
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
        self.shared = None


# ------------------------------------------------------------------------------------------------
# Native TensorRT engines (optional; built on the target device by the exporter)


@dataclasses.dataclass(frozen=True)
class EngineEntry:
    """One engine listed in ``manifest.extra["tensorrt"]["engines"]``."""

    frames: int
    file: str
    gpu: str  # torch/cuda device name the engine was built on, e.g. "NVIDIA H100 80GB HBM3"
    trt_version: str
    precision: str  # "fp32" | "fp16" | "int8"

    @property
    def cache_key(self) -> tuple[str, str, str]:
        return (self.gpu, self.trt_version, self.precision)


def tensorrt_engines(manifest: Manifest) -> list[EngineEntry]:
    """The engines a bundle lists (empty when it has none); BundleError when the list is malformed."""
    section = manifest.extra.get("tensorrt") or {}
    try:
        return [EngineEntry(int(e["frames"]), str(e["file"]), str(e["gpu"]), str(e["trt_version"]),
                            str(e.get("precision", "fp16"))) for e in section.get("engines", [])]
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise BundleError(f"manifest extra.tensorrt is malformed: {type(e).__name__}: {e}") from None


def check_engine_key(entry: EngineEntry, gpu: str, trt_version: str) -> None:
    """Refuse an engine built for another GPU or TensorRT version (engines are not portable)."""
    if (entry.gpu, entry.trt_version) != (gpu, trt_version):
        raise BundleError(
            f"TensorRT engine {entry.file} was built for {entry.gpu!r} with TensorRT {entry.trt_version} "
            f"({entry.precision}); this machine has {gpu!r} with TensorRT {trt_version}: rebuild the engines "
            "on this device (ffn-export --tensorrt) or use --backend onnxruntime"
        )


class TensorRTBackend:
    """Serialized TensorRT engines, one execution context per frame count, on one CUDA stream.

    Needs ``tensorrt`` (>= 10, name-based tensor API) and ``cuda-python``; both are imported here,
    lazily, so machines without them never load them.
    """

    def __init__(self, bundle: str | os.PathLike[str], manifest: Manifest, device: int = 0,
                 precision: str | None = None) -> None:
        try:
            import tensorrt as trt
            from cuda import cudart
        except ImportError as e:
            raise ConfigError(f"backend 'tensorrt' needs the tensorrt and cuda-python packages ({e})") from None
        self._trt, self._cudart = trt, cudart
        entries = [e for e in tensorrt_engines(manifest) if precision is None or e.precision == precision]
        if not entries:
            raise BundleError(f"{bundle}: the bundle lists no TensorRT engines (build them with ffn-export --tensorrt)")
        self._check(cudart.cudaSetDevice(device))
        props = self._check(cudart.cudaGetDeviceProperties(device))
        gpu = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
        gpu = gpu.rstrip("\x00")
        for entry in entries:
            check_engine_key(entry, gpu, trt.__version__)
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._stream = self._check(cudart.cudaStreamCreate())
        self._engines: dict[int, Any] = {}
        self._contexts: dict[int, Any] = {}
        for entry in entries:
            path = resolve(bundle, entry.file)
            engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
            if engine is None:
                raise BundleError(f"{path}: TensorRT could not deserialize the engine (corrupt or incompatible)")
            self._engines[entry.frames] = engine
            self._contexts[entry.frames] = engine.create_execution_context()
        self._input, self._output = manifest.input.name, manifest.output_name
        self._buffers: dict[tuple[int, str], tuple[int, int]] = {}  # (frames, tensor) -> (ptr, nbytes)
        self.frame_counts = tuple(sorted(self._engines))
        self.name = f"tensorrt[{entries[0].precision}]"

    def _check(self, result: Any) -> Any:
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
        ctx.set_input_shape(self._input, clip.shape)
        out_shape = tuple(ctx.get_tensor_shape(self._output))
        out = np.empty(out_shape, dtype=np.float32)
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
        self._contexts.clear()
        self._engines.clear()
        if getattr(self, "_stream", None) is not None:
            self._cudart.cudaStreamDestroy(self._stream)
            self._stream = None


# ------------------------------------------------------------------------------------------------
# Choosing a backend

_ORT_KINDS = {"ort-cpu": "cpu", "ort-cuda": "cuda", "ort-tensorrt": "tensorrt"}


def _tensorrt_importable() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorrt") is not None and importlib.util.find_spec("cuda") is not None


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
        if backend == "auto" and tensorrt_engines(manifest) and _tensorrt_importable():
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


