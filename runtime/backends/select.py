"""Choosing a backend: ``open_backend(..., backend="auto")`` takes the best that starts on this machine.

Order for "auto": native TensorRT engines > ORT TensorRT EP > ORT CUDA EP > ORT CPU, skipping any
that cannot start (reason logged in one line), and logs its choice (``Backend.name``); a backend
named explicitly that cannot start is a one-line FFNError.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ...bundle.manifest import Manifest
from ...core import deps
from ...core.errors import ConfigError, FFNError
from . import trt_engine as trt_mod
from .base import BACKENDS, Backend
from .ort import OrtBackend
from .ort_options import CPU_EP, CUDA_EP, TRT_EP, import_onnxruntime, ort_providers, ort_trt_cache_dir
from .tensorrt import TensorRTBackend

log = logging.getLogger("ffn_edge.runtime")

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
        providers = ort_providers(kind, device, cache_dir=cache, fp16=fp16, int8=manifest.quantization is not None)
        return OrtBackend(bundle, manifest, providers, threads, share_weights)
    except FFNError:
        raise
    except Exception as e:  # TypeError from a CUDA init failure, OSError from a missing library, ...
        raise ConfigError(f"{type(e).__name__}: {trt_mod.first_line(e)}") from None


def _check_trt_int8(manifest: Manifest) -> None:
    """TensorRT (native or ORT's EP) runs QDQ graphs only with symmetric INT8 activations."""
    q = manifest.quantization
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
    out = ["tensorrt"] if backend == "auto" and manifest.engine_sets else []
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
