"""Inference backends: one small interface over ONNX Runtime and native TensorRT engines (no torch).

Every backend holds ALL the bundle's sub-network graphs ready at once (switching the frame count
is a dictionary lookup, never a load) and answers ``run(frames, clip) -> logits`` for a float32
clip (N, T, 3, H, W) already normalised, on the graph exported for ``frames`` (T == ``frames``,
or any T when that graph has a dynamic frame dimension).

* ``OrtBackend``: one ``onnxruntime.InferenceSession`` per graph, explicit providers (CPU EP by
  default; CUDA / TensorRT EPs on request, ``ort_providers``: the TensorRT EP with engine and timing
  caches and explicit profiles per graph), all options built in ``session_options``; a session that
  lands on another provider than the one asked for is refused. Weight sharing on the CPU EP only
  (``share_weights=True``, the default): ORT normally gives every session its own copy of the
  weights — the copy it loads, plus the copy its optimiser rewrites (x86 NCHWc weight layout) — so N
  sub-networks cost N models. Instead each graph is optimised once at open (all ORT optimisations
  except the fusions that would bake a sub-network's norm into a shared convolution), saved to a
  temporary file, and its large tensors (now identical across sub-networks) are pooled by content
  and handed to every session as the same ``OrtValue`` (``SessionOptions.add_initializer``); the
  sessions also share one activation arena (they run one at a time). Where the exporter gave a
  sub-network its own copy of an early convolution with the norm folded in (``--fold-budget``), that
  copy is pooled like any tensor: one per sub-network, shared by graphs of the same sub-network,
  never mistaken for another's (pooling is by content, dtype and shape). Simply adding the bundle's
  weights with ``add_initializer`` is not enough: the NCHWc re-layout still copies them per session,
  and turning it off costs ~35 % latency on x86. ``benchmarks/runtime_latency.py`` measures RSS and
  latency of both modes.
* ``TensorRTBackend``: the engines listed in ``manifest.extra["engines"]`` for this device, run by
  ``runtime/tensorrt.py`` (the module the exporter builds them with). Engines built for another GPU,
  TensorRT version or precision are refused with a message that says how to rebuild them.
* ``open_backend(..., backend="auto")`` tries TensorRT engines > ORT TensorRT EP > ORT CUDA EP >
  ORT CPU, skipping any that cannot start (reason logged in one line), and logs its choice
  (``Backend.name``); a backend named explicitly that cannot start is a one-line FFNError.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import sys
import tempfile
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from . import deps
from . import tensorrt as trt_mod
from .errors import BundleError, ConfigError, FFNError
from .manifest import GraphEntry, Manifest, quant_spec, resolve
from .onnx_refs import ExternalTensor, read_external_tensors

log = logging.getLogger("ffn_edge.runtime")

BACKENDS = ("auto", "onnxruntime", "ort-cpu", "ort-cuda", "ort-tensorrt", "ort-tensorrt-fp16", "tensorrt")
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


def external_tensors(graph_path: Path) -> list[ExternalTensor]:
    """The external initializers of an ONNX graph file (name, dtype, shape, file, offset, length)."""
    try:
        return read_external_tensors(graph_path.read_bytes())
    except ValueError as e:
        raise BundleError(f"{graph_path}: not a readable ONNX graph ({e})") from None


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
        ort = import_onnxruntime()

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


def import_onnxruntime() -> Any:
    """The ``onnxruntime`` module, or a ConfigError in one line saying what to install."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ConfigError(deps.HINTS["onnxruntime"]) from None
    return ort


def ort_providers(kind: str, device: int = 0, *, cache_dir: Path | None = None, fp16: bool = False) -> list[Any]:
    """The explicit provider list for ``kind`` in ("cpu", "cuda", "tensorrt"); CPU is always last.

    TensorRT EP: engines and the timing cache persist under ``cache_dir`` (else every process start
    rebuilds every engine); fp16 only when asked (``ort-tensorrt-fp16``). Its optimisation profiles
    are per graph: ``with_trt_profiles``.
    """
    if kind == "cpu":
        return [CPU_EP]
    cuda = (CUDA_EP, {"device_id": str(device)})
    if kind == "cuda":
        return [cuda, CPU_EP]
    if kind == "tensorrt":
        trt = {"device_id": str(device), "trt_fp16_enable": "True" if fp16 else "False"}
        if cache_dir is not None:
            trt.update({"trt_engine_cache_enable": "True", "trt_engine_cache_path": str(cache_dir),
                        "trt_timing_cache_enable": "True", "trt_timing_cache_path": str(cache_dir)})
        return [(TRT_EP, trt), cuda, CPU_EP]
    raise ConfigError(f"unknown ONNX Runtime provider kind {kind!r}")


