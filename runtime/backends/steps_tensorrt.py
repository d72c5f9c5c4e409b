"""Step graphs as native TensorRT engines (``ffn-export engines`` builds them beside the clip engines).

One engine and one execution context per sub-network, all contexts on one stream sharing one
activation buffer (``set_device_memory``, the largest ``device_memory_size_v2``), as the clip
engines do. A stream's shift buffers are device allocations (``zero_state``: one ``cudaMalloc`` of two
sets, ``step_state.BufferPair``); a step points the context's buffer inputs at one set and its
outputs at the other (``set_tensor_address``) and the sets swap, so per step one frame is copied in
and one row of logits out (page-locked host buffers), never a buffer.

The engines of the set ``tensorrt.pick_engine_set`` chooses (this GPU, this TensorRT, the session's
precision) are refitted at load from the bundle's step graphs, so from its one ``weights.bin``
(INT8 engines keep their weights, ``trt_engine.is_stripped``).
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

import numpy as np

from ...bundle.manifest import Manifest, resolve
from ...core.errors import BundleError, ConfigError
from . import trt_engine as trt_mod
from .step_state import BufferPair, DeviceState, as_device_state
from .steps import State, StepGraphs
from .tensorrt import pick_engine_set

ALIGN = 256  # bytes between buffers in one allocation (cudaMalloc's own alignment)


def _aligned(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


class TensorRTStepGraphs(StepGraphs):
    """The bundle's step engines for this GPU; the buffers stay in device memory between steps."""

    def __init__(self, bundle: str | os.PathLike[str], manifest: Manifest, device: int = 0,
                 precision: str | None = None) -> None:
        self.device, self.precision = device, precision
        self._ptrs: list[int] = []
        self._host: list[int] = []
        self._releases: list[Any] = []  # each live stream state's weakref.finalize (frees its buffers)
        self._stream: Any = None
        try:
            super().__init__(bundle, manifest, None)
        except BaseException:
            self.close()
            raise

    def _open(self, manifest: Manifest, threads: int | None) -> None:
        trt, cudart = trt_mod.import_tensorrt(), trt_mod.import_cudart()
        self._cudart = cudart
        trt_mod.cuda_call(cudart.cudaSetDevice(self.device), "cudaSetDevice")
        chosen = pick_engine_set(manifest.engine_sets, trt_mod.gpu_name(cudart, self.device), trt.__version__,
                                 self.precision)
        missing = sorted(set(self._graphs) - set(chosen.steps))
        if missing:
            raise BundleError(f"the TensorRT engines for {chosen.describe()} have no step engine for sub-network(s) "
                              f"{missing}: rebuild them with 'ffn-export engines --bundle BUNDLE --rebuild'")
        logger = trt.Logger(trt.Logger.WARNING)
        self._stream = trt_mod.cuda_call(cudart.cudaStreamCreate(), "cudaStreamCreate")
        self._contexts: dict[int, Any] = {}
        engines = {}
        h, w = self.size
        for k, g in self._graphs.items():
            ref = chosen.steps[k]
            engines[k] = trt_mod.load_engine(trt, logger, resolve(self.bundle, ref.file),
                                             resolve(self.bundle, ref.refit_from), chosen.stripped)
            ctx = engines[k].create_execution_context(trt.ExecutionContextAllocationStrategy.USER_MANAGED)
            if ctx is None:
                raise ConfigError(f"TensorRT could not create an execution context for step graph {k} (GPU memory?)")
            ctx.set_optimization_profile_async(0, self._stream)
            for name, shape in self.spec.batch1_shapes(g, self.size).items():
                if not ctx.set_input_shape(name, shape):
                    raise BundleError(f"step engine {ref.file} does not take {name} of shape {shape} "
                                      "(rebuild it with ffn-export engines --rebuild)")
            self._contexts[k] = ctx
        self._engines = engines
        activation = max(int(e.device_memory_size_v2) for e in engines.values())
        memory = self._malloc(max(activation, 1))
        self._frame_bytes, self._logit_bytes = 3 * h * w * 4, self.classes * 4
        self._d_frame, self._d_logits = self._malloc(self._frame_bytes), self._malloc(self._logit_bytes)
        self._h_frame = self._pinned(self._frame_bytes)
        self._h_logits = self._pinned(self._logit_bytes)
        zero_bytes = max(self._layout(g)[1] for g in self._graphs.values())
        self._h_zeros = self._pinned(zero_bytes)  # page-locked zeros: what a stream's first step reads
        for ctx in self._contexts.values():
            ctx.set_device_memory(memory, activation)
            ctx.set_tensor_address(self.spec.input_name, self._d_frame)
            ctx.set_tensor_address(self.spec.output_name, self._d_logits)
        self.name = f"tensorrt[{chosen.precision}] (step buffers on cuda:{self.device})"

    @staticmethod
    def _layout(g: Any) -> tuple[list[int], int]:
        """Each of ``g``'s buffers' byte offset in one set, and the set's size (each buffer aligned)."""
        offsets, size = [], 0
        for b in g.buffers:
            offsets.append(size)
            size += _aligned(4 * int(np.prod(b.shape)))
        return offsets, size

    def _malloc(self, nbytes: int) -> int:
        ptr = trt_mod.cuda_call(self._cudart.cudaMalloc(nbytes), "cudaMalloc")
        self._ptrs.append(ptr)
        return ptr

    def _pinned(self, nbytes: int) -> np.ndarray:
        ptr = trt_mod.cuda_call(self._cudart.cudaMallocHost(nbytes), "cudaMallocHost")
        self._host.append(ptr)
        return np.ctypeslib.as_array((ctypes.c_float * (nbytes // 4)).from_address(ptr))

    def zero_state(self, subnet: int) -> State:
        """One allocation holding both sets of ``subnet``'s buffers; the first set zeroed (one copy)."""
        g = self._graphs[self.check_subnet(subnet)]
        cudart, (offsets, half) = self._cudart, self._layout(g)
        base = trt_mod.cuda_call(cudart.cudaMalloc(2 * half), "cudaMalloc")
        kind = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        with self._lock:
            trt_mod.cuda_call(cudart.cudaMemcpyAsync(base, self._h_zeros.ctypes.data, half, kind, self._stream),
                              "cudaMemcpyAsync")
            trt_mod.cuda_call(cudart.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
        sets = [[base + i * half + o for o in offsets] for i in (0, 1)]
        pair = BufferPair(self, subnet, sets, lambda: cudart.cudaFree(base))
        self._releases = [r for r in self._releases if r.alive] + [pair.release]
        return DeviceState(pair)

    def _step(self, frame: np.ndarray, subnet: int, state: State) -> tuple[np.ndarray, State]:
        pair = as_device_state(state).claim(self, subnet)
        cudart, ctx = self._cudart, self._contexts[subnet]
        for b, x, y in zip(self._graphs[subnet].buffers, *pair.sets, strict=True):
            ctx.set_tensor_address(b.input, x)
            ctx.set_tensor_address(b.output, y)
        np.copyto(self._h_frame.reshape(frame.shape), frame)
        kind = cudart.cudaMemcpyKind
        trt_mod.cuda_call(cudart.cudaMemcpyAsync(self._d_frame, self._h_frame.ctypes.data, self._frame_bytes,
                                                 kind.cudaMemcpyHostToDevice, self._stream), "cudaMemcpyAsync")
        if not ctx.execute_async_v3(self._stream):
            raise RuntimeError(f"TensorRT execution failed for step graph {subnet}")
        trt_mod.cuda_call(cudart.cudaMemcpyAsync(self._h_logits.ctypes.data, self._d_logits, self._logit_bytes,
                                                 kind.cudaMemcpyDeviceToHost, self._stream), "cudaMemcpyAsync")
        trt_mod.cuda_call(cudart.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
        return self._h_logits.copy(), pair.swap()

    def close(self) -> None:
        """Free every stream's buffers, the contexts, the shared memory and the stream; idempotent."""
        for release in self._releases:
            release()  # a no-op for a state already freed
        self._releases, self._contexts, self._engines = [], {}, {}
        cudart = getattr(self, "_cudart", None)
        for ptr in self._ptrs:
            cudart.cudaFree(ptr)
        for ptr in self._host:
            cudart.cudaFreeHost(ptr)
        self._ptrs, self._host = [], []
        if self._stream is not None:
            cudart.cudaStreamDestroy(self._stream)
            self._stream = None
