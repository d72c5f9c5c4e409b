"""ONNX Runtime setup in one place: importing it, explicit execution providers, session options.

Providers are always explicit, CPU last (a GPU provider that cannot start is refused by the
backend, never a silent fallback); the TensorRT EP gets an engine/timing cache and per-graph
optimisation profiles. ``session_options`` holds every ``SessionOptions`` setting the runtime uses.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...bundle.manifest import GraphEntry, Manifest
from ...core import defaults as D
from ...core import deps
from ...core.errors import ConfigError
from . import trt_engine as trt_mod

CPU_EP = "CPUExecutionProvider"
CUDA_EP = "CUDAExecutionProvider"
TRT_EP = "TensorrtExecutionProvider"
# ORT rewrites that bake a sub-network's own constants (its folded norm) into a shared convolution's
# weight, making it differ per sub-network. Disabled when weights are shared (see module docstring).
# ConvAddFusion stays on: it only changes the (small, per-graph) bias, and the exporter writes each
# norm it keeps apart as Add(shift/scale) then Mul(scale) so that this fusion takes half of it.
COPYING_OPTIMIZERS = ("ConvBNFusion", "ConvMulFusion")


def import_onnxruntime() -> Any:
    """The ``onnxruntime`` module, or a ConfigError in one line saying what to install."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ConfigError(deps.HINTS["onnxruntime"]) from None
    return ort


def ort_providers(kind: str, device: int = 0, *, cache_dir: Path | None = None, fp16: bool = False,
                  int8: bool = False) -> list[Any]:
    """The explicit provider list for ``kind`` in ("cpu", "cuda", "tensorrt"); CPU is always last.

    TensorRT EP: engines and the timing cache persist under ``cache_dir`` (else every process start
    rebuilds every engine); fp16 only when asked (``ort-tensorrt-fp16``); INT8 for an INT8 bundle's
    QDQ graphs (``int8``: TensorRT 10 takes INT8 kernels only with its INT8 flag, which is what this
    option sets; no calibration table: the Q/DQ scales are in the graph). Its optimisation profiles
    are per graph: ``with_trt_profiles``.
    """
    if kind == "cpu":
        return [CPU_EP]
    cuda = (CUDA_EP, {"device_id": str(device)})
    if kind == "cuda":
        return [cuda, CPU_EP]
    if kind == "tensorrt":
        trt = {"device_id": str(device), "trt_fp16_enable": "True" if fp16 else "False",
               "trt_int8_enable": "True" if int8 else "False"}
        if cache_dir is not None:
            trt.update({"trt_engine_cache_enable": "True", "trt_engine_cache_path": str(cache_dir),
                        "trt_timing_cache_enable": "True", "trt_timing_cache_path": str(cache_dir)})
        return [(TRT_EP, trt), cuda, CPU_EP]
    raise ConfigError(f"unknown ONNX Runtime provider kind {kind!r}")


def with_trt_profiles(providers: Sequence[Any], manifest: Manifest, graph: GraphEntry,
                      max_batch: int = D.MAX_BATCH) -> list[Any]:
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
