"""TensorRT for ffn-edge: the one module that builds (``ffn-export engines``) and runs (``--backend tensorrt``).

No torch; ``tensorrt`` and ``cuda-python`` are imported lazily (``import_tensorrt``, ``import_cudart``),
so this module imports on any machine. Supported: TensorRT 10.3+ (JetPack 6.1/6.2 ship 10.3 through
apt) and TensorRT 11 (x86, pip). The attribute names used here, per major, are listed with their
source in ``tests/data/tensorrt_api.json`` and checked by ``tests/test_gpu_tensorrt.py``:

* FP16. TensorRT 10 has ``BuilderFlag.FP16`` (weakly typed network, kernels may run in half): the
  engine is built from the bundle's fp32 graph and refitted from the bundle's ``weights.bin``.
  TensorRT 11 removed it (every network is strongly typed; ``NetworkDefinitionCreationFlag.
  STRONGLY_TYPED`` is deprecated and ignored): the engine is built from an fp16-typed copy of each
  graph whose weights live in ONE extra ``weights.fp16.bin`` for all sub-networks (half the size of
  ``weights.bin``), written by the exporter (``export/tensorrt.py``). ``fp16_needs_typed_graph``
  tells the two apart by the flag's presence, not by a version number.
* Contexts (``EngineContexts``): one per frame count, ``create_execution_context(USER_MANAGED)``,
  every one given the same device-memory buffer (``set_device_memory``) sized to the largest
  ``device_memory_size_v2`` (the runtime runs one sub-network at a time), and the same input and
  output buffers sized for ``max_batch`` clips of the longest T. Nothing is allocated per run.
* One GPU name (``gpu_name``): cudart's ``cudaGetDeviceProperties(d).name`` at build and at load, so
  an engine's device key always matches the machine that built it (``nvidia-smi`` spells Jetson
  names differently: "Orin (nvgpu)" vs "Orin").
* Frame counts (``frame_profiles``): a fixed-T graph gets one profile with exactly its T; a
  dynamic-T graph gets one profile spanning every T the runtime routes to it (nearest rule), so
  any count the scheduler asks for is accepted.
"""

from __future__ import annotations

import ctypes
import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...bundle.manifest import Manifest
from ...core.deps import TENSORRT_HINT
from ...core.errors import BundleError, ConfigError
from ...core.sampling import nearest_subnet

ENGINES_DIR = "engines"
SUPPORTED_MAJORS = (10, 11)
MIN_VERSION = (10, 3)  # set_device_memory / device_memory_size_v2 / OnnxParserRefitter, JetPack 6.1's TensorRT
INSTALL_HINT = TENSORRT_HINT


def import_tensorrt() -> Any:
    """The ``tensorrt`` module, or a ConfigError in one line saying what to install."""
    try:
        import tensorrt as trt
    except ImportError:
        raise ConfigError(f"TensorRT is not installed: {INSTALL_HINT}") from None
    except Exception as e:  # OSError / RuntimeError when libnvinfer or the CUDA libraries cannot be loaded
        raise ConfigError(f"TensorRT cannot be imported: {first_line(e)}") from None
    check_version(trt.__version__)
    return trt


def check_version(version: str) -> int:
    """The TensorRT major for ``version``; ConfigError when this project does not support it."""
    parts = tuple(int(p) for p in re.findall(r"\d+", version)[:2])
    if len(parts) < 2 or parts[0] not in SUPPORTED_MAJORS or parts < MIN_VERSION:
        raise ConfigError(f"TensorRT {version} is not supported (need 10.3 or later 10.x, or 11.x)")
    return parts[0]


def import_cudart() -> Any:
    """cuda-python's runtime module (``cuda.bindings.runtime``; ``cuda.cudart`` before 12.6)."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart
        except ImportError:
            raise ConfigError("the CUDA Python bindings are not installed: pip install 'cuda-bindings>=13,<14' for a "
                              "CUDA 13 driver, 'cuda-bindings>=12.8,<13' for a CUDA 12 driver, 'cuda-python>=12.3,<13' "
                              "on JetPack 6") from None
    return cudart


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def cuda_call(result: Any, what: str) -> Any:
    """Unwrap a cuda-python ``(err, *values)`` result; ConfigError naming the CUDA error otherwise."""
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        name = getattr(err, "name", str(err))
        raise ConfigError(f"CUDA {what} failed: {name} (is the NVIDIA driver new enough for this cuda-python?)")
    return rest[0] if len(rest) == 1 else (rest or None)


def gpu_name(cudart: Any, device: int = 0) -> str:
    """The name of CUDA device ``device`` as cudart spells it: the one name source for build and load."""
    count = cuda_call(cudart.cudaGetDeviceCount(), "cudaGetDeviceCount")
    if not count or device >= int(count):
        raise ConfigError(f"no CUDA device {device} on this machine ({count or 0} found)")
    props = cuda_call(cudart.cudaGetDeviceProperties(device), "cudaGetDeviceProperties")
    name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
    return name.strip("\0 ")


def device_key(gpu: str, trt_version: str, precision: str) -> str:
    """Directory-safe engine cache key: GPU model + TensorRT version + precision."""
    slug = re.sub(r"[^A-Za-z0-9.]+", "-", gpu).strip("-")
    return f"{slug}_trt{trt_version}_{precision}"


def fp16_needs_typed_graph(trt: Any) -> bool:
    """True where fp16 must come from the graph's types (TensorRT 11: no ``BuilderFlag.FP16``)."""
    return not hasattr(trt.BuilderFlag, "FP16")


