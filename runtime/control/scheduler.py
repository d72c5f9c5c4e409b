"""Budget scheduler: how many frames to run next, from live latency, battery, power and heat.

A pure, deterministic decision core: no threads and no clock of its own. The caller passes the
time, the measured latencies (wall and CPU ms of each run) and the sensor readings, so scripted or
recorded traces replay exactly. API::

    sched = Scheduler(frame_counts=[4, 8, 16], budgets=Budgets(budget_ms=50.0, battery_policy="20:8"))
    d = sched.decide(now_s, signals)        # Decision: run d.n frames on sub-network d.subnet
    sched.observe(d.n, d.subnet, latency_ms, now_s, cpu_ms=cpu_ms)
    sched.set_budget(budget_ms=30.0)        # any time; only the arguments given change

How a decision is made:

* **Warm-up** (reason ``"warmup"``): the smallest, largest and middle candidate counts run
  ``warmup_repeats`` times each, round robin; their runs seed the latency model (median cost per
  count, so a cold first run does not count).
* **Latency model** (``latency_model.LatencyModel``): own cost (CPU ms, per sub-network and n) x
  the machine's slowdown (a high quantile of recent wall / CPU, following load steps within a few
  runs) x a feedback offset that holds runs over their prediction near 1 %. Contention thus slows
  every count alike and is learned at whichever count runs.
* **Policy**: the largest candidate whose predicted latency fits the budget (``"budget"``, or
  ``"max"`` for the largest candidate); if none fits, the smallest and ``feasible=False``
  (``"budget_infeasible"``). Caps lower it: battery below its threshold while not plugged in
  (``"battery"``), board power over ``power_w`` (``"power"``: cut in proportion to the overshoot,
  raised one candidate at a time once 10 % under, at most once per ``power_interval_s``), a hot
  thermal zone (``"thermal"``, released ``release_c`` below the threshold). A missing sensor
  reading means no cap.
* **Switching**: down at once; up once a larger count has fitted for ``dwell`` decisions in a row
  and ``up_hold_s`` have passed since the last switch (``"hysteresis"`` meanwhile). One margin only:
  the prediction's own.
* **Probing** (``"probe"``): after ``probe_every`` decisions held below both the largest candidate and
  every cap, one run of the next count up when its prediction is within PROBE_ROOM of the budget, so
  a count whose cost is only extrapolated (or was measured long ago) gets measured; the held count
  stays. A probe that ran over the budget is not repeated for PROBE_BACKOFF x ``probe_every`` decisions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ffn_edge.core.sampling import nearest_subnet

from .budgets import KEEP, Budgets, SchedulerError, _Keep, check_frames, check_positive
from .budgets import BatteryPolicy as BatteryPolicy  # re-exported: the scheduler's public names
from .budgets import ThermalPolicy as ThermalPolicy
from .caps import DeviceCaps
from .latency_model import LatencyModel
from .signals import Signals

__all__ = ["KEEP", "REASONS", "BatteryPolicy", "Budgets", "Decision", "Scheduler", "SchedulerError",
           "ThermalPolicy"]

REASONS = ("warmup", "budget", "budget_infeasible", "battery", "power", "thermal", "max", "hysteresis", "probe")
PROBE_ROOM = 0.1  # a probe runs a count predicted at most this far (relative) over the budget
PROBE_BACKOFF = 8  # a count whose probe missed the budget waits this many probe periods


@dataclass(frozen=True)
class Decision:
    """What to run next and why (``reasons`` are among ``REASONS``)."""

    n: int  # frames to sample
    subnet: int  # index of the sub-network that serves n (nearest rule)
    predicted_ms: float | None  # high-percentile predicted latency of n (None during warm-up)
    budget_ms: float | None  # the latency budget in force (None: no latency budget)
    reasons: list[str]
    feasible: bool  # False when even the smallest count is predicted over budget


class Scheduler:
    """Chooses the frame count per decision; see the module docstring for the policy."""

    def __init__(self, frame_counts: Sequence[int], budgets: Budgets | float | None = None,
                 candidates: Sequence[int] | None = None, *, warmup_repeats: int = 3, dwell: int = 2,
                 up_hold_s: float = 1.0, probe_every: int = 30, power_interval_s: float = 1.0) -> None:
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
        self.dwell = check_frames("dwell", dwell)
        self.probe_every = check_frames("probe_every", probe_every)
        for name, value in (("up_hold_s", up_hold_s), ("power_interval_s", power_interval_s)):
            if not value >= 0:
                raise SchedulerError(f"{name} must be >= 0, got {value!r}")
        self.up_hold_s, self.power_interval_s = up_hold_s, power_interval_s
        self.budgets = budgets if isinstance(budgets, Budgets) else Budgets(budget_ms=budgets)

        c = self.candidates
        self._warmup_plan = list(dict.fromkeys([c[0], c[-1], c[len(c) // 2]])) * warmup_repeats
        self._warmup_runs: list[tuple[int, int, float, float]] = []
        self.model = LatencyModel()
        self._n: int | None = None  # the held count (a probe does not change it)
        self._switched_s = -math.inf  # when the held count last changed
        self._streak = 0  # decisions in a row in which a larger count fitted
        self._since_probe = 0  # decisions held below the limit since the last probe or switch
        self._decisions = 0  # decisions made after the warm-up
        self._probe_after: dict[int, int] = {}  # count -> decision from which it may be probed again
        self._probing: int | None = None  # the count of the probe awaiting its observation
        self._caps_limit = self.candidates[-1]  # the lowest cap of the current decision
        self.caps = DeviceCaps(self.candidates, power_interval_s)  # battery, power, thermal (caps.py)
        self.last_observed_s: float | None = None

    # ----------------------------------------------------------------- public API

    @property
    def budget_ms(self) -> float | None:
        return self.budgets.budget_ms

    @property
    def warming_up(self) -> bool:
        """True until every warm-up run has been observed."""
        return len(self._warmup_runs) < len(self._warmup_plan)

    def subnet_for(self, n: int) -> int:
        """Index of the sub-network serving n frames (nearest frame count, tie -> higher)."""
        return nearest_subnet(n, self.frame_counts)

    def set_budget(self, *, budget_ms: float | None | _Keep = KEEP, power_w: float | None | _Keep = KEEP,
                   battery_policy: BatteryPolicy | str | None | _Keep = KEEP,
                   thermal_policy: ThermalPolicy | str | None | _Keep = KEEP) -> None:
        """Change budgets while running; ``None`` turns one off, an omitted one stays as it is."""
        self.budgets = self.budgets.replace(budget_ms=budget_ms, power_w=power_w, battery_policy=battery_policy,
                                            thermal_policy=thermal_policy)
        if power_w is not KEEP:
            self.caps.reset_power()
        self._streak, self._switched_s = 0, -math.inf  # a new budget is followed after the dwell only

    def predict_ms(self, n: int) -> float:
        """High-percentile predicted latency of n frames on the sub-network that serves n."""
        check_frames("frame count", n)
        if not self.model.ready:
            raise SchedulerError("no latency model yet: the warm-up has not finished")
        return self.model.predict(self.subnet_for(n), n)

    def decide(self, now_s: float, signals: Signals | None = None) -> Decision:
        """The next frame count, given the time and the current budget signals."""
        if self.warming_up:
            n = self._warmup_plan[len(self._warmup_runs)]
            return Decision(n, self.subnet_for(n), None, self.budget_ms, ["warmup"], True)
        caps = self._caps(now_s, signals if signals is not None else Signals())
        cap = min(caps.values(), default=self.candidates[-1])
        predicted = {n: self.model.predict(self.subnet_for(n), n) for n in self.candidates}
        fitting = [n for n in self.candidates if self._fits(predicted[n])]
        if not fitting:
            self._streak = 0
            return self._hold(self.candidates[0], now_s, ["budget_infeasible"], predicted, False)
        n_budget = max(fitting)
        target = min(n_budget, cap)
        reasons = self._reasons(target, n_budget, caps)
        if self._n is None or target <= self._n:
            self._streak = 0
            return self._hold(target, now_s, reasons, predicted, True)
        self._streak += 1
        if self._streak >= self.dwell and now_s - self._switched_s >= self.up_hold_s:
            return self._hold(target, now_s, reasons, predicted, True)
        return self._hold(self._n, now_s, ["hysteresis"], predicted, True)

    def observe(self, n: int, subnet: int, latency_ms: float, now_s: float, cpu_ms: float | None = None) -> None:
        """Feed back one run of n frames on ``subnet``: its wall ms and, where known, its CPU ms.

        Without ``cpu_ms`` the model's own cost for n is taken as the run's (its costs then stay those
        of the warm-up) and the rest counts as slowdown. ``now_s`` is kept as
        ``last_observed_s``; the model weighs runs by count, not time, so a replay does not depend
        on timing.
        """
        check_frames("frame count", n)
        if isinstance(subnet, bool) or not isinstance(subnet, int) or not 0 <= subnet < len(self.frame_counts):
            raise SchedulerError(f"subnet must be an index below {len(self.frame_counts)}, got {subnet!r}")
        check_positive("latency_ms", latency_ms)
        if cpu_ms is not None:
            cpu = min(max(cpu_ms, 0.01 * latency_ms), 100.0 * latency_ms)
        elif self.model.ready:  # unknown split: the run's own cost is what the model says, the rest slowdown
            cpu = self.model.cost.cost(subnet, n)
        else:
            cpu = latency_ms
        self.last_observed_s = now_s
        if not self.warming_up:
            if self._probing == n:
                over = self.budget_ms is not None and latency_ms > self.budget_ms
                self._probe_after[n] = self._decisions + (PROBE_BACKOFF if over else 1) * self.probe_every
            self._probing = None
            self.model.update(subnet, n, latency_ms, cpu)
            return
        if n == self._warmup_plan[len(self._warmup_runs)]:
            self._warmup_runs.append((subnet, n, latency_ms, cpu))
        if not self.warming_up:
            self.model.seed(self._warmup_runs)

    # ----------------------------------------------------------------- policy helpers

    def _fits(self, predicted_ms: float) -> bool:
        return self.budget_ms is None or predicted_ms <= self.budget_ms

    def _hold(self, n: int, now_s: float, reasons: list[str], predicted: dict[int, float],
              feasible: bool) -> Decision:
        """Make n the held count, or run one probe above it; the Decision."""
        if n != self._n:
            self._n, self._switched_s, self._since_probe = n, now_s, 0
        limit = min(self._caps_limit, self.candidates[-1])
        above = [m for m in self.candidates if m > n]
        self._since_probe += 1
        self._decisions += 1
        due = feasible and reasons != ["hysteresis"] and self._since_probe > self.probe_every
        if due and above and n < limit and self.budget_ms is not None \
                and self._probe_after.get(above[0], 0) <= self._decisions \
                and predicted[above[0]] <= self.budget_ms * (1.0 + PROBE_ROOM):
            self._since_probe = 0
            n, reasons = above[0], ["probe"]
            self._probing = n
        return Decision(n, self.subnet_for(n), predicted[n], self.budget_ms, reasons, feasible)

    def _reasons(self, n: int, n_budget: int, caps: dict[str, int]) -> list[str]:
        """The caps that stop n from being larger, else what the budget allows."""
        binding = [name for name, cap in caps.items() if cap == n and cap < n_budget]
        if binding:
            return binding
        return ["max"] if n == self.candidates[-1] else ["budget"]

    def _caps(self, now_s: float, signals: Signals) -> dict[str, int]:
        """Active caps by reason, as candidate counts (their minimum kept for probing)."""
        caps = self.caps.update(self.budgets, now_s, signals, self._n)
        self._caps_limit = self.caps.limit
        return caps
