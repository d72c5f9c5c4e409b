"""The scheduler's latency model: own cost x machine slowdown x a feedback offset (pure, no clock).

A run's wall time is its own cost (the thread CPU time of the run: what the sub-network computes
for n frames) times the machine's slowdown (wall / CPU: time spent waiting for cores that other
work holds). They are tracked apart because they change for different reasons: the cost with n and
the sub-network, the slowdown with whatever else runs on the machine, the same for every n. A
load learned at the count in use therefore carries over to every other count.

* **cost**: one point per (sub-network, n) that ran: an EWMA of its CPU ms (a step clipped to
  +-COST_CLIP in log, so one odd run moves it little). Counts that never ran are read off a line
  a + b n fitted per sub-network (the line through every point, scaled through the sub-network's
  own, where its counts span fewer than MIN_LINE_SPAN frames).
* **slowdown**: the SLOWDOWN_QUANTILE of the last SLOWDOWN_WINDOW log slowdowns. On a clear step
  (the last UP_RUN samples all over that quantile of the older ones by STEP_LOG, or the last
  DOWN_RUN all under their median by STEP_LOG) the older samples are dropped, so the quantile
  follows the new load within two or three runs while a lone spike moves nothing.
* **offset**: a feedback term (log) that makes the prediction a (1 - MISS_RATE) quantile: +OFFSET_STEP
  after a run over its prediction, -OFFSET_STEP x q / (1 - q) after one within it, so misses settle
  at q = MISS_RATE. How noisy runs are depends on the contention, so one offset is kept per slowdown
  level (OFFSET_LEVEL wide, in log; a new level starts from the offset in force): when a load goes
  away, the quiet level's offset is back at once instead of unwinding what the load taught. The runs
  that reveal a load step give their step back (the slowdown explains them).

``predict(subnet, n) = cost(subnet, n) x exp(slowdown + offset)``.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Sequence

COST_ALPHA = 0.2  # EWMA weight of a new run in its (sub-network, n) cost point
COST_CLIP = 0.5  # largest log step of one run in a cost point
MIN_LINE_SPAN = 4  # a sub-network fits its own slope once its counts span this many frames
SLOWDOWN_WINDOW = 24  # recent log slowdowns kept
SLOWDOWN_QUANTILE = 0.9  # the slowdown planned for
STEP_LOG = 0.2  # a load step moves the slowdown by at least this (log, ~22 %)
UP_RUN, DOWN_RUN = 2, 3  # samples in a row that make a step up / down
MISS_RATE = 0.01  # the offset aims at this share of runs over their prediction
OFFSET_STEP = 0.03  # log step of the offset after a miss
OFFSET_RANGE = (-0.3, 0.5)  # the offset stays within this (log)
INITIAL_OFFSET = 0.05
OFFSET_LEVEL = 0.25  # slowdown levels (log width) that keep their own offset


def fit_line(points: Sequence[tuple[int, float]]) -> tuple[float, float]:
    """Least-squares a + b·n with a, b >= 0 (latency = overhead + per-frame cost).

    One distinct n gives a line through the origin (cost proportional to n), which over-predicts
    larger counts, the safe side.
    """
    ns = [n for n, _ in points]
    ys = [y for _, y in points]
    mean_n, mean_y = statistics.fmean(ns), statistics.fmean(ys)
    var_n = sum((n - mean_n) ** 2 for n in ns)
    if var_n > 0:
        b = max(0.0, sum((n - mean_n) * (y - mean_y) for n, y in points) / var_n)
        a = mean_y - b * mean_n
        if a >= 0:
            return a, b
    return 0.0, sum(n * y for n, y in points) / sum(n * n for n in ns)


def quantile(values: Sequence[float], q: float) -> float:
    """The q quantile of ``values`` (linear interpolation, like numpy's default)."""
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


class CostModel:
    """CPU ms of n frames on a sub-network: measured points, a line per sub-network between them."""

    def __init__(self) -> None:
        self.points: dict[tuple[int, int], float] = {}
        self._lines: dict[int | None, tuple[float, float]] = {}  # fit cache; None = pooled

    @property
    def ready(self) -> bool:
        return bool(self.points)

    def seed(self, subnet: int, n: int, cpu_ms: float) -> None:
        self.points[(subnet, n)] = cpu_ms
        self._lines.clear()

    def update(self, subnet: int, n: int, cpu_ms: float) -> None:
        old = self.points.get((subnet, n))
        if old is None:
            self.seed(subnet, n, cpu_ms)
            return
        step = min(max(math.log(cpu_ms / old), -COST_CLIP), COST_CLIP)
        self.seed(subnet, n, old * math.exp(COST_ALPHA * step))

    def _line(self, subnet: int | None) -> tuple[float, float]:
        if subnet not in self._lines:
            pts = [(n, y) for (s, n), y in self.points.items() if subnet is None or s == subnet]
            self._lines[subnet] = fit_line(pts)
        return self._lines[subnet]

    def cost(self, subnet: int, n: int) -> float:
        """CPU ms of n frames on ``subnet``: its point if it ran, else the line."""
        if (subnet, n) in self.points:
            return self.points[(subnet, n)]
        own = [(m, y) for (s, m), y in self.points.items() if s == subnet]
        counts = [m for m, _ in own]
        if own and max(counts) - min(counts) >= MIN_LINE_SPAN:
            a, b = self._line(subnet)
            return a + b * n
        a, b = self._line(None)
        if not own:
            return a + b * n
        return (a + b * n) * sum(y for _, y in own) / sum(a + b * m for m in counts)


class SlowdownTracker:
    """A high quantile of recent log(wall / CPU), following load steps within a few runs."""

    def __init__(self) -> None:
        self.samples: deque[float] = deque(maxlen=SLOWDOWN_WINDOW)
        self.log_slowdown = 0.0

    def add(self, log_slowdown: float) -> bool:
        """Add one run's log slowdown; True when it completed a load step (older samples dropped)."""
        self.samples.append(log_slowdown)
        step = self._step()
        if step:
            keep = list(self.samples)[-step:]
            self.samples.clear()
            self.samples.extend(keep)
        self.log_slowdown = quantile(self.samples, SLOWDOWN_QUANTILE)
        return bool(step)

    def _step(self) -> int:
        """UP_RUN or DOWN_RUN when the newest samples make a step, else 0."""
        s = list(self.samples)
        for run, up in ((UP_RUN, True), (DOWN_RUN, False)):
            older, new = s[:-run], s[-run:]
            if len(older) < run:
                continue
            if up and min(new) > quantile(older, SLOWDOWN_QUANTILE) + STEP_LOG:
                return run
            if not up and max(new) < quantile(older, 0.5) - STEP_LOG:
                return run
        return 0


class LatencyModel:
    """cost x slowdown x offset; ``predict`` is the (1 - MISS_RATE) quantile of a run's wall ms."""

    def __init__(self) -> None:
        self.cost = CostModel()
        self.slowdown = SlowdownTracker()
        self.offsets: dict[int, float] = {}  # slowdown level -> offset
        self._current = INITIAL_OFFSET  # the offset of the level last used (a new level starts from it)
        self._last_miss: tuple[int, float] | None = None  # (level, step) of the previous run's miss

    @property
    def ready(self) -> bool:
        return self.cost.ready

    def seed(self, runs: Sequence[tuple[int, int, float, float]]) -> None:
        """Start from warm-up runs (subnet, n, wall ms, cpu ms): median cost per point, every slowdown."""
        by_point: dict[tuple[int, int], list[float]] = {}
        for subnet, n, wall_ms, cpu_ms in runs:
            by_point.setdefault((subnet, n), []).append(cpu_ms)
            self.slowdown.samples.append(math.log(wall_ms / cpu_ms))
        for (subnet, n), cpu in by_point.items():
            self.cost.seed(subnet, n, statistics.median(cpu))
        self.slowdown.log_slowdown = quantile(self.slowdown.samples, SLOWDOWN_QUANTILE)

    @property
    def level(self) -> int:
        return round(self.slowdown.log_slowdown / OFFSET_LEVEL)

    @property
    def offset(self) -> float:
        """The offset (log) of the current slowdown level."""
        return self.offsets.get(self.level, self._current)

    def center(self, subnet: int, n: int) -> float:
        """The prediction without the offset (cost x the planned slowdown), ms."""
        return self.cost.cost(subnet, n) * math.exp(self.slowdown.log_slowdown)

    def predict(self, subnet: int, n: int) -> float:
        """High-percentile wall ms of n frames on ``subnet``."""
        return self.center(subnet, n) * math.exp(self.offset)

    def update(self, subnet: int, n: int, wall_ms: float, cpu_ms: float) -> None:
        """One measured run: offset feedback against the prediction it had, then slowdown and cost."""
        level, offset = self.level, self.offset
        missed = wall_ms > self.predict(subnet, n)
        if self.slowdown.add(math.log(wall_ms / cpu_ms)):
            if self._last_miss is not None:  # a load step: neither of its runs' misses count
                prev_level, prev_step = self._last_miss
                self.offsets[prev_level] = self.offsets.get(prev_level, offset) - prev_step
            self._last_miss = None
        else:
            step = OFFSET_STEP if missed else -OFFSET_STEP * MISS_RATE / (1.0 - MISS_RATE)
            self.offsets[level] = min(max(offset + step, OFFSET_RANGE[0]), OFFSET_RANGE[1])
            self._last_miss = (level, step) if missed else None
        self._current = self.offsets.get(level, offset)
        self.cost.update(subnet, n, cpu_ms)
