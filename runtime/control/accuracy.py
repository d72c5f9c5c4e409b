"""Predicted accuracy per frame count: what the joint allocator maximises (weighted by stream).

``AccuracyCurve`` answers ``acc(n)`` for any candidate count. Its points come from the bundle
(``manifest.accuracy``: the top-1 per frame count ``ffn-export --accuracy`` recorded from
``ffn-eval --json``); between two points it is linear, outside them it follows the default shape,
scaled through the nearest point (so it stays monotone when the points are).

Without points the **default curve** is ``100 x log(1 + n) / log(1 + n_max)`` (n_max: the largest
sub-network's count): monotone, concave (each extra frame buys less, as the paper's accuracy-vs-
frames curves do) and 100 at n_max. It is a utility for ranking counts, not an accuracy estimate:
with equal weights it makes the allocator prefer spreading frames evenly over streams to giving one
stream everything.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping

from .budgets import SchedulerError, check_frames


def default_accuracy(n: int, largest: int) -> float:
    """The default curve (see the module docstring), in percent."""
    return 100.0 * math.log1p(n) / math.log1p(largest)


class AccuracyCurve:
    """acc(n) in percent: measured points (top-1 per frame count) joined linearly, else the default."""

    def __init__(self, largest: int, points: Mapping[int, float] | None = None) -> None:
        self.largest = check_frames("largest frame count", largest)
        self.points = dict(sorted((points or {}).items()))
        for n, top1 in self.points.items():
            check_frames("accuracy curve frame count", n)
            if isinstance(top1, bool) or not isinstance(top1, (int, float)) or not 0.0 <= top1 <= 100.0:
                raise SchedulerError(f"accuracy curve: top-1 at {n} frames must be in [0, 100], got {top1!r}")
        self._ns = list(self.points)

    @property
    def measured(self) -> bool:
        """True when the curve comes from a measurement (the bundle), not the default."""
        return bool(self.points)

    def __call__(self, n: int) -> float:
        if not self.points:
            return default_accuracy(n, self.largest)
        ns, ys = self._ns, [self.points[m] for m in self._ns]
        if n in self.points:
            return self.points[n]
        if n < ns[0]:
            return ys[0] * default_accuracy(n, self.largest) / default_accuracy(ns[0], self.largest)
        if n > ns[-1]:
            return min(100.0, ys[-1] * default_accuracy(n, self.largest) / default_accuracy(ns[-1], self.largest))
        i = bisect.bisect_left(ns, n)
        lo, hi = ns[i - 1], ns[i]
        return ys[i - 1] + (ys[i] - ys[i - 1]) * (n - lo) / (hi - lo)

    def least_reaching(self, share: float, candidates: tuple[int, ...]) -> int:
        """The smallest candidate whose accuracy is >= ``share`` x the best candidate's."""
        best = max(self(n) for n in candidates)
        return min(n for n in candidates if self(n) >= share * best - 1e-12)
