"""``OrtBackend``: every sub-network graph of a bundle as an ONNX Runtime session, created up front."""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...bundle.manifest import Manifest, resolve
from ...core.errors import BundleError, ConfigError
from . import trt_engine as trt_mod
from .ort_libs import provider_load_error
from .ort_options import CPU_EP, import_onnxruntime, provider_name, session_options, with_trt_profiles
from .sharing import TensorPool, optimize_for_sharing, register_shared_arena


class OrtBackend:
    """All sub-network graphs of a bundle as ONNX Runtime sessions, created up front.

    ``share_weights=True`` on the CPU EP: each graph is optimised once into a temporary directory
    (``optimize_for_sharing``), its large tensors are pooled by content across graphs (one copy
    in memory for all sessions, via ``SessionOptions.add_initializer``), and the sessions draw
    activations from one shared arena. ``share_weights=False``: every session loads and optimises
    its graph on its own (ORT's defaults: fastest per session, one private copy of the weights each).
    GPU providers never pool: their weights live in device memory, and an optimised model cannot be
    saved from a session whose nodes a TensorRT EP has compiled.

    INT8 bundles (``manifest.quantization``) keep ORT's weight pre-packing in shared mode: its quantized
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
        prepack = manifest.quantization is not None
        if self.share_weights:
            register_shared_arena()
        self.sessions: dict[int, Any] = {}
        self._files: dict[int, str] = {}
        self._input = manifest.input.name
        self._output = manifest.output_name
        # Mapped files may be unlinked once mapped (POSIX); elsewhere the directory may outlive us.
        # ORT prints its provider fallbacks to stdout and warns about unusable providers: this class
        # reports the provider a session landed on itself (below), in one line.
        with tempfile.TemporaryDirectory(prefix="ffn-ort-", ignore_cleanup_errors=True) as tmp, \
                contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            if wanted_ep != CPU_EP:
                preload_cuda_libraries(ort)
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
                    why = provider_load_error(wanted_ep)
                    raise ConfigError(f"ONNX Runtime could not start {wanted_ep} (the session landed on {landed}: "
                                      + (f"its library does not load: {why})" if why else
                                         "check the driver and the CUDA/cuDNN/TensorRT libraries ORT needs)"))
                session.disable_fallback()
                self.sessions[g.frames] = session
                self._files[g.frames] = g.file
        self.frame_counts = tuple(sorted(self.sessions))
        self.active_providers: list[str] = next(iter(self.sessions.values())).get_providers()
        self.name = f"onnxruntime[{self.active_providers[0]}]"

    def run(self, frames: int, clip: np.ndarray) -> np.ndarray:
        """Logits for one clip batch on the ``frames`` graph."""
        session = self.sessions.get(frames)
        if session is None:
            raise ValueError(f"no graph for {frames} frames (have {list(self.frame_counts)})")
        try:
            return session.run([self._output], {self._input: clip})[0]
        except (MemoryError, RecursionError):
            raise
        except Exception as e:  # ORT's own types: a graph that loaded but cannot compute (a value out of range)
            raise BundleError(f"{self.bundle / self._files[frames]}: ONNX Runtime failed running it: "
                              f"{trt_mod.first_line(e)}") from None

    def close(self) -> None:
        self.sessions.clear()
        self.pool = None


def preload_cuda_libraries(ort: Any) -> None:
    """Load CUDA and cuDNN from the nvidia-* wheels (``onnxruntime-gpu[cuda,cudnn]``) before a GPU session.

    ONNX Runtime looks for them there only when ``preload_dlls`` asks (or torch loaded them first);
    without it the CUDA EP cannot start and the session lands on the CPU. A no-op on the CPU build;
    what it prints (a library it did not find) is dropped: a session that still cannot start names
    the missing library itself.
    """
    preload = getattr(ort, "preload_dlls", None)
    if preload is None:  # before ONNX Runtime 1.21
        return
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(OSError):
        preload()
