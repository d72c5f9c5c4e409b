"""Fakes of the TensorRT and cuda-python bindings, built from the names the real ones export.

``tests/data/tensorrt_api.json`` lists, per TensorRT major, the attribute names read from the real
bindings (see its ``_source``). Every fake object here answers ONLY those names (AttributeError for
any other), so code that uses a name one major lacks (``BuilderFlag.FP16`` on TensorRT 11) fails
here as it would on a device. Behind the names the fakes do just enough to check call sequences:
the builder serialises the profiles and flags it was given into the "plan", the parser records the
ONNX graph's weight type, a context accepts only shapes inside its profile, and cudart keeps device
memory as host byte arrays so a run's copies in and out are real.
"""

from __future__ import annotations

import ctypes
import itertools
import json
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import onnx

API = json.loads((Path(__file__).parent / "data" / "tensorrt_api.json").read_text())
MAJORS = tuple(API["majors"])


class Restricted:
    """Public attributes limited to ``self._allowed`` (the names the real class exports)."""

    _allowed: frozenset[str] = frozenset()

    def __getattribute__(self, name: str) -> Any:
        if not name.startswith("_") and name not in object.__getattribute__(self, "_allowed"):
            raise AttributeError(f"{type(self).__name__} has no attribute {name!r} in this TensorRT major")
        return object.__getattribute__(self, name)


def _enum(name: str, members: list[str]) -> type:
    return type(name, (), {m: i for i, m in enumerate(members)})


class FakeCudart(types.ModuleType):
    """cuda.bindings.runtime: ``(err, value)`` tuples, device memory as bytearrays, one fake GPU."""

    def __init__(self, gpu: bytes = b"Orin\0\0\0", devices: int = 1, fail: str | None = None) -> None:
        super().__init__("cuda.bindings.runtime")
        self.memory: dict[int, bytearray] = {}
        self.host: dict[int, Any] = {}  # pinned host buffers by address
        self.copies: list[tuple[int, int, int]] = []  # (host address, bytes, kind) of every cudaMemcpyAsync
        self.mallocs: list[int] = []
        self._next = itertools.count(0x1000, 0x1000)
        self._gpu, self._devices, self._fail = gpu, devices, fail
        self.cudaMemcpyKind = _enum("cudaMemcpyKind", API["cudart"]["cudaMemcpyKind"])
        for name in API["cudart"]["functions"]:
            setattr(self, name, getattr(self, "_" + name))

    def _result(self, name: str, *values: Any) -> tuple:
        if name == self._fail:
            if name == "cudaSetDevice":  # what TensorRT / cudart do on a broken CUDA install
                raise TypeError("an integer is required")
            return (35,) + (None,) * len(values)  # cudaErrorInsufficientDriver
        return (0, *values)

    def _cudaGetDeviceCount(self) -> tuple:
        return self._result("cudaGetDeviceCount", self._devices)

    def _cudaGetDeviceProperties(self, device: int) -> tuple:
        return self._result("cudaGetDeviceProperties", types.SimpleNamespace(name=self._gpu, totalGlobalMem=8 << 30))

    def _cudaSetDevice(self, device: int) -> tuple:
        return self._result("cudaSetDevice")

    def memory_at(self, ptr: int, nbytes: int) -> memoryview:
        """``nbytes`` of device memory at ``ptr``, which may point inside an allocation (buffers at offsets)."""
        base = max(p for p in self.memory if p <= ptr)
        start = ptr - base
        assert start + nbytes <= len(self.memory[base]), "device access past the end of an allocation"
        return memoryview(self.memory[base])[start : start + nbytes]

    def _cudaMalloc(self, nbytes: int) -> tuple:
        ptr = next(self._next) * 1024
        self.memory[ptr] = bytearray(nbytes)
        self.mallocs.append(nbytes)
        return self._result("cudaMalloc", ptr)

    def _cudaFree(self, ptr: int) -> tuple:
        self.memory.pop(ptr)
        return (0,)

    def _cudaMallocHost(self, nbytes: int) -> tuple:
        """Page-locked host memory: a real host buffer, so copies to and from it are real."""
        buf = ctypes.create_string_buffer(max(nbytes, 1))
        self.host[ctypes.addressof(buf)] = buf
        return self._result("cudaMallocHost", ctypes.addressof(buf))

    def _cudaFreeHost(self, ptr: int) -> tuple:
        self.host.pop(ptr)
        return (0,)

    def _cudaMemcpyAsync(self, dst: int, src: int, nbytes: int, kind: int, stream: Any) -> tuple:
        self.copies.append((src if kind == self.cudaMemcpyKind.cudaMemcpyHostToDevice else dst, nbytes, kind))
        if kind == self.cudaMemcpyKind.cudaMemcpyHostToDevice:
            self.memory_at(dst, nbytes)[:] = ctypes.string_at(src, nbytes)
        else:
            ctypes.memmove(dst, bytes(self.memory_at(src, nbytes)), nbytes)
        return (0,)

    def _cudaStreamCreate(self) -> tuple:
        return self._result("cudaStreamCreate", 77)

    def _cudaStreamSynchronize(self, stream: Any) -> tuple:
        return (0,)

    def _cudaStreamDestroy(self, stream: Any) -> tuple:
        return (0,)

    def _cudaMemGetInfo(self) -> tuple:
        return (0, 1 << 30, 8 << 30)


