"""``ffn-export --int8``: a bundle's FP32 graphs -> QDQ INT8 graphs, each calibrated on its own clips.

Called by ``bundle._build`` between folding and weight sharing (graphs still hold their tensors
inline). Per graph (one sub-network at one frame count): ORT's basic optimisations minus the fusions
that would copy a shared weight (``quantize.preprocess``), calibration clips from ``--calib``
resampled to that graph's frame count, MinMax activation ranges (``quantize.calibrate``), merged over
all graphs when the scope is ``shared``, then ORT's ``quantize_static`` (``quantize.quantize``).
Tensors that differ per graph under one name get a per-sub-network name (``quantize.tag_calibrated``),
so the weight sharing step stores every INT8 weight once. Finally the export-time check: top-1
agreement of each INT8 graph with its FP32 graph on the verification clips, refused below
``min_agreement`` (``--int8-min-agreement``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ..checkpoint import CheckpointMeta
from .calib import calibration_clips
from .errors import ExportError
from .int8_config import METHOD, Int8Options
from .quantize import agreement, calibrate, merge_ranges, preprocess, quantize, tag_calibrated
from .verify import resample


def quantize_graphs(graphs: dict[str, onnx.ModelProto], plan: list[tuple[int, int, str, int]],
                    subnet_of: dict[str, int], meta: CheckpointMeta, opts: Int8Options, workdir: Path,
                    check_clips: np.ndarray | None) -> tuple[dict[str, onnx.ModelProto], dict[str, Any]]:
    """INT8 copies of ``graphs`` (file -> proto) and the manifest's ``extra.quantization`` record.

    ``plan``: (frames, subnet, file, traced frames) per served frame count. ``check_clips``: the
    verification clips at the largest frame count (None: no agreement check, ``--no-verify``).
    """
    t0 = time.perf_counter()
    traced = {file: t for _, _, file, t in plan}
    longest = max(traced.values())
    clips = calibration_clips(opts.calib, opts.calib_clips, longest, meta.input_size, meta.resize_shorter,
                              meta.mean, meta.std)
    ready = {file: preprocess(graphs[file], workdir) for file in traced}
    ranges = {file: calibrate(ready[file], resample(clips, traced[file]), workdir, desc=f"INT8 calibration {file}")
              for file in traced}
    if opts.config.scope == "shared":
        one = merge_ranges(list(ranges.values()))
        ranges = {file: one for file in ranges}
    quantized = {file: quantize(ready[file], ranges[file], opts.config, workdir) for file in traced}
    renamed = tag_calibrated(quantized, subnet_of)
    checks: dict[str, float] = {}
    if check_clips is not None:
        for n, k, file, _ in plan:
            share = agreement(graphs[file], quantized[file], resample(check_clips, n))
            checks[str(n)] = share
            if share < opts.min_agreement:
                raise ExportError(
                    f"INT8 check failed for {n} frames ({file}, sub-network {k}): top-1 agrees with FP32 on "
                    f"{share:.0%} of {len(check_clips)} clips (minimum {opts.min_agreement:.0%}, "
                    "--int8-min-agreement); try more or other --calib clips, or --int8-layout folded")
    record = {
        "format": "QDQ",
        "tool": "onnxruntime.quantization.quantize_static",
        "weights": "int8 per-channel symmetric" + (" (7-bit range)" if opts.config.reduce_range else ""),
        "activations": opts.config.activations,
        "layout": opts.config.layout,
        "calibration": {"data": opts.calib.describe(), "count": int(len(clips)), "method": METHOD,
                        "scope": opts.config.scope,
                        "frames": {file: traced[file] for file in sorted(traced)}},
        "per_graph_tensors": renamed,
        "agreement": {"min": opts.min_agreement, "graphs": checks} if check_clips is not None else {"skipped": True},
        "seconds": round(time.perf_counter() - t0, 1),
    }
    return quantized, record
