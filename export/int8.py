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

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ..checkpoint import CheckpointMeta
from .calib import DEFAULT_CALIB_CLIPS, SYNTHETIC, CalibSource, calibration_clips, check_calib_clips
from .errors import ExportError
from .quantize import METHOD, QuantConfig, agreement, calibrate, merge_ranges, preprocess, quantize, tag_calibrated
from .verify import resample

# Top-1 agreement with the FP32 graph below which an INT8 export is refused. Not 1.0: clips whose two
# best logits are nearly tied may flip under any rounding; a broken calibration (every clip the same
# class, the failure edge users report) lands far below.
DEFAULT_MIN_AGREEMENT = 0.9


@dataclasses.dataclass(frozen=True)
class Int8Options:
    """Everything ``--int8`` adds to an export."""

    calib: CalibSource = CalibSource(SYNTHETIC)
    calib_clips: int = DEFAULT_CALIB_CLIPS
    config: QuantConfig = QuantConfig()
    min_agreement: float = DEFAULT_MIN_AGREEMENT

    def __post_init__(self) -> None:
        check_calib_clips(self.calib_clips)
        check_min_agreement(self.min_agreement)


def check_min_agreement(value: float) -> None:
    """A share in [0, 1] (also refuses NaN)."""
    if not 0.0 <= value <= 1.0:
        raise ExportError(f"--int8-min-agreement must be in [0, 1] (a share of the verification clips), got {value}")


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
    ranges = {file: calibrate(ready[file], resample(clips, traced[file]), workdir) for file in traced}
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
