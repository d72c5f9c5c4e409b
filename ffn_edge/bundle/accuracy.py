"""The manifest's optional accuracy section: measured top-1 per frame count.

``ffn-export --accuracy eval.json`` copies what ``ffn-eval --json`` measured into
``manifest.extra["accuracy"]``; the runtime's joint allocator maximises it (weighted per stream)
across the streams of a device, and ``min_accuracy`` is a share of its best value. A bundle without
it uses the documented default curve (``runtime.control.accuracy``). Like the sections in
``sections.py`` it is parsed once, by ``Manifest.accuracy``, every field checked.

Stored form (the same fields ``ffn-eval --json`` prints, plus where they came from)::

    "accuracy": {"frames": [4, 8, 16], "top1": [61.2, 68.0, 70.4], "top5": [...], "num_videos": 3783,
                 "source": "eval.json"}
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from ..core import validate as V
from ..core.errors import BundleError, FFNError

ACCURACY_KEY = "accuracy"  # manifest.extra: an AccuracySpec


@dataclasses.dataclass(frozen=True)
class AccuracySpec:
    """Top-1 (and top-5, if measured) in percent per evaluated frame count, and on how many videos."""

    top1: dict[int, float]
    top5: dict[int, float] | None
    num_videos: int
    source: str  # the eval JSON's file name

    def to_json(self) -> dict[str, Any]:
        frames = sorted(self.top1)
        d: dict[str, Any] = {"frames": frames, "top1": [self.top1[n] for n in frames]}
        if self.top5 is not None:
            d["top5"] = [self.top5[n] for n in frames]
        return {**d, "num_videos": self.num_videos, "source": self.source}


def _percentages(name: str, values: Any, frames: list[int]) -> dict[int, float]:
    if not isinstance(values, list) or len(values) != len(frames):
        raise ValueError(f"{name} must be a list of {len(frames)} numbers (one per frame count)")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not 0 <= v <= 100:
            raise ValueError(f"{name} values must be percentages in [0, 100], got {v!r}")
    return {n: float(v) for n, v in zip(frames, values, strict=True)}


def accuracy_from_json(d: Any, source: str, error: type[FFNError] = BundleError) -> AccuracySpec:
    """An AccuracySpec from ``ffn-eval --json`` output or the stored section; ``error`` (one line) if malformed."""
    try:
        if not isinstance(d, dict):
            raise ValueError(f"expected an object, got {type(d).__name__}")
        frames = V.check_list("frames", d["frames"], 1, V.MAX_FRAME_COUNT)
        frames = [V.check_int("frames", n, 1, V.MAX_FRAME_COUNT) for n in frames]
        if len(set(frames)) != len(frames):
            raise ValueError(f"frames repeat: {frames}")
        top1 = _percentages("top1", d["top1"], frames)
        top5 = _percentages("top5", d["top5"], frames) if d.get("top5") is not None else None
        videos = V.check_int("num_videos", d["num_videos"], 1, 10**9)
        return AccuracySpec(top1, top5, videos, V.check_str("source", d.get("source", source), 255))
    except KeyError as e:
        raise error(f"{source}: accuracy lacks {e}") from None
    except ValueError as e:
        raise error(f"{source}: accuracy: {e}") from None


def parse_accuracy(extra: dict[str, Any]) -> AccuracySpec | None:
    """The AccuracySpec ``extra["accuracy"]`` holds (None when absent); BundleError when malformed."""
    if ACCURACY_KEY not in extra:
        return None
    return accuracy_from_json(extra[ACCURACY_KEY], "manifest extra.accuracy", BundleError)


__all__ = ["ACCURACY_KEY", "AccuracySpec", "accuracy_from_json", "parse_accuracy"]