def with_trt_profiles(providers: Sequence[Any], manifest: Manifest, graph: GraphEntry,
                      max_batch: int = trt_mod.MAX_BATCH) -> list[Any]:
    """``providers`` with explicit TensorRT EP profiles for ``graph``: batch 1..max_batch, its T range.

    Without them the EP builds for the first shape it sees and rebuilds mid-stream on a new one.
    """
    p = trt_mod.frame_profiles(manifest)[graph.file][graph.frames]
    h, w = manifest.input.size
    name = manifest.input.name

    def shape(n: int, t: int) -> str:
        return f"{name}:{n}x{t}x3x{h}x{w}"

    out: list[Any] = []
    for entry in providers:
        if isinstance(entry, tuple) and entry[0] == TRT_EP:
            entry = (TRT_EP, {**entry[1], "trt_profile_min_shapes": shape(1, p.t_min),
                              "trt_profile_opt_shapes": shape(1, p.t_opt),
                              "trt_profile_max_shapes": shape(max_batch, p.t_max)})
        out.append(entry)
    return out


def ort_trt_cache_dir(bundle: Path, manifest: Manifest) -> Path:
    """Where the ORT TensorRT EP keeps engines: ``BUNDLE/engines/ort-trt`` when the bundle is writable,
    else ``$XDG_CACHE_HOME/ffn-edge/ort-trt/<graphs' hash>`` (a read-only bundle on a device)."""
    inside = bundle / trt_mod.ENGINES_DIR / "ort-trt"
    if os.access(inside if inside.is_dir() else bundle, os.W_OK):
        inside.mkdir(parents=True, exist_ok=True)
        return inside
    digest = hashlib.sha256("".join(sorted(str(manifest.files.get(g.file)) for g in manifest.graphs)).encode())
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    out = base / "ffn-edge" / "ort-trt" / digest.hexdigest()[:16]
    out.mkdir(parents=True, exist_ok=True)
    return out


def provider_name(entry: Any) -> str:
    return entry[0] if isinstance(entry, tuple) else str(entry)


