"""Budget scheduler and budget signals on scripted traces (pure, fast, no torch, no real sensors)."""

from __future__ import annotations

import math
import subprocess
import sys
from collections import namedtuple
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from ffn_edge.runtime.control import signals as signals_mod
from ffn_edge.runtime.control.scheduler import (
    BatteryPolicy,
    Budgets,
    Decision,
    Scheduler,
    SchedulerError,
    ThermalPolicy,
)
from ffn_edge.runtime.control.signals import BatterySensor, PowerRails, Signals, SignalTrace, ThermalZones, read_signals

FRAME_COUNTS = [4, 8, 16]
BUDGET_MS = 40.0
WARMUP = 9  # 3 counts (smallest, largest, middle) x 3 repeats


def plant(n: int, load: float = 1.0) -> float:
    """Simulated inference latency: 5 ms overhead + 2 ms per frame, times the machine's load."""
    return load * (5.0 + 2.0 * n)


def simulate(
    sched: Scheduler,
    steps: int,
    latency: Callable[[int, int], float],
    signals: Callable[[float], Signals] = lambda t: Signals(),
    dt: float = 0.1,
    cost: Callable[[int, int], float] | None = None,
    t0: float = 0.0,
) -> list[tuple[Decision, float]]:
    """Run decide -> latency(step, n) -> observe for ``steps`` decisions (a replayable trace).

    ``cost(step, n)``: the run's own CPU ms (default: the plant at load 1, so anything above it in
    ``latency`` is the machine's slowdown, as a loaded machine shows it).
    """
    cost = cost or (lambda step, n: plant(n))
    trace = []
    for step in range(steps):
        now = t0 + step * dt
        decision = sched.decide(now, signals(now))
        measured = latency(step, decision.n)
        sched.observe(decision.n, decision.subnet, measured, now, cpu_ms=min(measured, cost(step, decision.n)))
        trace.append((decision, measured))
    return trace


def held(trace: list[tuple[Decision, float]]) -> list[int]:
    """The held counts of a trace (probes are one-off runs above it)."""
    return [d.n for d, _ in trace if d.reasons != ["probe"]]


# ------------------------------------------------------------------ nearest rule, warm-up


def test_nearest_rule_tie_goes_to_higher_subnet() -> None:
    sched = Scheduler(FRAME_COUNTS, BUDGET_MS)
    assert [sched.subnet_for(n) for n in (4, 5, 6, 7, 11, 12, 13, 20)] == [0, 0, 1, 1, 1, 2, 2, 2]
    # Decisions carry the same mapping, also for a count no sub-network was trained on.
    for n, subnet in ((6, 1), (12, 2)):
        only_n = Scheduler(FRAME_COUNTS, BUDGET_MS, candidates=[n])
        trace = simulate(only_n, WARMUP + 2, lambda step, m: plant(m))
        assert all(d.n == n and d.subnet == subnet for d, _ in trace)


def test_warmup_runs_smallest_largest_middle_then_trusts_model() -> None:
    sched = Scheduler(FRAME_COUNTS, BUDGET_MS)
    trace = simulate(sched, WARMUP + 1, lambda step, n: plant(n))
    warm = [d for d, _ in trace[:WARMUP]]
    assert all(d.reasons == ["warmup"] and d.predicted_ms is None for d in warm)
    assert sorted({d.n for d in warm}) == [4, 10, 16]
    assert not sched.warming_up
    assert "warmup" not in trace[WARMUP][0].reasons
    assert trace[WARMUP][0].predicted_ms is not None


def test_cold_first_run_does_not_poison_the_model() -> None:
    sched = Scheduler(FRAME_COUNTS, BUDGET_MS)
    # The very first inference is 20x slow (lazy initialisation); the warm-up median ignores it.
    slow_first = lambda step, n: plant(n) * (20.0 if step == 0 else 1.0)  # noqa: E731
    simulate(sched, WARMUP, slow_first, cost=slow_first)
    assert sched.predict_ms(4) < plant(4) * 1.3


def test_replay_is_deterministic() -> None:
    rng = np.random.default_rng(3)
    noise = np.exp(rng.normal(0.0, 0.1, size=300))
    runs = [[d for d, _ in simulate(Scheduler(FRAME_COUNTS, BUDGET_MS), 300,
                                    lambda step, n: plant(n, 1.0 + (step > 150)) * float(noise[step]))]
            for _ in range(2)]
    assert runs[0] == runs[1]


