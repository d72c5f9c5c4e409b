"""INT8 step graphs: their calibration feeds, and their check against the INT8 clip graph.

A step graph's activations are the clip graph's, one frame at a time, plus the shift buffers it takes
as inputs. So it is calibrated on the same calibration clips, resampled to its sub-network's frame
count, run frame by frame through the FP32 step graph from zero buffers: every feed is one frame and
the buffers the previous frame left, exactly what the graph sees in a stream. Its weights quantize to
the clip graphs' bytes (per-channel symmetric, ``quantize``), so weight sharing stores none of them twice.

The export-time check compares what a stream would compute with the INT8 step graph (mean of the
per-frame logits from zero buffers) with the INT8 clip graph on the same verification clips: top-1
agreement at least ``--int8-min-agreement``, the largest logit difference recorded.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx

from ..bundle.sections import StepBuffer
from .onnx_export import INPUT_NAME, OUTPUT_NAME
from .quantize import cpu_session
from .step import STEP_INPUT, run_frames


def step_feeds(fp32_step: onnx.ModelProto, buffers: list[StepBuffer], clips: np.ndarray) -> list[dict[str, np.ndarray]]:
    """One feed per frame of ``clips`` (N, T, 3, H, W): the frame and the buffers the FP32 step graph carried to it."""
    sess = cpu_session(fp32_step)
    names = [b.output for b in buffers]
    feeds = []
    for clip in clips:
        state = {b.input: np.zeros((1, *b.shape), np.float32) for b in buffers}
        for frame in clip:
            feed = {STEP_INPUT: np.ascontiguousarray(frame[None]), **state}
            feeds.append(feed)
            state = {b.input: o for b, o in zip(buffers, sess.run(names, feed), strict=True)}
    return feeds


@dataclasses.dataclass(frozen=True)
class StepAgreement:
    """INT8 step graph (n frames one by one, mean logits) vs the INT8 clip graph at n frames."""

    frames: int
    clips: int
    top1_agreement: float  # share of clips with the same top-1 class
    max_abs_diff: float  # largest |logit difference| over the clips


def step_agreement(int8_step: onnx.ModelProto, int8_clip: onnx.ModelProto, buffers: list[StepBuffer],
                   clips: np.ndarray) -> StepAgreement:
    """Run ``clips`` (N, n, 3, H, W) through both graphs on ONNX Runtime's CPU EP and compare."""
    step, clip = cpu_session(int8_step), cpu_session(int8_clip)
    got = np.stack([run_frames(step, buffers, c).mean(axis=0) for c in clips])
    ref = np.concatenate([clip.run([OUTPUT_NAME], {INPUT_NAME: clips[i : i + 1]})[0] for i in range(len(clips))])
    return StepAgreement(int(clips.shape[1]), len(clips), float((got.argmax(1) == ref.argmax(1)).mean()),
                         float(np.abs(got - ref).max()))
