"""``TensorRTBackend``: the bundle's native TensorRT engines for this GPU (built by ``ffn-export engines``).

Manifest format (written by the exporter): ``extra["engines"][key]`` for each device key (GPU model
+ TensorRT version + precision) = {"gpu", "tensorrt", "precision", "stripped", "max_batch",
"engines": {"<frames>": {"file", "profile", "refit_from", "t_min", "t_max"}}}. A stripped engine carries
no weights: it is refitted at load time from ``refit_from``, i.e. from the one shared weights.bin (or,
for fp16 on TensorRT 11, the one shared weights.fp16.bin next to the fp16-typed graphs).

The engines themselves are loaded and run by ``trt_engine`` (the module the exporter builds them with).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...bundle.manifest import Manifest, resolve
from ...bundle.sections import EngineSet
from ...core.errors import BundleError, ClosedError
from . import trt_engine as trt_mod


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
    """The bundle's TensorRT engines for this GPU: ``runtime/backends/trt_engine.py``'s EngineContexts over them.

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
        chosen = pick_engine_set(manifest.engine_sets, gpu, trt.__version__, precision)
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
        self.precision = chosen.precision

    def run(self, frames: int, clip: np.ndarray) -> np.ndarray:
        """Logits for one clip batch on the ``frames`` engine."""
        if self._contexts is None:
            raise ClosedError("TensorRT backend is closed")
        return self._contexts.run(frames, clip)

    def close(self) -> None:
        if self._contexts is not None:
            self._contexts.close()
            self._contexts = None
        self._engines = {}
