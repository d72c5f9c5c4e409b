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

A causal checkpoint's step graphs are quantized with them (``int8_step``): calibrated on the same
clips fed frame by frame with the buffers the FP32 step graph carries, ranges merged among the step
graphs only when the scope is ``shared`` (a step graph's tensors are named apart from the clip
graphs'), and checked against the INT8 clip graph of their sub-network.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ..bundle.sections import StepBuffer
from ..checkpoint import CheckpointMeta
from .calib import calibration_clips
from .errors import ExportError
from .int8_config import METHOD, Int8Options
from .int8_step import step_agreement, step_feeds
from .quantize import agreement, calibrate, calibrate_feeds, merge_ranges, preprocess, quantize, tag_calibrated
from .verify import resample


def quantize_graphs(graphs: dict[str, onnx.ModelProto], plan: list[tuple[int, int, str, int]],
                    subnet_of: dict[str, int], meta: CheckpointMeta, opts: Int8Options, workdir: Path,
                    check_clips: np.ndarray | None, steps: dict[str, list[StepBuffer]] | None = None,
                    ) -> tuple[dict[str, onnx.ModelProto], dict[str, Any]]:
    """INT8 copies of ``graphs`` (file -> proto) and the manifest's ``extra.quantization`` record.

    ``plan``: (frames, subnet, file, traced frames) per served frame count. ``check_clips``: the
    verification clips at the largest frame count (None: no agreement check, ``--no-verify``).
    ``steps``: the step graphs among ``graphs`` (file -> buffers), quantized too.
    """
    t0 = time.perf_counter()
    traced = {file: t for _, _, file, t in plan}
    longest = max(traced.values())
    clips = calibration_clips(opts.calib, opts.calib_clips, longest, meta.input_size, meta.resize_shorter,
                              meta.mean, meta.std)
    steps = steps or {}
    step_frames = {file: next(t for _, k, _, t in plan if k == subnet_of[file]) for file in steps}
    ready = {file: preprocess(graphs[file], workdir) for file in [*traced, *steps]}
    ranges = {file: calibrate(ready[file], resample(clips, traced[file]), workdir, desc=f"INT8 calibration {file}")
              for file in traced}
    step_ranges = {}
    for file, buffers in steps.items():
        feeds = step_feeds(ready[file], buffers, resample(clips, step_frames[file]))
        step_ranges[file] = calibrate_feeds(ready[file], feeds, len(feeds), workdir, desc=f"INT8 calibration {file}")
    if opts.config.scope == "shared":  # one table for the clip graphs, one for the step graphs
        ranges = {file: one for one in [merge_ranges(list(ranges.values()))] for file in ranges}
        step_ranges = {file: one for one in [merge_ranges(list(step_ranges.values()))] for file in step_ranges}
    ranges.update(step_ranges)
    quantized = {file: quantize(ready[file], ranges[file], opts.config, workdir) for file in ranges}
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
    step_checks = _check_steps(quantized, plan, subnet_of, steps, opts, check_clips)
    record = {
        "format": "QDQ",
        "tool": "onnxruntime.quantization.quantize_static",
        "weights": "int8 per-channel symmetric" + (" (7-bit range)" if opts.config.reduce_range else ""),
        "activations": opts.config.activations,
        "layout": opts.config.layout,
        "calibration": {"data": opts.calib.describe(), "count": int(len(clips)), "method": METHOD,
                        "scope": opts.config.scope,
                        "frames": dict(sorted({**traced, **step_frames}.items()))},
        "per_graph_tensors": renamed,
        "agreement": {"min": opts.min_agreement, "graphs": checks} if check_clips is not None else {"skipped": True},
        **({"step_agreement": {"min": opts.min_agreement, "versus": "the INT8 clip graph of the sub-network",
                               "graphs": step_checks} if check_clips is not None else {"skipped": True}}
           if steps else {}),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    return quantized, record


def _check_steps(quantized: dict[str, onnx.ModelProto], plan: list[tuple[int, int, str, int]],
                 subnet_of: dict[str, int], steps: dict[str, list[StepBuffer]], opts: Int8Options,
                 check_clips: np.ndarray | None) -> dict[str, Any]:
    """Each INT8 step graph against its sub-network's INT8 clip graph (``int8_step.step_agreement``)."""
    if check_clips is None:
        return {}
    checks: dict[str, Any] = {}
    for file, buffers in steps.items():
        n, k, clip_file, _ = next(p for p in plan if p[1] == subnet_of[file])
        got = step_agreement(quantized[file], quantized[clip_file], buffers, resample(check_clips, n))
        checks[file] = dataclasses.asdict(got)
        if got.top1_agreement < opts.min_agreement:
            raise ExportError(
                f"INT8 step check failed for {file} (sub-network {k}, {n} frames one by one): top-1 agrees with "
                f"the INT8 clip graph {clip_file} on {got.top1_agreement:.0%} of {got.clips} clips (minimum "
                f"{opts.min_agreement:.0%}, --int8-min-agreement; max |logit diff| {got.max_abs_diff:.3g})")
    return checks
