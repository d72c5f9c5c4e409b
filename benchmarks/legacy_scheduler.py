"""LegacyScheduler: the budget scheduler as it was before issue 11, kept ONLY for the A/B mode of
``benchmarks/scheduler.py`` (delete both together). A verbatim copy of ``runtime/control/scheduler.py`` at
commit 8bfc313: imports made absolute, ``Scheduler`` renamed ``LegacyScheduler``. Not part of the runtime.

Original docstring: Budget scheduler: how many frames to run next, from live latency, battery, power and heat.

A pure, deterministic decision core: no threads and no clock of its own. The caller passes the
time, the measured latencies and the sensor readings, so scripted or recorded traces replay
exactly. API::

    sched = Scheduler(frame_counts=[4, 8, 16], budget_ms=50.0,
                      battery_policy=BatteryPolicy(threshold_percent=20, cap_frames=8))
    d = sched.decide(now_s, signals)        # Decision: run d.n frames on sub-network d.subnet
    sched.observe(d.n, d.subnet, latency_ms, now_s)
    sched.set_budget(budget_ms=30.0)        # any time; only the arguments given change

How a decision is made:

* **Warm-up** (reason ``"warmup"``): first the smallest, largest and middle candidate counts run
  ``warmup_repeats`` times each, round robin; each count's median (robust to a cold first run)
  seeds the latency model.
* **Latency model**: predicted latency = load x shape(subnet, n) x margin.
  ``shape`` is a line a + b·n (a, b >= 0) fitted per sub-network, once its counts span 4 frames,
  through one point per frame count it ran. A point starts at the prediction, then follows an
  EWMA of latency / load over the runs within 2 typical errors (larger errors are load changes
  or outliers, left to ``load``, so a count that only runs under heavy load does not learn the
  load as its shape). A sub-network with a narrower span borrows the line fitted through every
  point, scaled through its own points; one that never ran uses that pooled line. So counts
  never run are predicted too.
  ``load`` is shared by all sub-networks (the machine's load slows them all): the median of the
  last 9 ratios measured / shape, moved at once to the nearer of the last two when both lie
  beyond the margin on the same side (a load step is followed after two runs, a lone spike is
  ignored).
  ``margin`` is exp(mean + k·mean-absolute-deviation) of the log one-step prediction errors
  (EWMA, Huber-clipped), i.e. a high percentile of how wrong the model has recently been.
* **Policy**: the largest candidate whose predicted latency fits the budget (``"budget"``, or
  ``"max"`` for the largest candidate); if none fits, the smallest and ``feasible=False``
  (``"budget_infeasible"``). Caps lower it: battery below its threshold while not plugged in
  (``"battery"``), board power over ``power_w`` (``"power"``: cut in proportion to the overshoot,
  raised one candidate at a time once 10 % under, at most once per ``power_interval_s``), a hot
  thermal zone (``"thermal"``, released ``release_c`` below the threshold). A missing sensor
  reading means no cap.
* **Hysteresis**: going down happens at once (back within budget within a few decisions of a load
  step); going up only after ``dwell`` consecutive decisions in which a higher count fits with
  room to spare (``up_margin``, or 1.5 typical errors where latencies are noisier); meanwhile the
  count is held (``"hysteresis"``).
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

# The budget types and checks are the runtime's own (unchanged by issue 11), so they are imported, not copied.
from ffn_edge.runtime.control.budgets import (
    KEEP,
    BatteryPolicy,
    SchedulerError,
    ThermalPolicy,
    _Keep,
    check_frames,
    check_positive,
)
from ffn_edge.runtime.control.signals import Signals

from ffn_edge.core.sampling import nearest_subnet

REASONS = ("warmup", "budget", "budget_infeasible", "battery", "power", "thermal", "max", "hysteresis")

# Latency model constants (see the module docstring).
POINT_ALPHA = 0.1  # EWMA weight of a new measurement in its (sub-network, n) point
SHAPE_GATE = 2.0  # only runs within this many typical errors refine the shape
LOAD_WINDOW = 9  # ratios in the load median
MIN_LINE_SPAN = 4  # a sub-network fits its own slope once its counts span this many frames
ERROR_ALPHA = 0.1  # EWMA weight of the one-step error statistics
ERROR_CLIP = 4.0  # errors beyond this many deviations are clipped (Huber)
INITIAL_SPREAD = 0.05  # mean absolute log error assumed before any is measured (~5 %)
MIN_SPREAD = 0.005  # floor of that deviation, so a noise-free trace keeps a small margin
POWER_RELEASE = 0.1  # the power cap rises once power is this far (relative) under its budget
UP_SPREADS = 1.5  # going up needs room for this many typical errors (at least up_margin)


@dataclass(frozen=True)
class Decision:
    """What to run next and why (``reasons`` are among ``REASONS``)."""

    n: int  # frames to sample
    subnet: int  # index of the sub-network that serves n (nearest rule)
    predicted_ms: float | None  # high-percentile predicted latency of n (None during warm-up)
    budget_ms: float | None  # the latency budget in force (None: no latency budget)
    reasons: list[str]
    feasible: bool  # False when even the smallest count is predicted over budget


def _fit_line(points: Sequence[tuple[int, float]]) -> tuple[float, float]:
    """Least-squares a + b·n with a, b >= 0 (latency = overhead + per-frame cost).

    One distinct n gives a line through the origin (latency proportional to n), which
    over-predicts larger counts, the safe side.
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


