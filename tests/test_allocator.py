"""Joint allocator: exact knapsack answers, N = 1 replays the Scheduler, device caps, objectives."""

from __future__ import annotations

import itertools
import math
import random

import pytest
from ffn_edge.runtime.control.accuracy import AccuracyCurve, default_accuracy
from ffn_edge.runtime.control.allocator import AllocatorSettings, JointAllocator, RunRecord
from ffn_edge.runtime.control.budgets import Budgets, SchedulerError
from ffn_edge.runtime.control.knapsack import allocate
from ffn_edge.runtime.control.scheduler import Scheduler
from ffn_edge.runtime.control.signals import Signals

FRAME_COUNTS = [4, 8, 16]


def plant(n: int, load: float = 1.0) -> float:
    """Simulated latency of one run of n frames: 5 ms overhead + 2 ms per frame, times the load."""
    return load * (5.0 + 2.0 * n)


def brute_force(weights, candidates, acc, group_ms, budget):
    """Every assignment, the best by (value, frames, -latency)."""
    best = None
    for counts in itertools.product(candidates, repeat=len(weights)):
        ms = sum(group_ms(n, counts.count(n)) for n in set(counts))
        if budget is not None and ms > budget:
            continue
        key = (round(sum(w * acc(n) for w, n in zip(weights, counts, strict=True)), 9), sum(counts), -ms)
        if best is None or key > best[0]:
            best = (key, counts)
    return best


# ------------------------------------------------------------------ the knapsack


def test_knapsack_scripted_case_spreads_frames_and_favours_the_heavier_stream() -> None:
    acc = {4: 60.0, 8: 70.0, 16: 75.0}.__getitem__
    ms = lambda n, b: b * plant(n)  # noqa: E731 - no batching
    # 16 costs 37, 8 costs 21, 4 costs 13. Budget 58: (16, 8) = 58 beats (8, 8) = 42 and (16, 4) = 50.
    a = allocate([1.0, 2.0], [4, 8, 16], acc, ms, 58.0)
    assert a is not None and a.counts == (8, 16) and a.round_ms == pytest.approx(58.0)
    assert a.value == pytest.approx(70.0 + 2 * 75.0)
    assert allocate([1.0, 2.0], [4, 8, 16], acc, ms, 25.0) is None  # two runs of 4 cost 26
    assert allocate([1.0, 1.0, 1.0], [4, 8, 16], acc, ms, None).counts == (16, 16, 16)


def test_knapsack_with_batching_prefers_one_batch() -> None:
    acc = {4: 60.0, 8: 70.0, 16: 75.0}.__getitem__
    batched = lambda n, b: 5.0 + 2.0 * n * b  # noqa: E731 - one overhead per batch
    # 3 streams, budget 55: one batch of 8 costs 53; (16, 4, 4) would cost 37 + 21 = 58.
    a = allocate([1.0, 1.0, 1.0], [4, 8, 16], acc, batched, 55.0)
    assert a is not None and a.counts == (8, 8, 8) and a.round_ms == pytest.approx(53.0)


def test_knapsack_is_exact_against_brute_force_on_random_cases() -> None:
    rng = random.Random(7)
    for _ in range(60):
        streams = rng.randint(1, 4)
        cands = sorted(rng.sample(range(2, 17), rng.randint(1, 5)))
        points = {n: rng.uniform(30, 90) for n in cands}  # not monotone on purpose
        weights = [rng.choice([0.5, 1.0, 1.0, 2.0, 3.0]) for _ in range(streams)]
        over = rng.uniform(0.5, 3.0)
        batching = rng.random() < 0.5
        if batching:
            ms = lambda n, b, o=over: o * (4.0 + 1.5 * n * b)  # noqa: E731
        else:
            ms = lambda n, b, o=over: b * o * (4.0 + 1.5 * n)  # noqa: E731
        budget = rng.choice([None, rng.uniform(10, 150)])
        got = allocate(weights, cands, points.__getitem__, ms, budget)
        want = brute_force(weights, cands, points.__getitem__, ms, budget)
        if want is None:
            assert got is None
            continue
        assert got is not None
        value = sum(w * points[n] for w, n in zip(weights, got.counts, strict=True))
        assert value == pytest.approx(want[0][0], abs=1e-6), (weights, cands, budget)
        assert sum(got.counts) == want[0][1]
        assert budget is None or got.round_ms <= budget + 1e-9


# ------------------------------------------------------------------ N = 1 is the Scheduler


def scripted_latency(step: int, n: int) -> float:
    load = 2.0 if 60 <= step < 90 else 1.0  # a load step, then back
    jitter = 1.0 + 0.04 * math.sin(step * 1.7)
    return plant(n, load) * jitter


def scripted_signals(now: float) -> Signals:
    battery = Signals(battery_percent=15.0, plugged=False) if 12.0 <= now < 14.0 else Signals()
    temp = 90.0 if 16.0 <= now < 17.0 else 40.0
    return Signals(battery_percent=battery.battery_percent, plugged=battery.plugged, temp_c=temp,
                   power_w=2.0 + 0.6 * 16 if 18.0 <= now < 19.0 else 6.0)


