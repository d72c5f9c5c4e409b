"""Device caps on the frame count: battery, board power and heat, one state per device.

A cap is a candidate count that no decision may exceed while it is on. Their state (the thermal
hysteresis, the power feedback loop and its interval) belongs to the device, not to a stream: the
single-stream ``Scheduler`` keeps one, and the multi-stream ``JointAllocator`` keeps one for all its
streams (N power loops fed the same board reading would each cut for the same overshoot).

* **battery**: below its threshold while not plugged in, at most ``cap_frames`` (snapped down).
* **power**: board power over ``power_w`` cuts the count in proportion to the overshoot; once
  ``POWER_RELEASE`` under it is raised one candidate at a time; at most once per ``interval_s``.
* **thermal**: at or over the threshold, at most ``cap_frames``, released ``release_c`` below it.

A missing sensor reading means no cap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .budgets import Budgets
from .signals import Signals

POWER_RELEASE = 0.1  # the power cap rises once power is this far (relative) under its budget


class DeviceCaps:
    """The caps in force for one device, updated once per decision (pure: the caller passes the time)."""

    def __init__(self, candidates: Sequence[int], interval_s: float = 1.0) -> None:
        self.candidates = tuple(candidates)
        self.interval_s = interval_s
        self.limit = self.candidates[-1]  # the lowest cap of the last update
        self._thermal_hot = False
        self._power_cap: int | None = None
        self._power_checked_s: float | None = None

    def reset_power(self) -> None:
        """Forget the power loop's state (a new power budget starts from no cap)."""
        self._power_cap, self._power_checked_s = None, None

    def snap_down(self, frames: float) -> int:
        """Largest candidate <= frames (the smallest candidate when none is)."""
        return max((n for n in self.candidates if n <= frames), default=self.candidates[0])

    def update(self, budgets: Budgets, now_s: float, signals: Signals, current: int | None) -> dict[str, int]:
        """Active caps by reason, as candidate counts; ``current``: the count now held (None: none yet)."""
        caps = {}
        if budgets.battery_policy is not None and budgets.battery_policy.applies(signals):
            caps["battery"] = self.snap_down(budgets.battery_policy.cap_frames)
        power_cap = self._update_power(budgets.power_w, now_s, signals.power_w, current)
        if power_cap is not None:
            caps["power"] = power_cap
        if self._update_thermal(budgets, signals.temp_c):
            assert budgets.thermal_policy is not None
            caps["thermal"] = self.snap_down(budgets.thermal_policy.cap_frames)
        self.limit = min(caps.values(), default=self.candidates[-1])
        return caps

    def _update_thermal(self, budgets: Budgets, temp_c: float | None) -> bool:
        """Whether the thermal cap is on: on at the threshold, off ``release_c`` below it."""
        policy = budgets.thermal_policy
        if policy is None or temp_c is None:
            self._thermal_hot = False
        elif temp_c >= policy.threshold_c:
            self._thermal_hot = True
        elif temp_c < policy.threshold_c - policy.release_c:
            self._thermal_hot = False
        return self._thermal_hot

    def _update_power(self, budget: float | None, now_s: float, power_w: float | None,
                      current: int | None) -> int | None:
        """Feedback cap on n: cut in proportion to the overshoot, raise one step once well under."""
        if budget is None or power_w is None:
            self.reset_power()
            return None
        if self._power_checked_s is not None and now_s - self._power_checked_s < self.interval_s:
            return self._power_cap
        self._power_checked_s = now_s
        held = current if current is not None else self.candidates[-1]
        if self._power_cap is not None:
            held = min(held, self._power_cap)
        if power_w > budget:
            # Assuming power ~ n under-cuts (idle power stays), so repeated cuts approach from above.
            self._power_cap = self.snap_down(math.floor(held * budget / power_w))
        elif power_w <= budget * (1.0 - POWER_RELEASE) and self._power_cap is not None:
            higher = [n for n in self.candidates if n > self._power_cap]
            self._power_cap = higher[0] if higher else None
        return self._power_cap