# ------------------------------------------------------------------ latency budget


def test_load_step_is_back_within_budget_in_three_decisions_and_goes_back_up() -> None:
    step_on, step_off, steps = 80, 160, 260
    sched = Scheduler(FRAME_COUNTS, BUDGET_MS)
    trace = simulate(sched, steps, lambda step, n: plant(n, 2.0 if step_on <= step < step_off else 1.0))

    before = trace[step_on - 10 : step_on]
    assert all(d.n == 16 for d, _ in before)  # 37 ms fits 40 ms
    after = trace[step_on:step_off]
    over = [i for i, (d, measured) in enumerate(after) if measured > BUDGET_MS and d.reasons != ["probe"]]
    assert over and max(over) < 3, f"over budget at decisions {over} after the load step"
    assert all(n <= 7 for n in held(after[3:])) and all(d.feasible for d, _ in after[3:])  # 2 (5 + 2n) <= 40
    missed_probes = [d.n for d, measured in after if measured > BUDGET_MS and d.reasons == ["probe"]]
    assert len(missed_probes) <= 1  # 8 frames, never measured under this load, is tried once
    assert held(after)[-1] >= 6  # uses the room: 7 fits exactly, 6 with 5 % to spare
    recovered = trace[step_off:]
    assert all(measured <= BUDGET_MS for _, measured in recovered)
    assert recovered[-1][0].n == 16
    first_up = next(i for i, (d, _) in enumerate(recovered) if d.n > 7)
    assert first_up <= 15  # 3 runs to see the step, then dwell and the 1 s hold


def test_contention_learned_at_one_count_applies_to_every_count() -> None:
    sched = Scheduler(FRAME_COUNTS, Budgets(BUDGET_MS, battery_policy=BatteryPolicy(50, 4)))
    low = lambda t: Signals(battery_percent=10.0, plugged=False)  # noqa: E731 - holds n at 4
    simulate(sched, WARMUP + 40, lambda step, n: plant(n, 3.0 if step >= WARMUP + 10 else 1.0), signals=low)
    # Only 4 frames ran under the 3x load; 16 frames are predicted under it too (and cost only 37 ms).
    assert 3.0 * plant(16) <= sched.predict_ms(16) <= 3.0 * plant(16) * 1.15
    assert sched.model.cost.cost(2, 16) == pytest.approx(plant(16), rel=0.01)


def test_single_latency_spike_is_ignored() -> None:
    sched = Scheduler(FRAME_COUNTS, 42.0)
    trace = simulate(sched, 100, lambda step, n: plant(n) * (5.0 if step == 60 else 1.0))
    assert all(d.n == 16 for d, _ in trace[WARMUP + 1 :])


def test_infeasible_budget_runs_smallest_and_says_so() -> None:
    sched = Scheduler(FRAME_COUNTS, 10.0)  # even 4 frames take 13 ms
    trace = simulate(sched, WARMUP + 20, lambda step, n: plant(n))
    for decision, _ in trace[WARMUP:]:
        assert decision.n == 4 and not decision.feasible
        assert decision.reasons == ["budget_infeasible"]
    sched.set_budget(budget_ms=BUDGET_MS)
    trace = simulate(sched, 40, lambda step, n: plant(n), t0=10.0)
    assert trace[-1][0].feasible and trace[-1][0].n >= 14


def test_lower_budget_switches_down_at_once_higher_after_dwell() -> None:
    sched = Scheduler(FRAME_COUNTS, BUDGET_MS, dwell=2, up_hold_s=0.0)
    simulate(sched, 60, lambda step, n: plant(n))
    sched.set_budget(budget_ms=25.0)  # 5 + 2n <= 25 -> n <= 10 (less the margin)
    down = sched.decide(10.0, Signals())
    assert down.n <= 10 and down.reasons == ["budget"]
    sched.observe(down.n, down.subnet, plant(down.n), 10.0, cpu_ms=plant(down.n))
    sched.set_budget(budget_ms=BUDGET_MS)
    trace = simulate(sched, 2, lambda step, n: plant(n), t0=10.1)
    assert [d.reasons for d, _ in trace[:1]] == [["hysteresis"]]  # one margin, a short dwell
    assert trace[1][0].n > down.n


