"""The joint allocator's exact knapsack: frame counts for N streams under one round-latency budget.

Maximise ``sum_i w_i acc(n_i)`` subject to ``round_ms(n) <= budget``, where the round runs one
group per distinct count: ``group_ms(n, b)`` is the predicted latency of b streams at n frames
(one batch of b clips, or b runs one after another).

Exact, and small: the round's latency depends only on how many streams take each count, and for
any such multiset the best assignment pairs the higher accuracies with the higher weights
(rearrangement inequality). So the streams are taken in descending weight, the counts in
descending accuracy, each count given to a contiguous run of streams; a dynamic programme over
(streams placed, counts passed) keeps, per state, the Pareto front of (latency, objective).
The objective is (value, total frames) lexicographically: among equal values, more frames.
Cost: O(N x K x N x front) for N streams and K candidates; 16 streams x 13 counts take
milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

EPS = 1e-9  # values this close are equal (sums in a different order round differently)


@dataclass(frozen=True)
class Allocation:
    """Counts per stream (input order), the round's predicted latency and the objective value."""

    counts: tuple[int, ...]
    round_ms: float
    value: float


@dataclass(frozen=True)
class _Partial:
    ms: float
    value: float
    frames: int
    groups: tuple[tuple[int, int], ...]  # (count, streams) in placing order

    def better(self, other: _Partial) -> bool:
        """Strictly better objective than ``other``."""
        if self.value > other.value + EPS:
            return True
        return abs(self.value - other.value) <= EPS and self.frames > other.frames


def _pareto(items: list[_Partial]) -> list[_Partial]:
    """Keep the partials no other beats on both latency (lower) and objective (higher)."""
    items.sort(key=lambda p: (p.ms, -p.value, -p.frames))
    kept: list[_Partial] = []
    for p in items:
        if not kept or p.better(kept[-1]):
            kept.append(p)
    return kept


def allocate(weights: Sequence[float], candidates: Sequence[int], acc: Callable[[int], float],
             group_ms: Callable[[int, int], float], budget_ms: float | None) -> Allocation | None:
    """The best counts (``Allocation``), or None when no assignment fits ``budget_ms`` (None: no budget)."""
    order = sorted(range(len(weights)), key=lambda i: (-weights[i], i))
    ranked = sorted(candidates, key=lambda n: (-acc(n), -n))  # best count first; ties: more frames
    w = [weights[i] for i in order]
    n_streams, n_counts = len(w), len(ranked)
    cost = {(n, b): group_ms(n, b) for n in ranked for b in range(1, n_streams + 1)}
    prefix = [0.0]
    for x in w:
        prefix.append(prefix[-1] + x)
    fronts: dict[tuple[int, int], list[_Partial]] = {(0, 0): [_Partial(0.0, 0.0, 0, ())]}
    done: list[_Partial] = []
    for r in range(n_counts + 1):
        for i in range(n_streams + 1):
            front = fronts.pop((i, r), None)
            if not front:
                continue
            front = _pareto(front)
            if i == n_streams:
                done.extend(front)
                continue
            if r == n_counts:
                continue
            fronts.setdefault((i, r + 1), []).extend(front)  # count ranked[r] given to nobody
            n = ranked[r]
            for b in range(1, n_streams - i + 1):
                gain, ms = acc(n) * (prefix[i + b] - prefix[i]), cost[(n, b)]
                nxt = [_Partial(p.ms + ms, p.value + gain, p.frames + n * b, (*p.groups, (n, b))) for p in front
                       if budget_ms is None or p.ms + ms <= budget_ms]
                if nxt:
                    fronts.setdefault((i + b, r + 1), []).extend(nxt)
    if not done:
        return None
    best = done[0]
    for p in done[1:]:
        if p.better(best) or (not best.better(p) and p.ms < best.ms):
            best = p
    counts = [0] * n_streams
    pos = 0
    for n, b in best.groups:
        for i in order[pos:pos + b]:
            counts[i] = n
        pos += b
    return Allocation(tuple(counts), best.ms, best.value)
