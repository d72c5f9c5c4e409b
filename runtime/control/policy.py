"""FrameCountPolicy: THE place where a stream decision's frame count n is chosen.

* ``frames`` fixed: always that count (reason "fixed").
* ``scheduler``: any object with ``decide(now_s, signals) -> decision`` (with ``.n`` and ``.reasons``)
  and ``observe(n, subnet, latency_ms, now_s, cpu_ms=None)``.
* any budget on (``Budgets``): ``ffn_edge.runtime.control.scheduler.Scheduler`` with them (warm-up, latency
  model, caps, switching; reasons "warmup", "budget", "battery", ...).
* nothing: the largest count (reason "max").

The budgets live in ONE ``Budgets`` value: the scheduler's (``scheduler.budgets``) where one decides,
else the policy's own (a fixed count still reports whether it was within a latency budget).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ...core.errors import ConfigError
from .budgets import KEEP, BatteryPolicy, Budgets, ThermalPolicy, _Keep
from .scheduler import Scheduler
from .signals import Signals, default_providers, read_signals


@dataclasses.dataclass(frozen=True)
class Choice:
    """One frame-count decision: n and why, with the budget state it saw."""

    n: int
    reasons: tuple[str, ...]
    predicted_ms: float | None = None
    feasible: bool | None = None
    budget: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def reason(self) -> str:
        return ",".join(self.reasons)


class SchedulerLike(Protocol):
    """What a stream needs from a frame-count scheduler (ffn_edge.runtime.control.scheduler.Scheduler)."""

    def decide(self, now_s: float, signals: Any) -> Any: ...

    def observe(self, n: int, subnet: int, latency_ms: float, now_s: float, cpu_ms: float | None = None) -> None: ...


class FrameCountPolicy:
    """Chooses n per decision (``decide``; ``choose`` is its short form); see the module docstring.

    ``signals(now_s) -> Signals`` feeds a scheduler its sensor readings; by default the live sensors
    of this machine (battery, INA3221 rails, thermal zones, each optional), found once.
    ``candidates``: the counts the scheduler may pick (default: every count between the smallest and
    the largest sub-network's). ``set_budget`` may be called from another thread while a stream runs.
    """

    def __init__(self, subnet_counts: Sequence[int], frames: int | None = None, budgets: Budgets | None = None,
                 scheduler: SchedulerLike | None = None, signals: Callable[[float], Any] | None = None,
                 candidates: Sequence[int] | None = None) -> None:
        if frames is not None and frames < 1:
            raise ConfigError(f"frames must be >= 1, got {frames}")
        self.subnet_counts, self.candidates = tuple(subnet_counts), candidates
        self.largest = max(candidates or subnet_counts)
        self.frames = frames
        self.scheduler = scheduler
        self._budgets = Budgets()  # in force when no scheduler decides
        self._signals = signals
        self._lock = threading.Lock()  # set_budget (any thread) vs decide/observe (the stream's)
        given = budgets or Budgets()
        # None here means "not given": a scheduler passed in keeps the budgets it was built with.
        self.set_budget(**{f.name: getattr(given, f.name) for f in dataclasses.fields(given)
                           if getattr(given, f.name) is not None})

    @property
    def budgets(self) -> Budgets:
        """The budgets in force: the scheduler's own where it has them."""
        return getattr(self.scheduler, "budgets", None) or self._budgets

    @property
    def budget_ms(self) -> float | None:
        return self.budgets.budget_ms

    def set_budget(self, budget_ms: float | None | _Keep = KEEP, *, power_w: float | None | _Keep = KEEP,
                   battery_policy: BatteryPolicy | str | None | _Keep = KEEP,
                   thermal_policy: ThermalPolicy | str | None | _Keep = KEEP) -> None:
        """Change budgets while a stream runs (from its next decision); ``None`` turns one off.

        An omitted budget stays as it is. The first budget given to a stream without one starts the
        Scheduler (with a warm-up), unless the frame count is fixed.
        """
        changes = {"budget_ms": budget_ms, "power_w": power_w, "battery_policy": battery_policy,
                   "thermal_policy": thermal_policy}
        with self._lock:
            new = self.budgets.replace(**changes)  # raises on a bad value before anything changes
            if self.scheduler is None and self.frames is None and new.any:
                self.scheduler = Scheduler(self.subnet_counts, new, candidates=self.candidates)
            elif self.scheduler is not None and hasattr(self.scheduler, "set_budget"):
                self.scheduler.set_budget(**changes)
            self._budgets = new

    def _read_signals(self, now_s: float) -> Signals:
        if self._signals is None:
            providers = default_providers()  # sysfs paths found once per stream, not per decision
            self._signals = lambda t: read_signals(t, providers)
        return self._signals(now_s)

    def decide(self, now_s: float) -> Choice:
        """The frame count n for the next decision, its reasons and the budget state."""
        if self.frames is not None:
            return Choice(self.frames, ("fixed",))
        with self._lock:
            if self.scheduler is None:
                return Choice(self.largest, ("max",), budget=self.budgets.state())
            signals = self._read_signals(now_s)
            d = self.scheduler.decide(now_s, signals)
            return Choice(int(d.n), tuple(str(r) for r in d.reasons), getattr(d, "predicted_ms", None),
                          getattr(d, "feasible", None), self.budgets.state(signals))

    def choose(self, now_s: float) -> tuple[int, str]:
        """(frame count n, reasons joined by ",") for the next decision."""
        c = self.decide(now_s)
        return c.n, c.reason

    def observe(self, n: int, subnet: int, latency_ms: float, now_s: float, cpu_ms: float | None = None) -> None:
        """Feed a measured run back to the scheduler (if one decides)."""
        with self._lock:
            if self.scheduler is not None:
                self.scheduler.observe(n, subnet, max(latency_ms, 1e-6), now_s, cpu_ms=cpu_ms)