def test_steady_noisy_load_holds_a_count_and_uses_the_headroom() -> None:
    rng = np.random.default_rng(0)
    noise = np.exp(rng.normal(0.0, 0.05, size=1000))
    sched = Scheduler(FRAME_COUNTS, BUDGET_MS)
    trace = simulate(sched, 1000, lambda step, n: plant(n, 1.5) * float(noise[step]), dt=0.15)
    steady = trace[WARMUP + 20 :]
    counts = held(steady)
    switches = sum(a != b for a, b in zip(counts, counts[1:], strict=False))
    assert switches <= 0.05 * len(counts)  # steady load: at most one switch per 20 decisions (3 s)
    probes = [d for d, _ in steady if d.reasons == ["probe"]]
    assert len(probes) <= len(steady) / 25
    within = np.mean([measured <= BUDGET_MS for _, measured in steady])
    assert within >= 0.98
    # The p99 of 1.5 (5 + 2n) with 5 % noise fits 40 ms up to n = 9 (9.1): it is held there, not lower
    # (an earlier controller averaged 8.50 on this trace, its doubled margin holding it at 8).
    assert np.mean(counts) >= 8.75


def test_probing_measures_a_count_known_only_from_the_line_and_climbs() -> None:
    def cost(n: int) -> float:  # sub-network 16 (12..16 frames) is convex: 16 costs 56 ms, 12 only 29
        return plant(n) + (19 / 16 * (n - 12) ** 2 if n >= 12 else 0.0)

    sched = Scheduler(FRAME_COUNTS, 41.0, probe_every=20)
    trace = simulate(sched, 200, lambda step, n: cost(n), cost=lambda step, n: cost(n))
    # The warm-up saw 16 (56 ms): the line scaled through it puts 12 at ~44 ms, over 41 ms, so n = 11.
    assert held(trace)[WARMUP] == 11
    probes = [i for i, (d, _) in enumerate(trace) if d.reasons == ["probe"]]
    assert probes and trace[probes[0]][0].n == 12 and probes[0] <= WARMUP + 25
    assert held(trace)[-1] >= 13  # measured, 12 and 13 fit (29 and 32 ms): it climbed past 11
    assert all(cost(n) <= 41.0 for n in held(trace)[WARMUP:])  # what it holds is always within budget


def test_counts_never_run_are_predicted_from_the_linear_model() -> None:
    # Warm-up runs only 4 and 16 frames; sub-network 8 and counts 5..15 never run.
    sched = Scheduler(FRAME_COUNTS, BUDGET_MS, candidates=[4, 16])
    with pytest.raises(SchedulerError, match="warm-up"):
        sched.predict_ms(8)
    simulate(sched, 6, lambda step, n: plant(n))
    for n in range(4, 17):
        predicted = sched.predict_ms(n)
        assert plant(n) <= predicted <= plant(n) * 1.2, (n, predicted)


def test_each_subnet_keeps_its_own_latency_line() -> None:
    # Sub-network 16 (say, a different engine) carries 25 ms more fixed overhead than 4 and 8.
    def latency(subnet: int, n: int) -> float:
        return plant(n) + (25.0 if subnet == 2 else 0.0)

    sched = Scheduler(FRAME_COUNTS, 100.0)
    simulate(sched, WARMUP, lambda step, n: latency(sched.subnet_for(n), n),
             cost=lambda step, n: latency(sched.subnet_for(n), n))
    for step in range(60):
        n = 12 + 4 * (step % 2)  # sub-network 16 runs 12 and 16 frames
        sched.observe(n, 2, latency(2, n), float(step), cpu_ms=latency(2, n))
    for n in (9, 11, 12, 14):
        true = latency(sched.subnet_for(n), n)
        assert true <= sched.predict_ms(n) <= true * 1.2, n


def test_observe_and_settings_reject_bad_input() -> None:
    sched = Scheduler(FRAME_COUNTS, BUDGET_MS)
    for bad in (
        lambda: sched.observe(8, 1, -3.0, 0.0),
        lambda: sched.observe(8, 3, 10.0, 0.0),
        lambda: sched.observe(0, 0, 10.0, 0.0),
        lambda: sched.set_budget(budget_ms=0.0),
        lambda: sched.set_budget(power_w=math.nan),
        lambda: Scheduler([], BUDGET_MS),
        lambda: Scheduler([4, 4], BUDGET_MS),
        lambda: Scheduler(FRAME_COUNTS, BUDGET_MS, candidates=[0, 4]),
        lambda: BatteryPolicy.parse("twenty"),
        lambda: BatteryPolicy(threshold_percent=120, cap_frames=4),
    ):
        with pytest.raises(SchedulerError):
            bad()
    assert BatteryPolicy.parse("20%:8") == BatteryPolicy(threshold_percent=20.0, cap_frames=8)