class _LatencyModel:
    """load x shape(subnet, n) x margin; see the module docstring."""

    def __init__(self, margin_k: float) -> None:
        self.margin_k = margin_k
        self.points: dict[tuple[int, int], float] = {}  # (subnet, n) -> latency at load 1, ms
        # log(measured / shape); starts at load 1, the conditions of the warm-up that seeds the points
        self._ratios: deque[float] = deque([0.0] * LOAD_WINDOW, maxlen=LOAD_WINDOW)
        self.log_load = 0.0
        self._err_mean = 0.0
        self._err_dev = INITIAL_SPREAD
        self._lines: dict[int | None, tuple[float, float]] = {}  # fit cache; None = pooled

    @property
    def ready(self) -> bool:
        return bool(self.points)

    def seed(self, subnet: int, n: int, latency_ms: float) -> None:
        self.points[(subnet, n)] = latency_ms
        self._lines.clear()

    def _line(self, subnet: int | None) -> tuple[float, float]:
        if subnet not in self._lines:
            pts = [(n, y) for (s, n), y in self.points.items() if subnet is None or s == subnet]
            self._lines[subnet] = _fit_line(pts)
        return self._lines[subnet]

    def shape(self, subnet: int, n: int) -> float:
        """Latency of n frames on ``subnet`` at load 1 (ms)."""
        own = [(m, y) for (s, m), y in self.points.items() if s == subnet]
        counts = [m for m, _ in own]
        if own and max(counts) - min(counts) >= MIN_LINE_SPAN:
            a, b = self._line(subnet)
            return a + b * n
        a, b = self._line(None)
        if not own:
            return a + b * n
        # Too narrow a span for its own slope: the pooled line, scaled through its own points.
        return (a + b * n) * sum(y for _, y in own) / sum(a + b * m for m in counts)

    @property
    def spread(self) -> float:
        """Typical relative one-step error (mean absolute log error)."""
        return self._err_dev

    def margin(self) -> float:
        return math.exp(max(0.0, self._err_mean + self.margin_k * self._err_dev))

    def predict(self, subnet: int, n: int) -> float:
        """High-percentile latency (ms)."""
        return math.exp(self.log_load) * self.shape(subnet, n) * self.margin()

    def update(self, subnet: int, n: int, latency_ms: float) -> None:
        shape = self.shape(subnet, n)
        ratio = math.log(latency_ms / shape)
        residual = ratio - self.log_load  # this run's log error against the load so far
        margin_log = math.log(self.margin())
        # Shape point (a new one starts at the prediction). Only runs within SHAPE_GATE typical
        # errors refine it: a larger error is a load change or an outlier, which the load absorbs.
        # Otherwise a count that only runs under heavy load would learn the load as its shape.
        key = (subnet, n)
        point = self.points.get(key, shape)
        if abs(residual) <= SHAPE_GATE * self._err_dev:
            point *= math.exp(POINT_ALPHA * residual)
        self.points[key] = point
        self._lines.clear()
        # One-step error statistics (the margin), Huber-clipped so one outlier moves them little.
        deviation = residual - self._err_mean
        limit = ERROR_CLIP * self._err_dev
        deviation = min(max(deviation, -limit), limit)
        self._err_mean += ERROR_ALPHA * deviation
        self._err_dev = max(MIN_SPREAD, self._err_dev + ERROR_ALPHA * (abs(deviation) - self._err_dev))
        # Load: median of recent ratios; when the last two both lie beyond the margin on the same
        # side (a load step), it jumps to the nearer of them. One spike or plain noise does not.
        self._ratios.append(ratio)
        self.log_load = statistics.median(self._ratios)
        last_two = (self._ratios[-1], self._ratios[-2])
        if min(last_two) > self.log_load + margin_log:
            self.log_load = min(last_two)
        elif max(last_two) < self.log_load - margin_log:
            self.log_load = max(last_two)


