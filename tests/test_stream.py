"""Streams (runtime.streaming.stream) scheduled on budgets, in the API and in ffn-run: reasons in
every result, budgets changed mid-stream, a battery cap from a scripted signal, --json, bad flags."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from ffn_edge.runtime import Budgets, FFNRuntime, FrameCountPolicy
from ffn_edge.runtime.app.cli import run
from ffn_edge.runtime.control.scheduler import REASONS, BatteryPolicy, Scheduler
from ffn_edge.runtime.control.signals import Signals

from ffn_edge.core.errors import run_cli

ROOT = Path(__file__).resolve().parents[1]
SUBPROCESS_TIMEOUT = 120
LARGE_BUDGET_MS = 10_000.0  # every count fits: decisions are "max" unless a cap binds


@pytest.fixture(scope="module")
def bundle(tiny_bundle) -> Path:
    return tiny_bundle


@pytest.fixture(scope="module")
def rt(bundle) -> FFNRuntime:
    with FFNRuntime.open(bundle, threads=1) as runtime:
        yield runtime


def _stream(rt: FFNRuntime, video: Path, **kwargs):
    return rt.stream(str(video), window_s=1.0, stride_ms=100, **kwargs)  # window ends 1.0, 1.1, ..., 2.9 s


def test_stream_with_a_budget_reports_reasons_prediction_and_budget_state(rt, video):
    results = list(_stream(rt, video, budget_ms=LARGE_BUDGET_MS))
    assert len(results) == 20
    assert results[0].reasons == ("warmup",) and results[0].predicted_ms is None
    for r in results:
        assert r.reasons and set(r.reasons) <= set(REASONS) and r.reason == ",".join(r.reasons)
        assert r.budget["latency_ms"] == LARGE_BUDGET_MS and r.within_budget and r.feasible
        assert "signals" in r.budget  # the live sensors were read (all None on a machine without them)
    settled = [r for r in results if "warmup" not in r.reasons]
    assert settled and all(r.reasons == ("max",) and r.prediction.frames == 8 for r in settled)
    assert all(0 < r.predicted_ms < LARGE_BUDGET_MS for r in settled)
    decoded = json.loads(json.dumps(settled[-1].to_json()))
    assert decoded["reasons"] == ["max"] and decoded["feasible"] is True and decoded["predicted_ms"] > 0
    assert decoded["budget"]["latency_ms"] == LARGE_BUDGET_MS


def test_file_played_in_real_time_is_scheduled_on_media_time(rt, video):
    start = time.monotonic()
    results = list(rt.stream(str(video), budget_ms=LARGE_BUDGET_MS, window_s=0.5, stride_ms=100, realtime=True,
                             max_decisions=6, duration_s=10))
    assert len(results) == 6 and time.monotonic() - start < 5
    ends = [r.window[1] for r in results]
    assert ends == sorted(ends) and ends[0] > 0.4 and ends[-1] < 4.0  # media seconds, not the monotonic clock
    assert all(r.frames_available > 0 and r.reasons for r in results)


def test_set_budget_mid_stream_changes_the_decisions(rt, video):
    results = []
    stream = _stream(rt, video, budget_ms=LARGE_BUDGET_MS)
    for r in stream:
        results.append(r)
        if r.decision == 9:  # after the warm-up (6 runs); from another thread, as an app would
            setter = threading.Thread(target=stream.set_budget, args=(1e-3,))
            setter.start()
            setter.join(timeout=10)
        elif r.decision == 14:
            stream.set_budget(budget_ms=None)  # budget off: the largest count
    assert all("warmup" not in r.reasons for r in results[6:10])
    tiny = results[10:15]
    assert all(r.prediction.frames == 4 and r.reasons == ("budget_infeasible",) for r in tiny)
    assert all(r.feasible is False and r.within_budget is False and r.budget_ms == 1e-3 for r in tiny)
    assert all(r.budget["latency_ms"] == 1e-3 for r in tiny)
    off = results[15:]
    assert all(r.budget_ms is None and r.within_budget is None for r in off)
    assert off[-1].prediction.frames == 8 and off[-1].reasons == ("max",)


def test_scripted_battery_signal_caps_the_frame_count(rt, video):
    level = {"percent": 90.0}

    def battery(now_s: float) -> Signals:
        return Signals(battery_percent=level["percent"], plugged=False)

    results = []
    for r in _stream(rt, video, budgets=Budgets(battery_policy="50:4"), signals=battery):  # no latency budget needed
        results.append(r)
        if r.decision == 12:
            level["percent"] = 10.0  # discharged below the threshold
    charged, low = results[6:13], results[13:]
    assert all(r.prediction.frames == 8 and r.reasons == ("max",) for r in charged)
    assert all(r.prediction.frames == 4 and r.reasons == ("battery",) for r in low)
    assert low[0].budget["battery_policy"] == "50:4"
    assert low[0].budget["signals"] == {"battery_percent": 10.0, "plugged": False, "power_w": None, "temp_c": None}


def test_a_scheduler_passed_in_keeps_its_own_budgets_until_set_budget_changes_them():
    sched = Scheduler((4, 8), Budgets(20.0, battery_policy=BatteryPolicy(50, 4)))
    policy = FrameCountPolicy((4, 8), scheduler=sched, signals=lambda t: Signals(battery_percent=10.0, plugged=False))
    assert policy.budget_ms == 20.0 and policy.budgets.battery_policy == BatteryPolicy(50, 4)
    policy.set_budget(power_w=5.0)  # only what is given changes
    assert sched.budgets == Budgets(20.0, 5.0, BatteryPolicy(50, 4)) and policy.budgets is sched.budgets
    assert policy.decide(0.0).budget == {"latency_ms": 20.0, "power_w": 5.0, "battery_policy": "50:4",
                                         "thermal_policy": None, "signals": {"battery_percent": 10.0,
                                                                             "plugged": False, "power_w": None,
                                                                             "temp_c": None}}


def test_ffn_run_json_carries_reasons_and_budget_state(bundle, video):
    out = subprocess.run(
        [sys.executable, "-m", "ffn_edge.runtime.app.cli", "--bundle", str(bundle), "--video", str(video),
         "--budget-ms", "5000", "--battery-policy", "20:4", "--power-w", "5", "--thermal-c", "80:8",
         "--stride-ms", "250", "--json", "--threads", "1"],
        capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT, cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert out.returncode == 0, out.stderr
    decisions = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(decisions) == 8  # window ends 1.0, 1.25, ..., 2.75 s (<= 89/30 s)
    for d in decisions:
        assert d["reasons"] and set(d["reasons"]) <= set(REASONS)
        assert d["budget"]["latency_ms"] == 5000 and d["budget"]["power_w"] == 5
        assert d["budget"]["battery_policy"] == "20:4" and d["budget"]["thermal_policy"] == "80:8"
    assert decisions[0]["reasons"] == ["warmup"] and decisions[0]["predicted_ms"] is None
    assert decisions[-1]["predicted_ms"] > 0 and decisions[-1]["feasible"] is True


@pytest.mark.parametrize("flags", [
    ["--battery-policy", "low"],
    ["--battery-policy", "120:4"],
    ["--battery-policy", "20:0"],
    ["--thermal-c", "hot"],
    ["--power-w", "-5"],
    ["--budget-ms", "0"],
    ["--budget-ms", "nan"],
])
def test_ffn_run_bad_budget_is_one_line_and_exit_2(flags, bundle, video, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli("ffn-run", lambda: run(["--bundle", str(bundle), "--video", str(video), *flags]))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith(f"ffn-run: error: {flags[0]}")