# ------------------------------------------------------------------ battery, power, thermal caps


def test_battery_cap_appears_below_threshold_and_lifts_when_plugged() -> None:
    policy = BatteryPolicy(threshold_percent=20, cap_frames=8)
    trace = SignalTrace(
        [
            (0.0, Signals(battery_percent=50, plugged=False)),
            (6.0, Signals(battery_percent=19, plugged=False)),  # crosses the threshold
            (12.0, Signals(battery_percent=18, plugged=True)),  # charger in
        ]
    )
    sched = Scheduler(FRAME_COUNTS, Budgets(100.0, battery_policy=policy))
    decisions = [d for d, _ in simulate(sched, 180, lambda step, n: plant(n), signals=trace)]
    high, low, plugged = decisions[WARMUP:60], decisions[60:120], decisions[120:]
    assert all(d.n == 16 and d.reasons == ["max"] for d in high)
    assert all(d.n == 8 and d.reasons == ["battery"] for d in low)
    assert all("battery" not in d.reasons for d in plugged)
    assert plugged[-1].n == 16


def test_no_battery_means_no_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(signals_mod.psutil, "sensors_battery", lambda: None)
    assert BatterySensor()(0.0) == Signals()
    sched = Scheduler(FRAME_COUNTS, Budgets(100.0, battery_policy=BatteryPolicy(90, 4)))
    trace = simulate(sched, 30, lambda step, n: plant(n), signals=lambda t: read_signals(t, [BatterySensor()]))
    assert trace[-1][0].n == 16 and trace[-1][0].reasons == ["max"]


def test_battery_sensor_reads_psutil(monkeypatch: pytest.MonkeyPatch) -> None:
    battery = namedtuple("sbattery", "percent secsleft power_plugged")
    monkeypatch.setattr(signals_mod.psutil, "sensors_battery", lambda: battery(12.5, 3600, False))
    assert BatterySensor()(0.0) == Signals(battery_percent=12.5, plugged=False)
    assert BatteryPolicy(20, 4).applies(BatterySensor()(0.0))


def test_power_budget_caps_frames_and_lifts_when_removed() -> None:
    sched = Scheduler(FRAME_COUNTS, Budgets(100.0, power_w=8.0), power_interval_s=0.0)
    last_n = [16]

    def board_power(now_s: float) -> Signals:  # 2 W idle + 0.5 W per frame of the last run
        return Signals(power_w=2.0 + 0.5 * last_n[0])

    def latency(step: int, n: int) -> float:
        last_n[0] = n
        return plant(n)

    trace = simulate(sched, 60, latency, signals=board_power)
    steady = [d for d, _ in trace[30:]]
    assert all(2.0 + 0.5 * d.n <= 8.0 for d in steady)  # n <= 12
    assert max(d.n for d in steady) >= 10  # not starved
    assert any("power" in d.reasons for d in steady)
    sched.set_budget(power_w=None)
    trace = simulate(sched, 10, latency, signals=board_power)
    assert trace[-1][0].n == 16


def test_thermal_cap_with_release_hysteresis() -> None:
    trace = SignalTrace(
        [
            (0.0, Signals(temp_c=60.0)),
            (3.0, Signals(temp_c=85.0)),
            (5.0, Signals(temp_c=78.0)),
            (7.0, Signals(temp_c=70.0)),
        ]
    )
    policy = ThermalPolicy(threshold_c=80.0, cap_frames=8, release_c=5.0)
    sched = Scheduler(FRAME_COUNTS, Budgets(100.0, thermal_policy=policy))
    decisions = [d for d, _ in simulate(sched, 100, lambda step, n: plant(n), signals=trace)]
    assert decisions[25].n == 16
    assert all(d.n == 8 and d.reasons == ["thermal"] for d in decisions[30:70])  # 85 C, then 78 C
    assert decisions[-1].n == 16 and "thermal" not in decisions[-1].reasons


