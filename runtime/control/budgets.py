"""Budgets: what a stream must stay within (latency, board power, battery and thermal caps), one value.

``Budgets`` is THE record of the budgets in force: the scheduler owns one, a stream's ``set_budget``
replaces fields of it (``Budgets.replace``, ``KEEP`` leaves a field as it is, ``None`` turns it off),
and every result reports it (``Budgets.state``). Each field is checked here, once.

* ``budget_ms``: latency per decision, in ``Prediction.latency_ms`` terms (the inference of the n-frame
  clip; see ``results.Prediction``).
* ``power_w``: board power from the INA3221 rails (Jetson).
* ``battery_policy``: ``BatteryPolicy`` or ``"PERCENT:FRAMES"``; ``thermal_policy``: ``ThermalPolicy``
  or ``"CELSIUS:FRAMES"``.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from dataclasses import dataclass
from typing import Any

from ...core.errors import FFNError
from .signals import Signals


class SchedulerError(FFNError, ValueError):
    """A scheduler setting or measurement is invalid (one-line message)."""


class _Keep(enum.Enum):
    KEEP = "keep"


KEEP = _Keep.KEEP  # set_budget(): leave this setting as it is


def check_frames(name: str, value: int) -> int:
    """A positive integer (frame counts, repeats); SchedulerError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SchedulerError(f"{name} must be a positive integer frame count, got {value!r}")
    return value


def check_positive(name: str, value: float | None) -> float | None:
    """None passes (budget off); anything else must be a finite number > 0."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise SchedulerError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def _parse_threshold_cap(text: str, what: str, form: str, example: str) -> tuple[float, int]:
    """``"THRESHOLD:FRAMES"`` -> (threshold, frames); the one parser of both cap policies."""
    parts = text.split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        return float(parts[0]), int(parts[1])
    except ValueError:
        raise SchedulerError(f"{what} must look like {form} (e.g. {example}), got {text!r}") from None


@dataclass(frozen=True)
class BatteryPolicy:
    """Cap the frame count while the battery is low, so the device lasts longer on battery."""

    threshold_percent: float
    cap_frames: int
    only_discharging: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.threshold_percent <= 100:
            raise SchedulerError(f"battery threshold must be in (0, 100] %, got {self.threshold_percent!r}")
        check_frames("battery cap", self.cap_frames)

    @classmethod
    def parse(cls, text: str) -> BatteryPolicy:
        """``"PERCENT:FRAMES"`` (e.g. ``"20:4"``: at most 4 frames below 20 % on battery)."""
        percent, frames = _parse_threshold_cap(text.replace("%", ""), "battery policy", "PERCENT:FRAMES", "20:4")
        return cls(threshold_percent=percent, cap_frames=frames)

    def applies(self, signals: Signals) -> bool:
        """Whether to cap now: battery known and low, and not plugged in (unknown counts as not)."""
        if signals.battery_percent is None or signals.battery_percent >= self.threshold_percent:
            return False
        return not (self.only_discharging and signals.plugged is True)

    def __str__(self) -> str:
        return f"{self.threshold_percent:g}:{self.cap_frames}"


@dataclass(frozen=True)
class ThermalPolicy:
    """Cap the frame count while the hottest zone is at or over ``threshold_c``."""

    threshold_c: float
    cap_frames: int
    release_c: float = 5.0  # the cap lifts only this far below the threshold, so it does not flap

    @classmethod
    def parse(cls, text: str) -> ThermalPolicy:
        """``"CELSIUS:FRAMES"`` (e.g. ``"80:8"``: at most 8 frames while the hottest zone is >= 80 C)."""
        celsius, frames = _parse_threshold_cap(text.upper().replace("C", ""), "thermal policy", "CELSIUS:FRAMES",
                                               "80:8")
        return cls(threshold_c=celsius, cap_frames=frames)

    def __post_init__(self) -> None:
        if not math.isfinite(self.threshold_c):
            raise SchedulerError(f"thermal threshold must be a temperature in C, got {self.threshold_c!r}")
        check_frames("thermal cap", self.cap_frames)
        if self.release_c < 0:
            raise SchedulerError(f"thermal release must be >= 0 C, got {self.release_c!r}")

    def __str__(self) -> str:
        return f"{self.threshold_c:g}:{self.cap_frames}"


@dataclass(frozen=True)
class Budgets:
    """The budgets in force; ``None`` = that budget is off. Checked (and policies parsed) on creation."""

    budget_ms: float | None = None
    power_w: float | None = None
    battery_policy: BatteryPolicy | None = None
    thermal_policy: ThermalPolicy | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise once, here
        set_(self, "budget_ms", check_positive("budget_ms", self.budget_ms))
        set_(self, "power_w", check_positive("power_w", self.power_w))
        for name, kind in (("battery_policy", BatteryPolicy), ("thermal_policy", ThermalPolicy)):
            value = getattr(self, name)
            if isinstance(value, str):
                set_(self, name, kind.parse(value))
            elif value is not None and not isinstance(value, kind):
                raise SchedulerError(f"{name} must be a {kind.__name__} or a string, got {value!r}")

    def replace(self, **changes: Any) -> Budgets:
        """A copy with the given fields changed; ``KEEP`` values are ignored (the field stays)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise SchedulerError(f"unknown budget(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not KEEP})

    @property
    def any(self) -> bool:
        """Whether any budget is on (a stream without one runs the largest count)."""
        return any(getattr(self, f.name) is not None for f in dataclasses.fields(self))

    def state(self, signals: Signals | None = None) -> dict[str, Any]:
        """The budgets and the sensor readings a decision saw, as JSON values (results, --json)."""
        out: dict[str, Any] = {"latency_ms": self.budget_ms, "power_w": self.power_w,
                               "battery_policy": None if self.battery_policy is None else str(self.battery_policy),
                               "thermal_policy": None if self.thermal_policy is None else str(self.thermal_policy)}
        if signals is not None:
            out["signals"] = dataclasses.asdict(signals)
        return out
