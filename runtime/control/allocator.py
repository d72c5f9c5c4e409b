"""Joint allocator: the frame count of every stream of a device, one decision round at a time.

The multi-stream generalisation of ``scheduler.Scheduler``, pure and replayable in the same way (the
caller passes the time, the measured runs and the sensor readings). Per round it chooses n_i for
each stream to maximise ``sum_i w_i acc(n_i)`` (``accuracy.AccuracyCurve``; ``w_i`` the stream's
weight) subject to the predicted **round** latency <= ``budget_ms`` (``knapsack.allocate``)::

    alloc = JointAllocator([4, 8, 16], Budgets(budget_ms=60), weights={"cam0": 1.0, "cam1": 2.0})
    r = alloc.decide(now_s, signals)          # RoundDecision: r.decisions[key].n, r.groups
    alloc.observe(runs, now_s)                # one RunRecord per group that ran (batched or not)

* **Round latency**: streams that chose the same count run as one batch (``batching=True``), so a
  round is one run per distinct count; its predicted latency is the sum of those runs'
  predictions. The latency model (``latency_model.LatencyModel``) keys a batch of b clips of n
  frames on sub-network k by its b x n frames (its cost line a + s x frames is then what batching
  saves: one overhead a per run, not per stream). Without batching each stream is one run.
* **Warm-up, caps, switching, probing** are the Scheduler's, applied device-wide: every stream runs
  the same warm-up counts (one round each); one ``caps.DeviceCaps`` bounds every stream; each
  stream has its own hysteresis (down at once, up after ``dwell`` rounds and ``up_hold_s``); at
  most one stream probes the next count up per round.
* **Objectives**: ``min_accuracy=None`` maximises accuracy within the budget; ``min_accuracy=A``
  takes per stream the least count whose predicted accuracy is >= A x the best count's (reason
  ``"accuracy"``, a cap like the others), the budget still applying.

With one stream of weight 1 the decisions are the Scheduler's, decision for decision.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

from ffn_edge.core.sampling import nearest_subnet

from .accuracy import AccuracyCurve
from .budgets import KEEP, Budgets, SchedulerError, _Keep, check_frames, check_positive
from .caps import DeviceCaps
from .knapsack import allocate
from .latency_model import LatencyModel
from .scheduler import PROBE_BACKOFF, PROBE_ROOM, Decision
from .signals import Signals

MAX_WEIGHT = 1e6  # a stream's weight lies in (0, MAX_WEIGHT]


@dataclass(frozen=True)
class AllocatorSettings:
    """The Scheduler's pacing settings, the same defaults (see ``scheduler.Scheduler``)."""

    warmup_repeats: int = 3
    dwell: int = 2
    up_hold_s: float = 1.0
    probe_every: int = 30
    power_interval_s: float = 1.0


@dataclass(frozen=True)
class RunRecord:
    """One run of a round: ``batch`` clips of n frames on ``subnet``, its wall and CPU ms."""

    n: int
    subnet: int
    batch: int
    latency_ms: float
    cpu_ms: float | None = None


@dataclass(frozen=True)
class Group:
    """Streams that run n frames together this round (one batch, or one run each without batching)."""

    n: int
    subnet: int
    keys: tuple[Hashable, ...]


@dataclass(frozen=True)
class RoundDecision:
    """Every stream's Decision for one round, its run groups and the round's predicted latency."""

    decisions: dict[Hashable, Decision]
    groups: tuple[Group, ...]
    predicted_ms: float | None  # None during the warm-up
    budget_ms: float | None
    feasible: bool


def check_weight(key: Hashable, weight: float) -> float:
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 < weight <= MAX_WEIGHT:
        raise SchedulerError(f"weight of stream {key!r} must be a number in (0, {MAX_WEIGHT:g}], got {weight!r}")
    return float(weight)


def check_share(share: float | None) -> float | None:
    """``min_accuracy``: None (off) or a share of the best count's accuracy, in (0, 1]."""
    if share is not None and (isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1):
        raise SchedulerError(f"min_accuracy must be a share in (0, 1], got {share!r}")
    return share