# ------------------------------------------------------------------ signal providers


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def test_power_rails_iio_layout_uses_the_input_rail(tmp_path: Path) -> None:
    device = tmp_path / "bus/i2c/drivers/ina3221x/6-0040/iio:device0"
    for k, (name, mw) in enumerate([("POM_5V_IN", 5000), ("POM_5V_GPU", 1500), ("POM_5V_CPU", 2000)]):
        _write(device / f"in_power{k}_input", str(mw))
        _write(device / f"rail_name_{k}", name)
    rails = PowerRails(tmp_path)
    assert rails.read_rails() == {"POM_5V_IN": 5.0, "POM_5V_GPU": 1.5, "POM_5V_CPU": 2.0}
    assert rails(0.0) == Signals(power_w=5.0)  # the input rail already contains the others


def test_power_rails_without_input_rail_sum_all(tmp_path: Path) -> None:
    for address, rails in (("1-0040", ["GPU", "CPU", "SOC"]), ("1-0041", ["CV", "VDDRQ", "SYS5V"])):
        device = tmp_path / f"bus/i2c/drivers/ina3221x/{address}/iio:device0"
        for k, name in enumerate(rails):
            _write(device / f"in_power{k}_input", "1000")
            _write(device / f"rail_name_{k}", name)
    assert PowerRails(tmp_path).read_w() == pytest.approx(6.0)


def test_power_rails_hwmon_layout(tmp_path: Path) -> None:
    ina = tmp_path / "class/hwmon/hwmon3"
    _write(ina / "name", "ina3221")
    for k, (label, mv, ma) in enumerate([("VDD_IN", 5000, 1200), ("VDD_CPU_GPU_CV", 5000, 400)], start=1):
        _write(ina / f"in{k}_label", label)
        _write(ina / f"in{k}_input", str(mv))
        _write(ina / f"curr{k}_input", str(ma))
    _write(ina / "in4_input", "40000")  # shunt voltage (uV) and sum of currents: not a channel
    _write(ina / "curr4_input", "1600")
    other = tmp_path / "class/hwmon/hwmon0"  # a different chip: ignored
    _write(other / "name", "coretemp")
    _write(other / "power1_input", "99000000")
    assert PowerRails(tmp_path).read_rails() == {"VDD_IN": 6.0, "VDD_CPU_GPU_CV": 2.0}
    assert PowerRails(tmp_path).read_w() == pytest.approx(6.0)

    uw = tmp_path / "uw/class/hwmon/hwmon1"  # a hwmon driver that reports power in uW
    _write(uw / "name", "ina3221")
    _write(uw / "power1_input", "7500000")
    assert PowerRails(tmp_path / "uw").read_w() == pytest.approx(7.5)


def test_thermal_zones_hottest_valid_zone(tmp_path: Path) -> None:
    zones = tmp_path / "class/thermal"
    for i, (kind, temp) in enumerate([("CPU-therm", "45500"), ("PMIC-Die", "100000"), ("GPU-therm", "51000")]):
        _write(zones / f"thermal_zone{i}/type", kind)
        _write(zones / f"thermal_zone{i}/temp", temp)
    _write(zones / "thermal_zone3/type", "broken")
    _write(zones / "thermal_zone3/temp", "not a number")
    assert ThermalZones(tmp_path)(0.0) == Signals(temp_c=51.0)


def test_absent_sensors_read_none(tmp_path: Path) -> None:
    assert PowerRails(tmp_path).read_w() is None
    assert ThermalZones(tmp_path).read_c() is None
    merged = read_signals(0.0, [PowerRails(tmp_path), ThermalZones(tmp_path)])
    assert merged == Signals()


def test_read_signals_merges_first_known_value_and_trace_holds() -> None:
    trace = SignalTrace([(1.0, Signals(temp_c=50.0)), (2.0, Signals(temp_c=70.0, power_w=3.0))])
    assert trace(0.5) == Signals()
    assert trace(1.5) == Signals(temp_c=50.0)
    assert trace(9.0) == Signals(temp_c=70.0, power_w=3.0)
    battery = SignalTrace([(0.0, Signals(battery_percent=40.0, plugged=False, temp_c=10.0))])
    assert read_signals(2.0, [trace, battery]) == Signals(battery_percent=40.0, plugged=False, power_w=3.0, temp_c=70.0)
    with pytest.raises(ValueError, match="non-decreasing"):
        SignalTrace([(2.0, Signals()), (1.0, Signals())])


def test_scheduler_and_signals_import_without_torch() -> None:
    code = ("import sys, ffn_edge.runtime.control.scheduler, ffn_edge.runtime.control.signals; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