def session_options(threads: int | None = None, shared: bool = True, optimization: str = "all",
                    prepack: bool = False) -> Any:
    """Every ORT session option the runtime uses, in one place.

    ``threads``: intra-op threads (None: ORT's default, one per physical core). Sessions run one at
    a time (a lock in the caller), so inter-op parallelism stays off. ``shared``: the session takes
    its weights from a TensorPool and its activations from the shared arena; pre-packing is off (it
    would give each session a private packed copy). ``optimization``: "all" | "extended" | "basic" |
    "none" (graphs already optimised by ``optimize_for_sharing`` load with "none"). ``prepack``: keep
    ORT's weight pre-packing in a shared session (INT8 bundles: see ``OrtBackend``).
    """
    ort = import_onnxruntime()

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
    # fatal only: a failure raises with its message (turned into one BundleError line), so the ERROR lines
    # ORT would also print are a second, coloured copy of it; EP-fallback warnings are expected on CPUs
    so.log_severity_level = 4
    # No spin-waiting after a run: the runtime shares the cores with its capture thread (and an edge
    # device with everything else), and spinning threads burn power. Measured with 2 threads on a
    # busy 2-core machine: spinning made the run after another sub-network ~40 ms slower (TSM-R18).
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if shared:
        if not prepack:
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
    ort = import_onnxruntime()

    out = out_dir / graph.name
    so = session_options(threads, shared=False, optimization="all")
    so.optimized_model_filepath = str(out)
    so.add_session_config_entry("session.optimized_model_external_initializers_file_name", f"{graph.stem}.bin")
    so.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes",
                                str(POOL_MIN_BYTES))
    so.log_severity_level = 4  # ORT warns that an NCHWc-optimised file is hardware specific: we know
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
    ort = import_onnxruntime()

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

    ``share_weights=True`` on the CPU EP: each graph is optimised once into a temporary directory
    (``optimize_for_sharing``), its large tensors are pooled by content across graphs (one copy
    in memory for all sessions, via ``SessionOptions.add_initializer``), and the sessions draw
    activations from one shared arena. ``share_weights=False``: every session loads and optimises
    its graph on its own (ORT's defaults: fastest per session, one private copy of the weights each).
    GPU providers never pool: their weights live in device memory, and an optimised model cannot be
    saved from a session whose nodes a TensorRT EP has compiled.

    INT8 bundles (``manifest.quant_spec``) keep ORT's weight pre-packing in shared mode: its quantized
    convolutions run on weights packed at load, and without them re-pack on every run (TSM-ResNet-50,
    224 px, 4 frames, 1 thread: INT8 0.83x FP32 latency without pre-packing, 0.56x with). Each session
    then holds its own packed copy of the INT8 weights (a quarter of the FP32 bytes each) next to the
    pooled one.

    Every session must run on the first provider asked for: ORT silently falls back to the next one
    (printing to stdout) when a provider cannot start, which is refused here as a ConfigError; its
    run-time fallback is disabled, so a failing EP raises instead of moving to the CPU mid-stream.
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
        ort = import_onnxruntime()

        self.bundle = Path(bundle)
        self.manifest = manifest
        self.providers = list(providers)
        wanted_ep = provider_name(self.providers[0])
        self.share_weights = share_weights and wanted_ep == CPU_EP
        wanted = set(frame_counts) if frame_counts is not None else {g.frames for g in manifest.graphs}
        graphs = [g for g in sorted(manifest.graphs, key=lambda g: g.frames) if g.frames in wanted]
        if not graphs:
            raise BundleError(f"{self.bundle}: no graph for frame counts {sorted(wanted)}")
        self.pool = TensorPool() if self.share_weights else None
        prepack = quant_spec(manifest) is not None
        if self.share_weights:
            register_shared_arena()
        self.sessions: dict[int, Any] = {}
        self._input = manifest.input.name
        self._output = manifest.output_name
        # Mapped files may be unlinked once mapped (POSIX); elsewhere the directory may outlive us.
        # ORT prints its provider fallbacks to stdout and warns about unusable providers: this class
        # reports the provider a session landed on itself (below), in one line.
        with tempfile.TemporaryDirectory(prefix="ffn-ort-", ignore_cleanup_errors=True) as tmp, \
                contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            for g in graphs:
                path = resolve(self.bundle, g.file)
                providers_g = with_trt_profiles(self.providers, manifest, g)
                try:
                    if self.pool is not None:
                        path = optimize_for_sharing(path, Path(tmp), threads, providers_g)
                        so = session_options(threads, shared=True, optimization="none", prepack=prepack)
                        self.pool.add_graph(path, so)
                    else:
                        so = session_options(threads, shared=False, optimization="all")
                    session = ort.InferenceSession(str(path), so, providers=providers_g)
                except BundleError:
                    raise
                except Exception as e:  # ORT raises its own types (Fail, InvalidGraph, EPFail, ...)
                    raise BundleError(f"{self.bundle / g.file}: ONNX Runtime cannot load the graph: "
                                      f"{trt_mod.first_line(e)}") from None
                landed = session.get_providers()[0]
                if landed != wanted_ep:
                    raise ConfigError(f"ONNX Runtime could not start {wanted_ep} (the session landed on {landed}: "
                                      "check the driver and the CUDA/cuDNN/TensorRT libraries ORT needs)")
                session.disable_fallback()
                self.sessions[g.frames] = session
        self.frame_counts = tuple(sorted(self.sessions))
        self.active_providers: list[str] = next(iter(self.sessions.values())).get_providers()
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
# "engines": {"<frames>": {"file", "profile", "refit_from", "t_min", "t_max"}}}. A stripped engine carries
# no weights: it is refitted at load time from ``refit_from``, i.e. from the one shared weights.bin (or,
# for fp16 on TensorRT 11, the one shared weights.fp16.bin next to the fp16-typed graphs).


@dataclasses.dataclass(frozen=True)
class EngineRef:
    """Where one frame count's engine is: file, optimisation profile, graph to refit from, T range."""

    file: str
    profile: int
    refit_from: str
    t_min: int
    t_max: int


@dataclasses.dataclass(frozen=True)
class EngineSet:
    """The engines a bundle holds for one device key."""

    gpu: str
    trt_version: str
    precision: str  # "fp32" | "fp16" | "int8" (explicit quantization from an INT8 bundle's QDQ graphs)
    stripped: bool
    engines: dict[int, EngineRef]  # frames -> engine
    max_batch: int = trt_mod.MAX_BATCH

    def describe(self) -> str:
        return f"{self.gpu!r} / TensorRT {self.trt_version} / {self.precision}"


def tensorrt_engine_sets(manifest: Manifest) -> list[EngineSet]:
    """Every engine set the manifest lists (empty when none); BundleError when malformed.

    Entries written before T ranges were recorded accept exactly their own frame count.
    """
    sets = []
    try:
        for entry in (manifest.extra.get("engines") or {}).values():
            engines = {int(t): EngineRef(str(e["file"]), int(e.get("profile", 0)), str(e["refit_from"]),
                                         int(e.get("t_min", t)), int(e.get("t_max", t)))
                       for t, e in entry["engines"].items()}
            sets.append(EngineSet(str(entry["gpu"]), str(entry["tensorrt"]), str(entry["precision"]),
                                  bool(entry.get("stripped", True)), engines,
                                  int(entry.get("max_batch", trt_mod.MAX_BATCH))))
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
    """The bundle's TensorRT engines for this GPU: ``runtime/tensorrt.py``'s EngineContexts over them.

    ``frame_ranges``: the T each frame count's engine accepts (a dynamic-T graph's engine takes every
    count the nearest rule routes to it). GPU memory: one copy of weights per engine (TensorRT
    cannot share constants across engines) plus ONE activation buffer for all of them.
    """

    def __init__(self, bundle: str | os.PathLike[str], manifest: Manifest, device: int = 0,
                 precision: str | None = None) -> None:
        trt, cudart = trt_mod.import_tensorrt(), trt_mod.import_cudart()
        self._contexts: trt_mod.EngineContexts | None = None
        trt_mod.cuda_call(cudart.cudaSetDevice(device), "cudaSetDevice")
        gpu = trt_mod.gpu_name(cudart, device)
        chosen = pick_engine_set(tensorrt_engine_sets(manifest), gpu, trt.__version__, precision)
        logger = trt.Logger(trt.Logger.WARNING)
        engines: dict[str, Any] = {}
        loaded: dict[int, trt_mod.LoadedEngine] = {}
        for frames, ref in sorted(chosen.engines.items()):
            if ref.file not in engines:
                engines[ref.file] = trt_mod.load_engine(trt, logger, resolve(bundle, ref.file),
                                                        resolve(bundle, ref.refit_from), chosen.stripped)
            profile = trt_mod.FrameProfile(ref.t_min, frames, ref.t_max)
            loaded[frames] = trt_mod.LoadedEngine(engines[ref.file], ref.profile, profile)
        self._contexts = trt_mod.EngineContexts(trt, cudart, loaded, manifest.input.name, manifest.output_name,
                                                manifest.input.size, chosen.max_batch)
        self._engines = engines
        self.frame_counts = self._contexts.frame_counts
        self.frame_ranges = {t: (p.t_min, p.t_max) for t, p in self._contexts.profiles.items()}
        self.name = f"tensorrt[{chosen.precision}]"

    def run(self, frames: int, clip: np.ndarray) -> np.ndarray:
        """Logits for one clip batch on the ``frames`` engine."""
        if self._contexts is None:
            raise RuntimeError("TensorRT backend is closed")
        return self._contexts.run(frames, clip)

    def close(self) -> None:
        if self._contexts is not None:
            self._contexts.close()
            self._contexts = None
        self._engines = {}


# ------------------------------------------------------------------------------------------------
# Choosing a backend

_ORT_KINDS = {"ort-cpu": ("cpu", False), "ort-cuda": ("cuda", False), "ort-tensorrt": ("tensorrt", False),
              "ort-tensorrt-fp16": ("tensorrt", True)}
_EP_OF_KIND = {"cpu": CPU_EP, "cuda": CUDA_EP, "tensorrt": TRT_EP}


def _open_one(name: str, bundle: Path, manifest: Manifest, device: int, threads: int | None,
              share_weights: bool, tensorrt_precision: str | None) -> Backend:
    """Start the backend ``name`` (never "auto"/"onnxruntime"); any failure is an FFNError in one line."""
    try:
        if name == "tensorrt":
            return TensorRTBackend(bundle, manifest, device, precision=tensorrt_precision)
        kind, fp16 = _ORT_KINDS[name]
        if kind == "tensorrt":
            _check_trt_int8(manifest)
        need = _EP_OF_KIND[kind]
        available = import_onnxruntime().get_available_providers()
        if need not in available:
            raise ConfigError(f"this onnxruntime has no {need} (it has {', '.join(sorted(available))})"
                              + (f"; {deps.ORT_HINT}" if kind != "cpu" else ""))
        cache = ort_trt_cache_dir(bundle, manifest) if kind == "tensorrt" else None
        return OrtBackend(bundle, manifest, ort_providers(kind, device, cache_dir=cache, fp16=fp16), threads,
                          share_weights)
    except FFNError:
        raise
    except Exception as e:  # TypeError from a CUDA init failure, OSError from a missing library, ...
        raise ConfigError(f"{type(e).__name__}: {trt_mod.first_line(e)}") from None


def _check_trt_int8(manifest: Manifest) -> None:
    """TensorRT (native or ORT's EP) runs QDQ graphs only with symmetric INT8 activations."""
    q = quant_spec(manifest)
    if q is not None and q.activations != "s8":
        raise ConfigError(f"this INT8 bundle has {q.activations} activations (for ONNX Runtime on the CPU); TensorRT "
                          "takes symmetric int8 only: re-export with --int8 --int8-activations s8")


def candidates(backend: str, manifest: Manifest) -> list[str]:
    """The backends ``backend`` stands for, best first: "auto" and "onnxruntime" try several."""
    if backend not in ("auto", "onnxruntime"):
        return [backend]
    try:
        available = set(import_onnxruntime().get_available_providers())
    except ConfigError:
        available = set()
    out = ["tensorrt"] if backend == "auto" and tensorrt_engine_sets(manifest) else []
    out += [n for n, ep in (("ort-tensorrt", TRT_EP), ("ort-cuda", CUDA_EP)) if ep in available]
    return out + ["ort-cpu"]


def open_backend(
    bundle: str | os.PathLike[str],
    manifest: Manifest,
    backend: str = "auto",
    device: int = 0,
    threads: int | None = None,
    share_weights: bool = True,
    *,
    tensorrt_precision: str | None = None,
) -> Backend:
    """Create the backend named ``backend`` (see BACKENDS); "auto" takes the best that starts here.

    Order for "auto": native TensorRT engines from the bundle > ORT TensorRT EP > ORT CUDA EP > ORT
    CPU EP; "onnxruntime" is the same without native engines. A candidate that cannot start, for
    whatever reason, is skipped with its reason in one log line. A backend named explicitly that
    cannot start raises a one-line ConfigError / BundleError (``ffn-run`` exits 2). The choice is
    logged and is the returned backend's ``name``. ``tensorrt_precision``: "fp16" | "fp32" | None
    (the best the bundle has).
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    root = Path(bundle)
    names = candidates(backend, manifest)
    chosen: Backend | None = None
    for i, name in enumerate(names):
        last = i == len(names) - 1
        try:
            chosen = _open_one(name, root, manifest, device, threads, share_weights, tensorrt_precision)
            break
        except FFNError as e:
            if len(names) == 1 or last:
                prefix = f"backend {name!r} cannot start: " if len(names) == 1 else f"no backend could start ({name}: "
                raise type(e)(prefix + str(e) + ("" if len(names) == 1 else ")")) from None
            log.warning("backend %s cannot start here (%s); trying %s", name, e, names[i + 1])
    assert chosen is not None
    log.info("ffn-edge runtime backend: %s (requested %r)", chosen.name, backend)
    return chosen