def _graph_dtype(path: Path) -> str:
    """"int8" for a QDQ graph with INT8 weights, "fp16" when its large initializers are float16, else "fp32"."""
    model = onnx.load(str(path), load_external_data=False)
    types_ = {t.data_type for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL}
    for t in model.graph.initializer:
        for kv in t.external_data:
            if kv.key == "location" and not (path.parent / kv.value).is_file():
                raise FileNotFoundError(path.parent / kv.value)
    if onnx.TensorProto.INT8 in types_:
        return "int8"
    return "fp16" if onnx.TensorProto.FLOAT16 in types_ else "fp32"


def install(monkeypatch: Any, major: str, cudart: FakeCudart, num_classes: int) -> FakeTensorRT:
    """Put a fake ``tensorrt`` of ``major`` and ``cudart`` where ``import`` finds them."""
    trt = FakeTensorRT(major, cudart, num_classes)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    cuda, bindings = types.ModuleType("cuda"), types.ModuleType("cuda.bindings")
    cuda.bindings, bindings.runtime = bindings, cudart
    monkeypatch.setitem(sys.modules, "cuda", cuda)
    monkeypatch.setitem(sys.modules, "cuda.bindings", bindings)
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", cudart)
    return trt


class FakeTensorRT(types.ModuleType):
    """``tensorrt`` of one major: enums and classes with exactly that major's names."""

    def __init__(self, major: str, cudart: FakeCudart, num_classes: int) -> None:
        super().__init__("tensorrt")
        api = API["majors"][major]
        self.api, self.cudart, self.num_classes = api, cudart, num_classes
        self.__version__ = api["version"]
        self.oom = False  # create_execution_context returns None, as TensorRT does when out of memory
        self.contexts: list[FakeContext] = []
        for enum in ("BuilderFlag", "NetworkDefinitionCreationFlag", "ExecutionContextAllocationStrategy",
                     "MemoryPoolType"):
            setattr(self, enum, _enum(enum, api[enum]))
        self.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda s, level=2: None})

    def _allowed(self, cls: str) -> frozenset[str]:
        return frozenset(self.api[cls])

    def Builder(self, logger: Any) -> FakeBuilder:  # noqa: N802 - the real class name
        return FakeBuilder(self)

    def OnnxParser(self, network: FakeNetwork, logger: Any) -> FakeParser:  # noqa: N802
        return FakeParser(self, network)

    def Runtime(self, logger: Any) -> Any:  # noqa: N802
        return types.SimpleNamespace(deserialize_cuda_engine=lambda plan: FakeEngine(self, plan))

    def Refitter(self, engine: FakeEngine, logger: Any) -> FakeRefitter:  # noqa: N802
        return FakeRefitter(self, engine)

    def OnnxParserRefitter(self, refitter: FakeRefitter, logger: Any) -> FakeParserRefitter:  # noqa: N802
        return FakeParserRefitter(self, refitter)