def test_one_stream_replays_the_scheduler_decision_for_decision() -> None:
    budgets = Budgets(budget_ms=40.0, power_w=8.0, battery_policy="20:6", thermal_policy="80:8")
    sched = Scheduler(FRAME_COUNTS, budgets, probe_every=10)
    alloc = JointAllocator(FRAME_COUNTS, budgets, weights={"cam": 1.0},
                           settings=AllocatorSettings(probe_every=10), batching=False)
    seen = set()
    for step in range(260):
        now = step * 0.1
        if step == 120:
            sched.set_budget(budget_ms=25.0)
            alloc.set_budget(budget_ms=25.0)
        if step == 200:
            sched.set_budget(budget_ms=8.0)  # infeasible
            alloc.set_budget(budget_ms=8.0)
        if step == 215:
            sched.set_budget(budget_ms=None)
            alloc.set_budget(budget_ms=None)
        sig = scripted_signals(now)
        a = sched.decide(now, sig)
        b = alloc.decide(now, sig).decisions["cam"]
        assert (a.n, a.subnet, a.reasons, a.feasible, a.budget_ms) == (b.n, b.subnet, b.reasons, b.feasible,
                                                                        b.budget_ms), step
        assert a.predicted_ms == b.predicted_ms
        seen.update(a.reasons)
        lat = scripted_latency(step, a.n)
        cpu = min(lat, plant(a.n))
        sched.observe(a.n, a.subnet, lat, now, cpu_ms=cpu)
        alloc.observe([RunRecord(b.n, b.subnet, 1, lat, cpu)], now)
    # the trace exercised every branch it claims to compare
    assert {"warmup", "budget", "max", "hysteresis", "probe", "battery", "thermal", "power",
            "budget_infeasible"} <= seen


# ------------------------------------------------------------------ rounds, caps, objectives


def run_rounds(alloc: JointAllocator, rounds: int, signals=lambda t: Signals(), t0: float = 0.0):
    """decide -> each group runs (batched plant) -> observe; returns the last RoundDecision."""
    last = None
    for i in range(rounds):
        now = t0 + i * 0.5
        r = alloc.decide(now, signals(now))
        runs = []
        for g in r.groups:
            b = len(g.keys) if alloc.batching else 1
            ms = 5.0 + 2.0 * g.n * b
            runs.append(RunRecord(g.n, g.subnet, b, ms, ms))
        alloc.observe(runs, now)
        last = r
    return last


def test_batched_round_fits_and_weights_decide_who_gets_more() -> None:
    alloc = JointAllocator(FRAME_COUNTS, 90.0, weights={"a": 1.0, "b": 1.0, "c": 5.0})
    r = run_rounds(alloc, 40)
    counts = {k: d.n for k, d in r.decisions.items()}
    assert r.predicted_ms <= 90.0 and r.feasible
    assert counts["c"] >= counts["a"] and counts["c"] >= counts["b"]
    assert counts["c"] == 16 and counts["a"] < 16  # everyone at 16 would cost 5 + 96 x 2 ms
    assert sum(len(g.keys) for g in r.groups) == 3


def test_caps_apply_to_the_whole_device() -> None:
    alloc = JointAllocator(FRAME_COUNTS, Budgets(thermal_policy="80:8"), weights={"a": 1.0, "b": 3.0})
    run_rounds(alloc, 12)
    r = run_rounds(alloc, 6, signals=lambda t: Signals(temp_c=85.0), t0=10.0)
    assert all(d.n == 8 and d.reasons == ["thermal"] for d in r.decisions.values())


def test_min_accuracy_takes_the_least_compute_reaching_the_share() -> None:
    curve = AccuracyCurve(16, {4: 60.0, 8: 72.0, 16: 75.0})
    alloc = JointAllocator(FRAME_COUNTS, None, weights={"a": 1.0}, curve=curve, min_accuracy=0.95)
    r = run_rounds(alloc, 20)
    # 95 % of 75 = 71.25: 8 frames reach 72 and 7 reach 69 (linear between 4 and 8)
    assert r.decisions["a"].n == 8 and r.decisions["a"].reasons == ["accuracy"]
    alloc.set_budget(min_accuracy=None)
    r = run_rounds(alloc, 10, t0=20.0)
    assert r.decisions["a"].n == 16


def test_accuracy_curve_default_is_monotone_and_points_interpolate() -> None:
    values = [default_accuracy(n, 16) for n in range(1, 33)]
    assert all(b > a for a, b in zip(values, values[1:], strict=False))
    curve = AccuracyCurve(16, {4: 60.0, 8: 70.0, 16: 80.0})
    assert curve(6) == pytest.approx(65.0) and curve(12) == pytest.approx(75.0)
    assert curve(2) < 60.0 and curve(20) > 80.0
    with pytest.raises(SchedulerError):
        AccuracyCurve(16, {4: -1.0})


def test_add_remove_set_weight_and_bad_weights() -> None:
    alloc = JointAllocator(FRAME_COUNTS, 60.0, weights={"a": 1.0})
    run_rounds(alloc, 12)
    alloc.add("b", 2.0)
    r = run_rounds(alloc, 4, t0=10.0)
    assert set(r.decisions) == {"a", "b"}
    alloc.set_weight("a", 10.0)
    alloc.remove("b")
    assert set(run_rounds(alloc, 2, t0=20.0).decisions) == {"a"}
    for bad in (0, -1.0, float("nan"), True, "1"):
        with pytest.raises(SchedulerError, match="weight"):
            alloc.add("c", bad)
    with pytest.raises(SchedulerError, match="already"):
        alloc.add("a", 1.0)
    with pytest.raises(SchedulerError, match="no stream"):
        alloc.remove("zzz")


def test_knapsack_of_sixteen_streams_is_small() -> None:
    """Not timed (tests must not depend on speed): the DP's fronts stay small, so it is cheap."""
    acc = AccuracyCurve(16)
    a = allocate([1.0 + i % 3 for i in range(16)], list(range(4, 17)), acc, lambda n, b: 3.0 + 0.5 * n * b, 120.0)
    assert a is not None and a.round_ms <= 120.0 and len(a.counts) == 16