def group_round(decisions: dict[Hashable, Decision], batching: bool) -> tuple[Group, ...]:
    """The round's runs: one group per distinct count (largest first) with batching, else one per stream."""
    if not batching:
        return tuple(Group(d.n, d.subnet, (k,)) for k, d in decisions.items())
    by_n: dict[int, list[Hashable]] = {}
    for k, d in decisions.items():
        by_n.setdefault(d.n, []).append(k)
    return tuple(Group(n, decisions[ks[0]].subnet, tuple(ks)) for n, ks in sorted(by_n.items(), reverse=True))


@dataclass
class _StreamState:
    weight: float
    n: int | None = None  # the held count
    switched_s: float = -math.inf
    streak: int = 0
    since_probe: int = 0


def checked_counts(frame_counts: Sequence[int], candidates: Sequence[int] | None) -> tuple[tuple[int, ...], ...]:
    """(sub-network counts, candidate counts ascending), each checked; candidates default to every n in range."""
    if not frame_counts:
        raise SchedulerError("frame_counts is empty: the bundle has no sub-networks")
    counts = tuple(check_frames("sub-network frame count", n) for n in frame_counts)
    if candidates is None:
        candidates = range(min(counts), max(counts) + 1)
    chosen = tuple(sorted({check_frames("candidate frame count", n) for n in candidates}))
    if not chosen:
        raise SchedulerError("candidate frame counts are empty")
    return counts, chosen