class FakeNetwork:
    def __init__(self, flags: int) -> None:
        self.flags, self.dtype, self.graph = flags, None, None


class FakeParser(Restricted):
    def __init__(self, trt: FakeTensorRT, network: FakeNetwork) -> None:
        self._allowed, self._network = trt._allowed("OnnxParser"), network

    def parse_from_file(self, path: str) -> bool:
        self._network.dtype, self._network.graph = _graph_dtype(Path(path)), path
        return True

    num_errors = 0

    def get_error(self, i: int) -> Any:
        raise AssertionError("no errors")


class FakeProfile:
    def __init__(self) -> None:
        self.shapes: dict[str, tuple] = {}

    def set_shape(self, name: str, lo: tuple, opt: tuple, hi: tuple) -> None:
        self.shapes[name] = (tuple(lo), tuple(opt), tuple(hi))


class FakeConfig(Restricted):
    def __init__(self, trt: FakeTensorRT) -> None:
        self._allowed = trt._allowed("IBuilderConfig")
        self._flags: set[int] = set()
        self._cleared: set[int] = set()
        self._profiles: list[FakeProfile] = []

    def set_flag(self, flag: int) -> None:
        self._flags.add(flag)

    def clear_flag(self, flag: int) -> None:
        self._cleared.add(flag)

    def set_memory_pool_limit(self, pool: int, size: int) -> None:
        self._workspace = size

    def create_timing_cache(self, blob: bytes) -> Any:
        return types.SimpleNamespace(serialize=lambda: bytes(blob) + b"+")

    def set_timing_cache(self, cache: Any, ignore_mismatch: bool) -> bool:
        return True

    def add_optimization_profile(self, profile: FakeProfile) -> int:
        self._profiles.append(profile)
        return len(self._profiles) - 1


class FakeBuilder(Restricted):
    def __init__(self, trt: FakeTensorRT) -> None:
        self._allowed, self._trt = trt._allowed("Builder"), trt

    def create_network(self, flags: int) -> FakeNetwork:
        return FakeNetwork(flags)

    def create_builder_config(self) -> FakeConfig:
        return FakeConfig(self._trt)

    def create_optimization_profile(self) -> FakeProfile:
        return FakeProfile()

    def build_serialized_network(self, network: FakeNetwork, config: FakeConfig) -> bytes:
        names = {v: k for k, v in vars(self._trt.BuilderFlag).items() if not k.startswith("_")}
        plan = {"flags": sorted(names[f] for f in config._flags), "cleared": sorted(names[f] for f in config._cleared),
                "dtype": network.dtype, "graph": network.graph,
                "profiles": [{n: s for n, s in p.shapes.items()} for p in config._profiles]}
        return json.dumps(plan).encode()


class FakeEngine(Restricted):
    def __init__(self, trt: FakeTensorRT, plan: bytes) -> None:
        self._allowed, self._trt = trt._allowed("ICudaEngine"), trt
        self._plan = json.loads(plan)
        self._refitted_from: str | None = None
        # activations grow with the longest clip a profile takes: what the shared buffer must cover
        self._activation = 1000 * max(next(iter(p.values()))[2][1] for p in self._plan["profiles"])

    @property
    def device_memory_size_v2(self) -> int:
        return self._activation

    @property
    def num_optimization_profiles(self) -> int:
        return len(self._plan["profiles"])

    def create_execution_context(self, strategy: int) -> FakeContext | None:
        if self._trt.oom:
            return None
        ctx = FakeContext(self, strategy)
        self._trt.contexts.append(ctx)
        return ctx


