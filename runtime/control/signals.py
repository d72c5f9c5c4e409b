"""Budget signals for the scheduler: battery, power rails, temperature; every one optional.

A *provider* is a callable ``provider(now_s) -> Signals`` that fills in the fields it knows and
leaves the rest ``None`` (live sensors ignore ``now_s``; a recorded trace looks it up). Where a
sensor is absent (no battery, not a Jetson, no thermal zones) its provider returns all-``None``, and
the scheduler then applies no cap for it.

* ``Signals``: one snapshot (battery_percent, plugged, power_w, temp_c).
* ``BatterySensor()``: ``psutil.sensors_battery()``.
* ``PowerRails(root="/sys")``: Jetson INA3221 power monitors, both sysfs layouts: the L4T iio
  driver (``bus/i2c/drivers/ina3221*/*/iio*device*/in_power<k>_input``, mW, ``rail_name_<k>``) and
  the hwmon driver (``class/hwmon/hwmon*`` whose ``name`` is ``ina3221``: ``power<k>_input`` in uW,
  or ``in<k>_input`` mV x ``curr<k>_input`` mA for channels 1-3, labels ``in<k>_label``).
* ``ThermalZones(root="/sys")``: the hottest ``class/thermal/thermal_zone*/temp`` (millidegrees C).
* ``SignalTrace([(t, Signals), ...])``: scripted or recorded signals for tests and replay.
* ``read_signals(now_s, providers=None)``: one snapshot, the first non-``None`` value per field.

``root`` is injectable so tests build a fake sysfs tree. Sysfs paths are found once, at
construction (globbing on every decision would cost more than the read); the globs have a fixed
depth because sysfs is full of symlink cycles that a recursive ``**`` would walk into.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

# Thermal zone types whose reading is not a temperature worth capping on: on Jetson (TX2/Xavier)
# "PMIC-Die" reports a fixed 100 C placeholder, which would cap forever.
IGNORED_THERMAL_TYPES = ("PMIC-Die",)


@dataclass(frozen=True)
class Signals:
    """One snapshot of the budget signals; ``None`` where the signal is absent or unknown."""

    battery_percent: float | None = None
    plugged: bool | None = None
    power_w: float | None = None
    temp_c: float | None = None


SignalProvider = Callable[[float], Signals]


def _read_number(path: Path) -> float | None:
    """A sysfs file's numeric value, or None where it cannot be read (sensor off, no permission)."""
    try:
        return float(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


class BatterySensor:
    """Battery level and plug state from psutil; all-None where there is no battery."""

    def __call__(self, now_s: float) -> Signals:
        sensors_battery = getattr(psutil, "sensors_battery", None)  # absent on some platforms
        try:
            battery = sensors_battery() if sensors_battery is not None else None
        except (OSError, RuntimeError):
            battery = None
        if battery is None:
            return Signals()
        return Signals(battery_percent=float(battery.percent), plugged=battery.power_plugged)


@dataclass(frozen=True)
class _Rail:
    """One power channel: power file (scale to W), or voltage x current files (mV x mA)."""

    label: str
    power: Path | None = None
    scale: float = 1.0
    voltage: Path | None = None
    current: Path | None = None

    def read_w(self) -> float | None:
        if self.power is not None:
            value = _read_number(self.power)
            return None if value is None else value * self.scale
        assert self.voltage is not None and self.current is not None
        mv, ma = _read_number(self.voltage), _read_number(self.current)
        return None if mv is None or ma is None else mv * ma * 1e-6


def _index(path: Path) -> str:
    """The channel number in a sysfs file name (``in_power2_input`` -> ``2``)."""
    match = re.search(r"(\d+)_input$", path.name)
    assert match is not None
    return match.group(1)


def _iio_rails(root: Path) -> list[_Rail]:
    """Rails of the L4T iio INA3221 driver (Jetson TX1/TX2/Nano/Xavier on L4T 32): mW files."""
    rails = []
    for path in sorted(root.glob("bus/i2c/drivers/ina3221*/*/iio*device*/in_power*_input")):
        k = _index(path)
        label = _read_text(path.parent / f"rail_name_{k}") or f"{path.parent.parent.name}/{k}"
        rails.append(_Rail(label, power=path, scale=1e-3))
    return rails


def _hwmon_rails(root: Path) -> list[_Rail]:
    """Rails of the hwmon INA3221 driver (L4T 34+, Orin): uW power files or mV x mA channels 1-3."""
    rails = []
    for hwmon in sorted(root.glob("class/hwmon/hwmon*")):
        if _read_text(hwmon / "name") != "ina3221":
            continue
        power_files = sorted(hwmon.glob("power*_input"))
        for path in power_files:
            k = _index(path)
            label = _read_text(hwmon / f"power{k}_label") or f"{hwmon.name}/{k}"
            rails.append(_Rail(label, power=path, scale=1e-6))
        if power_files:
            continue
        # in4..in7 are shunt voltages and curr4 a sum, so only channels 1-3 pair up.
        for k in (1, 2, 3):
            voltage, current = hwmon / f"in{k}_input", hwmon / f"curr{k}_input"
            if voltage.exists() and current.exists():
                label = _read_text(hwmon / f"in{k}_label") or f"{hwmon.name}/{k}"
                rails.append(_Rail(label, voltage=voltage, current=current))
    return rails


class PowerRails:
    """Jetson board power (W) from INA3221 rails: the module input rail where there is one.

    A rail whose name has an ``IN`` token (``VDD_IN``, ``POM_5V_IN``, ``5V_IN``) measures the whole
    module, and the other rails are parts of it, so it alone is the total; boards without one
    (AGX Xavier / Orin) report the sum of all rails.
    """

    def __init__(self, root: str | Path = "/sys") -> None:
        root = Path(root)
        self.rails: list[_Rail] = _iio_rails(root) + _hwmon_rails(root)

    def read_rails(self) -> dict[str, float]:
        """Power per rail in W (rails that cannot be read right now are left out)."""
        readings = {rail.label: rail.read_w() for rail in self.rails}
        return {label: watts for label, watts in readings.items() if watts is not None}

    def read_w(self) -> float | None:
        """Total board power in W, or None where there are no readable rails."""
        rails = self.read_rails()
        if not rails:
            return None
        inputs = [watts for label, watts in rails.items() if "IN" in re.split(r"[_\s]+", label.upper())]
        return sum(inputs) if inputs else sum(rails.values())

    def __call__(self, now_s: float) -> Signals:
        return Signals(power_w=self.read_w())


class ThermalZones:
    """The hottest thermal zone in degrees C (throttling follows the hottest part)."""

    def __init__(self, root: str | Path = "/sys", ignore_types: Sequence[str] = IGNORED_THERMAL_TYPES) -> None:
        ignored = set(ignore_types)
        zones = sorted(Path(root).glob("class/thermal/thermal_zone*"))
        self.zones: list[Path] = [zone / "temp" for zone in zones if _read_text(zone / "type") not in ignored]

    def read_c(self) -> float | None:
        """Hottest readable zone in degrees C, or None where no zone can be read."""
        readings = [_read_number(path) for path in self.zones]
        valid = [millidegrees / 1000.0 for millidegrees in readings if millidegrees is not None]
        return max(valid) if valid else None

    def __call__(self, now_s: float) -> Signals:
        return Signals(temp_c=self.read_c())


class SignalTrace:
    """Scripted or recorded signals: at time t, the last snapshot at or before t (all-None before)."""

    def __init__(self, points: Sequence[tuple[float, Signals]]) -> None:
        self.points = [(float(t), snapshot) for t, snapshot in points]
        if not all(isinstance(snapshot, Signals) for _, snapshot in self.points):
            raise ValueError("signal trace entries must be (time_s, Signals) pairs")
        times = [t for t, _ in self.points]
        if times != sorted(times):
            raise ValueError("signal trace times must be non-decreasing")

    def __call__(self, now_s: float) -> Signals:
        current = Signals()
        for t, snapshot in self.points:
            if t > now_s:
                break
            current = snapshot
        return current


def default_providers(root: str | Path = "/sys") -> list[SignalProvider]:
    """Every live sensor of this machine: battery, INA3221 power rails, thermal zones."""
    return [BatterySensor(), PowerRails(root), ThermalZones(root)]


def read_signals(now_s: float, providers: Sequence[SignalProvider] | None = None) -> Signals:
    """One snapshot from the providers; the first non-None value per field wins.

    ``providers=None`` discovers the live sensors on each call; a loop should build
    ``default_providers()`` once and pass it.
    """
    if providers is None:
        providers = default_providers()
    merged: dict[str, object] = {}
    for provider in providers:
        snapshot = provider(now_s)
        for field in dataclasses.fields(Signals):
            value = getattr(snapshot, field.name)
            if value is not None and merged.get(field.name) is None:
                merged[field.name] = value
    return Signals(**merged)