# ------------------------------------------------------------------------------------------------
# Frame counts -> optimisation profiles


@dataclasses.dataclass(frozen=True)
class FrameProfile:
    """One optimisation profile: the T range it accepts (``t_opt`` is the graph's own count)."""

    t_min: int
    t_opt: int
    t_max: int

    def accepts(self, t: int) -> bool:
        return self.t_min <= t <= self.t_max


def routed_range(subnet: int, subnet_counts: Sequence[int]) -> tuple[int, int]:
    """Every n the nearest rule sends to ``subnet``; from 1 below the lowest, up to the highest count."""
    ns = [n for n in range(1, max(subnet_counts) + 1) if nearest_subnet(n, subnet_counts) == subnet]
    if not ns:
        return subnet_counts[subnet], subnet_counts[subnet]
    return ns[0], ns[-1]


def frame_profiles(manifest: Manifest) -> dict[str, dict[int, FrameProfile]]:
    """Graph file -> {frame count it serves: profile}; a dynamic-T graph's entries share one profile."""
    out: dict[str, dict[int, FrameProfile]] = {}
    for g in sorted(manifest.graphs, key=lambda g: g.frames):
        if g.dynamic_frames:
            lo, hi = routed_range(g.subnet, manifest.subnet_frame_counts)
            served = [e.frames for e in manifest.graphs if e.file == g.file]
            profile = FrameProfile(min(lo, *served), g.frames, max(hi, *served))
        else:
            profile = FrameProfile(g.frames, g.frames, g.frames)
        out.setdefault(g.file, {})[g.frames] = profile
    return out


def distinct_profiles(profiles: dict[int, FrameProfile]) -> list[FrameProfile]:
    """The profiles one engine is built with, in order (shared profiles once): index = profile number."""
    seen: list[FrameProfile] = []
    for p in profiles.values():
        if p not in seen:
            seen.append(p)
    return seen


# ------------------------------------------------------------------------------------------------
# Build


def is_stripped(precision: str) -> bool:
    """Whether engines of ``precision`` are built weight-stripped and refitted from the bundle at load.

    INT8 engines are not: refitting explicit-quantization engines from the QDQ graph's INT8 initializers
    through ``OnnxParserRefitter`` is not something the TensorRT docs promise, so an INT8 engine keeps
    its weights (INT8, a quarter of the FP32 bytes) in its plan.
    """
    return precision != "int8"


def build_plan(trt: Any, onnx_path: Path, profiles: Sequence[FrameProfile], input_name: str, size: tuple[int, int],
               *, precision: str, max_batch: int, workspace: int, cache_blob: bytes) -> tuple[bytes, bytes]:
    """A serialized weight-stripped engine for one graph (refitted at load) and the updated timing cache.

    ``onnx_path`` is fp32 except for fp16 on TensorRT 11, where it is the fp16-typed copy, and for
    ``precision="int8"``, where it is the bundle's QDQ graph: TensorRT sees its Q/DQ nodes and builds an
    explicit-quantization engine, not stripped (``is_stripped``). On TensorRT 10 the network is weakly
    typed, and INT8 kernels are only chosen with ``BuilderFlag.INT8`` set; TensorRT 11 has no such flag
    (strongly typed: the Q/DQ nodes fix the types).
    """
    def add_profiles(builder: Any, config: Any) -> None:
        for p in profiles:
            profile = builder.create_optimization_profile()
            profile.set_shape(input_name, (1, p.t_min, 3, *size), (1, p.t_opt, 3, *size),
                              (max_batch, p.t_max, 3, *size))
            config.add_optimization_profile(profile)

    return _build(trt, onnx_path, precision, workspace, cache_blob, add_profiles)