class LegacyScheduler:
    """Chooses the frame count per decision; see the module docstring for the policy."""

    def __init__(
        self,
        frame_counts: Sequence[int],
        budget_ms: float | None,
        candidates: Sequence[int] | None = None,
        battery_policy: BatteryPolicy | None = None,
        power_w: float | None = None,
        thermal_policy: ThermalPolicy | None = None,
        *,
        warmup_repeats: int = 3,
        dwell: int = 3,
        up_margin: float = 0.03,
        margin_k: float = 2.5,
        power_interval_s: float = 1.0,
    ) -> None:
        if not frame_counts:
            raise SchedulerError("frame_counts is empty: the bundle has no sub-networks")
        self.frame_counts = tuple(check_frames("sub-network frame count", n) for n in frame_counts)
        if len(set(self.frame_counts)) != len(self.frame_counts):
            raise SchedulerError(f"sub-network frame counts repeat: {list(frame_counts)}")
        if candidates is None:
            candidates = range(min(self.frame_counts), max(self.frame_counts) + 1)
        self.candidates = tuple(sorted({check_frames("candidate frame count", n) for n in candidates}))
        if not self.candidates:
            raise SchedulerError("candidate frame counts are empty")
        check_frames("warmup_repeats", warmup_repeats)
        check_frames("dwell", dwell)
        if not 0 <= up_margin < 1:
            raise SchedulerError(f"up_margin must be in [0, 1), got {up_margin!r}")
        if margin_k < 0:
            raise SchedulerError(f"margin_k must be >= 0, got {margin_k!r}")
        if power_interval_s < 0:
            raise SchedulerError(f"power_interval_s must be >= 0, got {power_interval_s!r}")
        self.dwell, self.up_margin, self.power_interval_s = dwell, up_margin, power_interval_s

        self.budget_ms: float | None = None
        self.power_w: float | None = None
        self.battery_policy: BatteryPolicy | None = None
        self.thermal_policy: ThermalPolicy | None = None
        self.set_budget(
            budget_ms=budget_ms, power_w=power_w, battery_policy=battery_policy, thermal_policy=thermal_policy
        )

        c = self.candidates
        warm_counts = list(dict.fromkeys([c[0], c[-1], c[len(c) // 2]]))
        self._warmup_plan = warm_counts * warmup_repeats
        self._warmup_done = 0
        self._warmup_samples: dict[tuple[int, int], list[float]] = {}
        self._model = _LatencyModel(margin_k)
        self._n: int | None = None  # count of the last decision
        self._streak = 0  # consecutive decisions in which a higher count fitted with margin
        self._thermal_hot = False
        self._power_cap: int | None = None
        self._power_checked_s: float | None = None
        self.last_observed_s: float | None = None

    # ----------------------------------------------------------------- public API

    @property
    def warming_up(self) -> bool:
        """True until every warm-up run has been observed."""
        return self._warmup_done < len(self._warmup_plan)

    def subnet_for(self, n: int) -> int:
        """Index of the sub-network serving n frames (nearest frame count, tie -> higher)."""
        return nearest_subnet(n, self.frame_counts)

    def set_budget(
        self,
        *,
        budget_ms: float | None | _Keep = KEEP,
        power_w: float | None | _Keep = KEEP,
        battery_policy: BatteryPolicy | None | _Keep = KEEP,
        thermal_policy: ThermalPolicy | None | _Keep = KEEP,
    ) -> None:
        """Change budgets while running; ``None`` turns one off, an omitted one stays as it is."""
        if budget_ms is not KEEP:
            self.budget_ms = check_positive("budget_ms", budget_ms)
        if power_w is not KEEP:
            self.power_w = check_positive("power_w", power_w)
            self._power_cap, self._power_checked_s = None, None
        if battery_policy is not KEEP:
            if battery_policy is not None and not isinstance(battery_policy, BatteryPolicy):
                raise SchedulerError(f"battery_policy must be a BatteryPolicy, got {battery_policy!r}")
            self.battery_policy = battery_policy
        if thermal_policy is not KEEP:
            if thermal_policy is not None and not isinstance(thermal_policy, ThermalPolicy):
                raise SchedulerError(f"thermal_policy must be a ThermalPolicy, got {thermal_policy!r}")
            self.thermal_policy = thermal_policy
        self._streak = 0

    def predict_ms(self, n: int) -> float:
        """High-percentile predicted latency of n frames on the sub-network that serves n."""
        check_frames("frame count", n)
        if not self._model.ready:
            raise SchedulerError("no latency model yet: the warm-up has not finished")
        return self._model.predict(self.subnet_for(n), n)

    def decide(self, now_s: float, signals: Signals | None = None) -> Decision:
        """The next frame count, given the time and the current budget signals."""
        if self.warming_up:
            n = self._warmup_plan[self._warmup_done]
            return Decision(n, self.subnet_for(n), None, self.budget_ms, ["warmup"], True)
        caps = self._caps(now_s, signals if signals is not None else Signals())
        cap = min(caps.values(), default=self.candidates[-1])
        predicted = {n: self._model.predict(self.subnet_for(n), n) for n in self.candidates}
        n_budget = self._largest_fitting(predicted, self.candidates[-1])
        if n_budget is None:
            n, reasons = self.candidates[0], ["budget_infeasible"]
        elif self._n is not None and min(n_budget, cap) > self._n and self._fits(predicted[self._n]):
            n, reasons = self._maybe_up(predicted, n_budget, cap, caps)
        else:
            n = min(n_budget, cap)
            reasons = self._reasons(n, n_budget, caps)
        if "hysteresis" not in reasons:
            self._streak = 0
        self._n = n
        return Decision(n, self.subnet_for(n), predicted[n], self.budget_ms, reasons, n_budget is not None)

    def observe(self, n: int, subnet: int, latency_ms: float, now_s: float) -> None:
        """Feed back the measured latency of one run of n frames on ``subnet``.

        ``now_s`` is kept as ``last_observed_s`` (a caller can tell a stale model); the model itself
        weighs measurements by count, not time, so a replay does not depend on timing.
        """
        check_frames("frame count", n)
        if isinstance(subnet, bool) or not isinstance(subnet, int) or not 0 <= subnet < len(self.frame_counts):
            raise SchedulerError(f"subnet must be an index below {len(self.frame_counts)}, got {subnet!r}")
        check_positive("latency_ms", latency_ms)
        self.last_observed_s = now_s
        if not self.warming_up:
            self._model.update(subnet, n, latency_ms)
            return
        self._warmup_samples.setdefault((subnet, n), []).append(latency_ms)
        if n == self._warmup_plan[self._warmup_done]:
            self._warmup_done += 1
        if not self.warming_up:
            for (s, m), samples in self._warmup_samples.items():
                self._model.seed(s, m, statistics.median(samples))

    # ----------------------------------------------------------------- policy helpers

    def _fits(self, predicted_ms: float, slack: float = 0.0) -> bool:
        return self.budget_ms is None or predicted_ms <= self.budget_ms * (1.0 - slack)

    def _largest_fitting(self, predicted: dict[int, float], limit: int, slack: float = 0.0) -> int | None:
        """Largest candidate <= limit predicted to fit the budget (less ``slack``), or None."""
        fitting = [n for n in self.candidates if n <= limit and self._fits(predicted[n], slack)]
        return max(fitting, default=None)

    def _maybe_up(
        self, predicted: dict[int, float], n_budget: int, cap: int, caps: dict[str, int]
    ) -> tuple[int, list[str]]:
        """Go up only after ``dwell`` consecutive decisions where a higher count fits with margin."""
        assert self._n is not None
        slack = max(self.up_margin, UP_SPREADS * self._model.spread)
        n_up = self._largest_fitting(predicted, cap, slack)
        if n_up is None or n_up <= self._n:
            self._streak = 0
            return self._n, ["hysteresis"]
        self._streak += 1
        if self._streak < self.dwell:
            return self._n, ["hysteresis"]
        return n_up, self._reasons(n_up, n_budget, caps)

    def _reasons(self, n: int, n_budget: int, caps: dict[str, int]) -> list[str]:
        """The caps that stop n from being larger, else what the budget allows."""
        binding = [name for name, cap in caps.items() if cap == n and cap < n_budget]
        if binding:
            return binding
        return ["max"] if n == self.candidates[-1] else ["budget"]

    def _snap_down(self, frames: float) -> int:
        """Largest candidate <= frames (the smallest candidate when none is)."""
        return max((n for n in self.candidates if n <= frames), default=self.candidates[0])

    def _caps(self, now_s: float, signals: Signals) -> dict[str, int]:
        """Active caps by reason, as candidate counts."""
        caps = {}
        if self.battery_policy is not None and self.battery_policy.applies(signals):
            caps["battery"] = self._snap_down(self.battery_policy.cap_frames)
        power_cap = self._update_power_cap(now_s, signals.power_w)
        if power_cap is not None:
            caps["power"] = power_cap
        if self._update_thermal(signals.temp_c):
            assert self.thermal_policy is not None
            caps["thermal"] = self._snap_down(self.thermal_policy.cap_frames)
        return caps

    def _update_thermal(self, temp_c: float | None) -> bool:
        """Whether the thermal cap is on: on at the threshold, off ``release_c`` below it."""
        policy = self.thermal_policy
        if policy is None or temp_c is None:
            self._thermal_hot = False
        elif temp_c >= policy.threshold_c:
            self._thermal_hot = True
        elif temp_c < policy.threshold_c - policy.release_c:
            self._thermal_hot = False
        return self._thermal_hot

    def _update_power_cap(self, now_s: float, power_w: float | None) -> int | None:
        """Feedback cap on n: cut in proportion to the overshoot, raise one step once well under."""
        if self.power_w is None or power_w is None:
            self._power_cap, self._power_checked_s = None, None
            return None
        if self._power_checked_s is not None and now_s - self._power_checked_s < self.power_interval_s:
            return self._power_cap
        self._power_checked_s = now_s
        current = self._n if self._n is not None else self.candidates[-1]
        if self._power_cap is not None:
            current = min(current, self._power_cap)
        if power_w > self.power_w:
            # Assuming power ~ n under-cuts (idle power stays), so repeated cuts approach from above.
            self._power_cap = self._snap_down(math.floor(current * self.power_w / power_w))
        elif power_w <= self.power_w * (1.0 - POWER_RELEASE) and self._power_cap is not None:
            higher = [n for n in self.candidates if n > self._power_cap]
            self._power_cap = higher[0] if higher else None
        return self._power_cap