class FakeContext(Restricted):
    def __init__(self, engine: FakeEngine, strategy: int) -> None:
        self._allowed = engine._trt._allowed("IExecutionContext")
        self._engine, self._trt, self._strategy = engine, engine._trt, strategy
        self._profile: int | None = None
        self._shape: tuple | None = None
        self._shapes: dict[str, tuple] = {}  # every input's shape (a step engine has several inputs)
        self._memory: tuple[int, int] | None = None
        self._addresses: dict[str, int] = {}
        self._runs = 0

    def set_optimization_profile_async(self, index: int, stream: Any) -> bool:
        self._profile = index
        return True

    def set_input_shape(self, name: str, shape: tuple) -> bool:
        lo, _, hi = self._engine._plan["profiles"][self._profile][name]
        if len(shape) != len(lo) or not all(a <= s <= b for a, s, b in zip(lo, shape, hi, strict=True)):
            return False
        self._shape = self._shapes[name] = tuple(shape)
        return True

    def get_tensor_shape(self, name: str) -> tuple:
        return (self._shape[0], self._trt.num_classes)

    def set_device_memory(self, ptr: int, size: int) -> None:
        assert size >= self._engine.device_memory_size_v2
        self._memory = (ptr, size)

    def set_tensor_address(self, name: str, ptr: int) -> bool:
        self._addresses[name] = ptr
        return True

    def update_device_memory_size_for_shapes(self) -> int:
        return self._engine.device_memory_size_v2

    def execute_async_v3(self, stream: Any) -> bool:
        """logits[n, k] = mean(clip[n]) + k, read from and written to fake device memory."""
        stripped = "STRIP_PLAN" in self._engine._plan["flags"]  # a stripped engine has no weights until refitted
        assert self._memory is not None and (self._engine._refitted_from is not None or not stripped)
        if Path(self._engine._plan["graph"]).name.startswith("step_"):
            return self._step()
        (in_name, in_ptr), (out_name, out_ptr) = self._addresses.items()
        n = int(np.prod(self._shape))
        x = np.frombuffer(bytes(self._trt.cudart.memory[in_ptr][: n * 4]), np.float32).reshape(self._shape)
        out = x.reshape(self._shape[0], -1).mean(1)[:, None] + np.arange(self._trt.num_classes, dtype=np.float32)
        self._trt.cudart.memory[out_ptr][: out.nbytes] = out.astype(np.float32).tobytes()
        self._runs += 1
        return True


    def _read(self, name: str) -> np.ndarray:
        shape = self._shapes[name]
        n = int(np.prod(shape)) * 4
        return np.frombuffer(bytes(self._trt.cudart.memory_at(self._addresses[name], n)), np.float32).reshape(shape)

    def _step(self) -> bool:
        """A step engine (frame, shift_in_i) -> (logits, shift_out_i): shift_out_i = shift_in_i + mean(frame),
        logits[k] = mean(frame) + k + sum_i mean(shift_in_i); buffers read and written in fake device memory."""
        frame = self._read("frame")
        ins = sorted(n for n in self._shapes if n.startswith("shift_in_"))
        level = float(frame.mean())
        logits = level + np.arange(self._trt.num_classes, dtype=np.float32) + sum(float(self._read(n).mean())
                                                                                    for n in ins)
        for name in ins:
            new = (self._read(name) + level).astype(np.float32).tobytes()
            self._trt.cudart.memory_at(self._addresses[name.replace("_in_", "_out_")], len(new))[:] = new
        self._trt.cudart.memory_at(self._addresses["logits"], logits.nbytes)[:] = logits.astype(np.float32).tobytes()
        self._runs += 1
        return True


class FakeRefitter(Restricted):
    def __init__(self, trt: FakeTensorRT, engine: FakeEngine) -> None:
        self._allowed, self._engine, self._source = trt._allowed("Refitter"), engine, None

    def refit_cuda_engine(self) -> bool:
        self._engine._refitted_from = self._source
        return self._source is not None


class FakeParserRefitter(Restricted):
    def __init__(self, trt: FakeTensorRT, refitter: FakeRefitter) -> None:
        self._allowed, self._refitter = trt._allowed("OnnxParserRefitter"), refitter

    def refit_from_file(self, path: str) -> bool:
        """Refit succeeds only from a graph whose weight type is the one the engine was built from."""
        if _graph_dtype(Path(path)) != self._refitter._engine._plan["dtype"]:
            return False
        self._refitter._source = path
        return True