def build_step_plan(trt: Any, onnx_path: Path, shapes: dict[str, tuple[int, ...]], *, precision: str, workspace: int,
                    cache_blob: bytes) -> tuple[bytes, bytes]:
    """An engine for one step graph: one profile, every input (the frame, each shift buffer) at batch 1.

    Precision, stripping and refitting as ``build_plan`` (a step graph is built from, and refitted
    from, the bundle's step graph file, so its weights come from the same ``weights.bin``).
    """
    def add_profile(builder: Any, config: Any) -> None:
        profile = builder.create_optimization_profile()
        for name, shape in shapes.items():
            profile.set_shape(name, shape, shape, shape)
        config.add_optimization_profile(profile)

    return _build(trt, onnx_path, precision, workspace, cache_blob, add_profile)


def _build(trt: Any, onnx_path: Path, precision: str, workspace: int, cache_blob: bytes,
           add_profiles: Any) -> tuple[bytes, bytes]:
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch; strongly typed on TensorRT 11 by definition
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):  # resolves the external weight file next to the graph
        errors = "; ".join(str(parser.get_error(i).desc()) for i in range(parser.num_errors))
        raise BundleError(f"{onnx_path.name}: TensorRT cannot parse the graph: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace)
    if is_stripped(precision):
        config.set_flag(trt.BuilderFlag.STRIP_PLAN)
        config.set_flag(trt.BuilderFlag.REFIT_IDENTICAL)
    if precision == "fp16" and not fp16_needs_typed_graph(trt):
        config.set_flag(trt.BuilderFlag.FP16)
    elif precision in ("fp32", "int8"):
        config.clear_flag(trt.BuilderFlag.TF32)  # parity with ONNX Runtime's fp32
    if precision == "int8" and hasattr(trt.BuilderFlag, "INT8"):
        config.set_flag(trt.BuilderFlag.INT8)
    cache = config.create_timing_cache(cache_blob)
    config.set_timing_cache(cache, ignore_mismatch=False)
    add_profiles(builder, config)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise BundleError(f"{onnx_path.name}: TensorRT failed to build an engine (see its log above)")
    return bytes(plan), bytes(cache.serialize())


# ------------------------------------------------------------------------------------------------
# Load and run


def load_engine(trt: Any, logger: Any, engine_path: Path, refit_graph: Path, stripped: bool = True) -> Any:
    """Deserialize an engine; refit a weight-stripped one from its ONNX graph (and so the shared weight file)."""
    engine = trt.Runtime(logger).deserialize_cuda_engine(engine_path.read_bytes())
    if engine is None:
        raise BundleError(f"{engine_path}: TensorRT cannot deserialize this engine (corrupt, or built for "
                          "another GPU / TensorRT version)")
    if stripped:
        refitter = trt.Refitter(engine, logger)
        if not trt.OnnxParserRefitter(refitter, logger).refit_from_file(str(refit_graph)) \
                or not refitter.refit_cuda_engine():
            raise BundleError(f"{engine_path}: refitting weights from {refit_graph.name} failed")
    return engine


@dataclasses.dataclass(frozen=True)
class LoadedEngine:
    """An engine and, for one frame count, which of its profiles serves it."""

    engine: Any
    profile_index: int
    profile: FrameProfile


class EngineContexts:
    """One execution context per frame count over one stream, one device-memory buffer, one I/O pair.

    All memory is allocated here, for ``max_batch`` clips of the longest T any context accepts; a
    run only sets shapes, copies and enqueues. Contexts never run concurrently (the runtime holds
    a lock), which is what makes one shared activation buffer correct.
    """

    def __init__(self, trt: Any, cudart: Any, engines: dict[int, LoadedEngine], input_name: str,
                 output_name: str, size: tuple[int, int], max_batch: int) -> None:
        self._cudart = cudart
        self._input, self._output = input_name, output_name
        self.max_batch = max_batch
        self._ptrs: list[int] = []
        self._host_ptrs: list[int] = []
        self.stream = cuda_call(cudart.cudaStreamCreate(), "cudaStreamCreate")
        try:
            self._setup(trt, engines, size)
        except BaseException:
            self.close()
            raise

    def _setup(self, trt: Any, engines: dict[int, LoadedEngine], size: tuple[int, int]) -> None:
        strategy = trt.ExecutionContextAllocationStrategy.USER_MANAGED
        self.profiles = {t: e.profile for t, e in engines.items()}
        self._contexts: dict[int, Any] = {}
        out_elems = 0
        for t, e in sorted(engines.items()):
            ctx = e.engine.create_execution_context(strategy)
            if ctx is None:  # TensorRT's answer to out-of-memory here
                raise ConfigError(f"TensorRT could not create an execution context for {t} frames (GPU memory?)")
            ctx.set_optimization_profile_async(e.profile_index, self.stream)
            if not ctx.set_input_shape(self._input, (self.max_batch, e.profile.t_max, 3, *size)):
                raise BundleError(f"the {t}-frame engine does not accept batch {self.max_batch} x {e.profile.t_max} "
                                  "frames (rebuild it with ffn-export engines --rebuild)")
            out_elems = max(out_elems, int(np.prod(tuple(ctx.get_tensor_shape(self._output)))))
            self._contexts[t] = ctx
        self.activation_bytes = max(int(e.engine.device_memory_size_v2) for e in engines.values())
        t_max = max(p.t_max for p in self.profiles.values())
        self.input_bytes = self.max_batch * t_max * 3 * size[0] * size[1] * 4
        self.output_bytes = out_elems * 4
        activations = self._malloc(max(self.activation_bytes, 1))
        self._d_in, self._d_out = self._malloc(self.input_bytes), self._malloc(self.output_bytes)
        # Page-locked host staging buffers: a copy from pageable memory is staged by the driver
        # through its own pinned buffer, synchronously; from these it is one asynchronous DMA.
        self._h_in, self._h_out = self._malloc_host(self.input_bytes), self._malloc_host(self.output_bytes)
        for ctx in self._contexts.values():
            ctx.set_device_memory(activations, self.activation_bytes)
            ctx.set_tensor_address(self._input, self._d_in)
            ctx.set_tensor_address(self._output, self._d_out)

    def _malloc(self, nbytes: int) -> int:
        ptr = cuda_call(self._cudart.cudaMalloc(nbytes), "cudaMalloc")
        self._ptrs.append(ptr)
        return ptr

    def _malloc_host(self, nbytes: int) -> np.ndarray:
        """A pinned float32 host buffer of ``nbytes``, as a flat array over it (freed by ``close``)."""
        ptr = cuda_call(self._cudart.cudaMallocHost(nbytes), "cudaMallocHost")
        self._host_ptrs.append(ptr)
        return np.ctypeslib.as_array((ctypes.c_float * (nbytes // 4)).from_address(ptr))

    @property
    def frame_counts(self) -> tuple[int, ...]:
        return tuple(sorted(self._contexts))

    def run(self, frames: int, clip: np.ndarray) -> np.ndarray:
        """Logits for ``clip`` (N, T, 3, H, W) on the ``frames`` context: copy in, enqueue, copy out, wait."""
        cudart = self._cudart
        ctx = self._contexts.get(frames)
        if ctx is None:
            raise ValueError(f"no engine for {frames} frames (have {list(self.frame_counts)})")
        profile = self.profiles[frames]
        n, t = clip.shape[0], clip.shape[1]
        if not 1 <= n <= self.max_batch or not profile.accepts(t):
            raise ValueError(f"the {frames}-frame engine takes 1..{self.max_batch} clips of {profile.t_min}.."
                             f"{profile.t_max} frames, got {n} x {t}")
        if not ctx.set_input_shape(self._input, clip.shape):
            raise ValueError(f"the {frames}-frame engine does not accept a clip of shape {clip.shape}")
        host_in = self._h_in[:clip.size].reshape(clip.shape)
        np.copyto(host_in, clip, casting="unsafe")  # as astype(float32): the runtime passes float32 already
        out_shape = tuple(ctx.get_tensor_shape(self._output))
        host_out = self._h_out[:int(np.prod(out_shape))].reshape(out_shape)
        kind = cudart.cudaMemcpyKind
        cuda_call(cudart.cudaMemcpyAsync(self._d_in, host_in.ctypes.data, host_in.nbytes,
                                         kind.cudaMemcpyHostToDevice, self.stream), "cudaMemcpyAsync")
        if not ctx.execute_async_v3(self.stream):
            raise RuntimeError(f"TensorRT execution failed for the {frames}-frame engine")
        cuda_call(cudart.cudaMemcpyAsync(host_out.ctypes.data, self._d_out, host_out.nbytes,
                                         kind.cudaMemcpyDeviceToHost, self.stream), "cudaMemcpyAsync")
        cuda_call(cudart.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize")
        return host_out.copy()  # the pinned buffer is reused by the next run

    def close(self) -> None:
        """Drop contexts, free buffers and the stream; idempotent."""
        self._contexts = {}
        for ptr in self._ptrs:
            self._cudart.cudaFree(ptr)
        self._ptrs = []
        for ptr in self._host_ptrs:
            self._cudart.cudaFreeHost(ptr)
        self._host_ptrs = []
        if self.stream is not None:
            self._cudart.cudaStreamDestroy(self.stream)
            self.stream = None