class JointAllocator:
    """Chooses every stream's frame count per round; see the module docstring."""

    def __init__(self, frame_counts: Sequence[int], budgets: Budgets | float | None = None,
                 candidates: Sequence[int] | None = None, weights: Mapping[Hashable, float] | None = None, *,
                 curve: AccuracyCurve | None = None, min_accuracy: float | None = None, batching: bool = True,
                 settings: AllocatorSettings = AllocatorSettings()) -> None:
        self.frame_counts, self.candidates = checked_counts(frame_counts, candidates)
        check_frames("warmup_repeats", settings.warmup_repeats)
        check_frames("dwell", settings.dwell)
        check_frames("probe_every", settings.probe_every)
        self.settings, self.batching = settings, batching
        self.budgets = budgets if isinstance(budgets, Budgets) else Budgets(budget_ms=budgets)
        self.curve = curve or AccuracyCurve(max(self.frame_counts))
        self.min_accuracy = check_share(min_accuracy)
        self.streams: dict[Hashable, _StreamState] = {}
        for key, w in (weights if weights is not None else {0: 1.0}).items():
            self.add(key, w)
        c = self.candidates
        self._warmup_plan = list(dict.fromkeys([c[0], c[-1], c[len(c) // 2]])) * settings.warmup_repeats
        self._warmup_runs: list[tuple[int, int, float, float]] = []
        self._warmup_rounds = 0
        self.model = LatencyModel()
        self.caps = DeviceCaps(self.candidates, settings.power_interval_s)
        self._decisions = 0
        self._probe_after: dict[int, int] = {}
        self._probing: int | None = None

    # ----------------------------------------------------------------- streams and budgets

    def add(self, key: Hashable, weight: float = 1.0) -> None:
        """A new stream (it takes its first count at once, from the next round)."""
        if key in self.streams:
            raise SchedulerError(f"stream {key!r} is already allocated")
        self.streams[key] = _StreamState(check_weight(key, weight))

    def remove(self, key: Hashable) -> None:
        if self.streams.pop(key, None) is None:
            raise SchedulerError(f"no stream {key!r}")

    def set_weight(self, key: Hashable, weight: float) -> None:
        if key not in self.streams:
            raise SchedulerError(f"no stream {key!r}")
        self.streams[key].weight = check_weight(key, weight)

    def set_budget(self, *, budget_ms: float | None | _Keep = KEEP, power_w: float | None | _Keep = KEEP,
                   battery_policy: object = KEEP, thermal_policy: object = KEEP,
                   min_accuracy: float | None | _Keep = KEEP) -> None:
        """Change the device's budgets (``None`` turns one off, an omitted one stays as it is)."""
        share = self.min_accuracy if min_accuracy is KEEP else check_share(min_accuracy)  # type: ignore[arg-type]
        self.budgets = self.budgets.replace(budget_ms=budget_ms, power_w=power_w, battery_policy=battery_policy,
                                            thermal_policy=thermal_policy)
        self.min_accuracy = share
        if power_w is not KEEP:
            self.caps.reset_power()
        for s in self.streams.values():
            s.streak, s.switched_s = 0, -math.inf

    @property
    def budget_ms(self) -> float | None:
        return self.budgets.budget_ms

    @property
    def warming_up(self) -> bool:
        return self._warmup_rounds < len(self._warmup_plan)

    def subnet_for(self, n: int) -> int:
        return nearest_subnet(n, self.frame_counts)

    def group_ms(self, n: int, b: int) -> float:
        """Predicted latency of b streams at n frames: one batch, or b runs without batching."""
        subnet = self.subnet_for(n)
        return self.model.predict(subnet, n * b) if self.batching else b * self.model.predict(subnet, n)

    def round_ms(self, counts: Sequence[int]) -> float:
        """Predicted latency of a round in which the streams take ``counts``."""
        return sum(self.group_ms(n, counts.count(n)) for n in sorted(set(counts)))

    # ----------------------------------------------------------------- decide / observe

    def decide(self, now_s: float, signals: Signals | None = None) -> RoundDecision:
        """Every stream's next count, given the time and the device's budget signals."""
        keys = list(self.streams)
        if not keys:
            return RoundDecision({}, (), 0.0, self.budget_ms, True)
        if self.warming_up:
            n = self._warmup_plan[self._warmup_rounds]
            d = {k: Decision(n, self.subnet_for(n), None, self.budget_ms, ["warmup"], True) for k in keys}
            return self._round(d, None, True)
        held = [s.n for s in self.streams.values() if s.n is not None]
        sig = signals if signals is not None else Signals()
        caps = self.caps.update(self.budgets, now_s, sig, max(held, default=None))
        if self.min_accuracy is not None:
            caps["accuracy"] = self.curve.least_reaching(self.min_accuracy, self.candidates)
        cap = min(caps.values(), default=self.candidates[-1])
        weights = [self.streams[k].weight for k in keys]
        uncapped = allocate(weights, self.candidates, self.curve, self.group_ms, self.budget_ms)
        self._decisions += 1
        if uncapped is None:
            targets = {k: (self.candidates[0], ["budget_infeasible"]) for k in keys}
            return self._hold_all(targets, now_s, False, cap)
        capped = uncapped if cap >= self.candidates[-1] else allocate(
            weights, [n for n in self.candidates if n <= cap], self.curve, self.group_ms, self.budget_ms)
        counts = capped.counts if capped is not None else (self.candidates[0],) * len(keys)
        targets = {k: (t, self._reasons(t, nb, caps)) for k, t, nb in zip(keys, counts, uncapped.counts, strict=True)}
        return self._hold_all(targets, now_s, True, cap)

    def observe(self, runs: Sequence[RunRecord], now_s: float) -> None:
        """Feed back the round's runs (one per group that ran)."""
        del now_s  # runs are weighed by count, not time: a replay does not depend on timing
        records = []
        for r in runs:
            check_frames("frame count", r.n)
            check_frames("batch", r.batch)
            check_positive("latency_ms", r.latency_ms)
            frames = r.n * r.batch if self.batching else r.n
            if r.cpu_ms is not None:
                cpu = min(max(r.cpu_ms, 0.01 * r.latency_ms), 100.0 * r.latency_ms)
            elif self.model.ready:
                cpu = self.model.cost.cost(r.subnet, frames)
            else:
                cpu = r.latency_ms
            records.append((r.subnet, frames, r.latency_ms, cpu, r.n))
        if self.warming_up:
            if records and all(n == self._warmup_plan[self._warmup_rounds] for *_, n in records):
                self._warmup_runs.extend(rec[:4] for rec in records)
                self._warmup_rounds += 1
                if not self.warming_up:
                    self.model.seed(self._warmup_runs)
            return
        if self._probing is not None and any(n == self._probing for *_, n in records):
            total = sum(rec[2] for rec in records)
            over = self.budget_ms is not None and total > self.budget_ms
            wait = (PROBE_BACKOFF if over else 1) * self.settings.probe_every
            self._probe_after[self._probing] = self._decisions + wait
        self._probing = None
        for subnet, frames, wall, cpu, _ in records:
            self.model.update(subnet, frames, wall, cpu)

    # ----------------------------------------------------------------- helpers

    def _reasons(self, n: int, n_budget: int, caps: dict[str, int]) -> list[str]:
        binding = [name for name, cap in caps.items() if cap == n and cap < n_budget]
        if binding:
            return binding
        return ["max"] if n == self.candidates[-1] else ["budget"]

    def _hold_all(self, targets: dict[Hashable, tuple[int, list[str]]], now_s: float, feasible: bool,
                  cap: int) -> RoundDecision:
        """Hysteresis per stream, then at most one probe; the round's decision."""
        chosen: dict[Hashable, tuple[int, list[str]]] = {}
        for key, (target, reasons) in targets.items():
            s = self.streams[key]
            if not feasible or s.n is None or target <= s.n:
                s.streak = 0
            else:
                s.streak += 1
                if s.streak < self.settings.dwell or now_s - s.switched_s < self.settings.up_hold_s:
                    target, reasons = s.n, ["hysteresis"]
            if target != s.n:
                s.n, s.switched_s, s.since_probe = target, now_s, 0
            s.since_probe += 1
            chosen[key] = (target, reasons)
        if feasible and self.budget_ms is not None:
            self._probe(chosen, min(self.caps.limit, cap, self.candidates[-1]))
        predicted = {k: n for k, (n, _) in chosen.items()}
        counts = list(predicted.values())
        decisions = {k: Decision(n, self.subnet_for(n), self.group_ms(n, counts.count(n)), self.budget_ms, r,
                                 feasible) for k, (n, r) in chosen.items()}
        return self._round(decisions, self.round_ms(counts), feasible)

    def _probe(self, chosen: dict[Hashable, tuple[int, list[str]]], limit: int) -> None:
        """One run of the next count up for the first stream (by weight) due a probe, if it may fit."""
        assert self.budget_ms is not None
        order = sorted(chosen, key=lambda k: -self.streams[k].weight)
        for key in order:
            n, reasons = chosen[key]
            s = self.streams[key]
            above = [m for m in self.candidates if m > n]
            if reasons == ["hysteresis"] or s.since_probe <= self.settings.probe_every or not above or n >= limit:
                continue
            if self._probe_after.get(above[0], 0) > self._decisions:
                continue
            trial = [above[0] if k == key else m for k, (m, _) in chosen.items()]
            if self.round_ms(trial) <= self.budget_ms * (1.0 + PROBE_ROOM):
                s.since_probe = 0
                chosen[key] = (above[0], ["probe"])
                self._probing = above[0]
                return

    def uniform_round(self, n: int, reasons: list[str]) -> RoundDecision:
        """Every stream at n (a fixed count, or the largest without budgets); no state changes."""
        d = {k: Decision(n, self.subnet_for(n), None, self.budget_ms, reasons, True) for k in self.streams}
        return self._round(d, None, True)

    def _round(self, decisions: dict[Hashable, Decision], predicted: float | None, feasible: bool) -> RoundDecision:
        return RoundDecision(decisions, group_round(decisions, self.batching), predicted, self.budget_ms, feasible)


__all__ = ["AllocatorSettings", "Group", "JointAllocator", "RoundDecision", "RunRecord", "check_share", "check_weight",
           "group_round"]
