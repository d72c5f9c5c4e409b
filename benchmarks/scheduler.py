"""Budget scheduler on this machine, in one stream under a switching load (optionally beside a recorded run).

Part 1 (live): an FFN bundle (TSM-MobileNetV2, sub-networks 4/8/16, graphs that take any frame
count, so every n in 4..16 is a candidate) runs ``FFNRuntime.stream`` in real time on a generated
video (synthetic clips) with a latency budget, while a background load (one busy numpy process per
core, via multiprocessing) switches on and off on a schedule (default 20 s off / 20 s on).

* **Calibration** (before and after the stream, through the same stream path: capture thread,
  real-time pacing, a round-robin ``scheduler=``): every count runs ``--calib-runs`` times (>= 20)
  with the load off and on. The budget (unless given) is the high percentile (p``BUDGET_PERCENTILE``)
  of the load-off runs of the middle count before the stream, so with the load off the best count
  lies inside the range and under load the small ones fit. The *median oracle* of a load state is
  the largest count whose calibrated median (made monotone in n) fits the budget. A decision is
  *feasible* unless even the smallest count would have missed the budget under the slowdown that
  decision's run saw: its wall / CPU ratio x the calibrated median CPU ms of the smallest count.
* **Baseline** (``--baseline RUN.json``): a run recorded earlier with ``--json`` is printed as a second
  column beside this one. It ran on other minutes, so the comparison is only as fair as the two loads
  were alike (the load averages of both runs are printed). The interleaved A/B of the previous
  controller against this one, when both lived in the tree, is kept in ``docs/scheduler/README.md``.

Printed per controller: share of decisions within budget over feasible decisions and over all
(steady state: warm-up and the RECOVERY_WINDOW decisions after each load step left out; goal >= 99 %
of feasible); decisions to get back within budget after each load step (feasible over-budget
decisions before RECOVERED_RUN in a row that are within budget or infeasible; goal <= 3); mean
frames / median oracle with the load off (goal >= 0.95) and overall (goal >= 0.9); frame-count
switches per second in steady phases (goal <= 1). The load average before and after is printed:
other jobs on the machine add to the scripted load.

Part 2 (replay, no runtime): the pure ``Scheduler`` with scripted latencies (5 + 3 n ms, 3 % noise)
and a battery discharging from 100 % to 5 % (a ``SignalTrace``, not plugged in) under a battery
policy (default 20:4): the cap, in a table.

Both go into one PNG (``docs/scheduler/scheduler.png`` by default).

    python benchmarks/scheduler.py                                    # ~5 min
    python benchmarks/scheduler.py --cycles 2 --phase-s 10 --calib-runs 20   # quicker
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing as mp
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

GOALS = {"within": 0.99, "recovery": 3, "off_ratio": 0.95, "ratio": 0.9, "switches_per_s": 1.0}
BUDGET_PERCENTILE = 95  # the budget comes from this percentile of the calibration runs
RECOVERY_WINDOW = 3  # decisions (per controller) after a load step left out of the steady state
RECOVERED_RUN = 3  # in-budget decisions in a row that count as "back within budget"
JOIN_TIMEOUT_S = 5.0
ROOT = Path(__file__).resolve().parents[1]


# -- background load --------------------------------------------------------------------------------


def _busy(on: Any, stop: Any) -> None:
    """One core's worth of busy numpy work while ``on`` is set (elementwise: single-threaded)."""
    x = np.random.default_rng(os.getpid()).random(1 << 15)
    while not stop.is_set():
        if not on.wait(0.05):
            continue
        for _ in range(20):  # a few ms per chunk, so it stops soon after ``on`` clears
            np.sqrt(x * x + 1.0, out=x)
            x *= 0.5


class CpuLoad:
    """``procs`` processes that burn CPU while ``set(True)``; a context manager that always stops them."""

    def __init__(self, procs: int) -> None:
        ctx = mp.get_context("spawn")  # no fork of a process with inference threads
        self._on, self._stop = ctx.Event(), ctx.Event()
        self._procs = [ctx.Process(target=_busy, args=(self._on, self._stop), daemon=True) for _ in range(procs)]
        self.on = False

    def __enter__(self) -> CpuLoad:
        for p in self._procs:
            p.start()
        return self

    def set(self, on: bool, settle_s: float = 0.0) -> None:
        """Switch the load; ``settle_s``: wait that long for it to take effect (calibration)."""
        (self._on.set if on else self._on.clear)()
        self.on = on
        time.sleep(settle_s)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._on.clear()
        for p in self._procs:
            p.join(JOIN_TIMEOUT_S)
            if p.is_alive():
                p.terminate()
                p.join(JOIN_TIMEOUT_S)


# -- inputs -----------------------------------------------------------------------------------------


def build_bundle(work: Path, width: float, size: int, counts: Sequence[int]) -> Path:
    """An (untrained) FFN bundle whose graphs take any frame count; cached in ``work``."""
    bundle = work / "model.ffn"
    if (bundle / "manifest.json").exists():
        return bundle
    from ffn_edge.export import export_bundle

    from ffn_edge.checkpoint import CheckpointMeta, save_checkpoint
    from ffn_edge.data.synthetic import CLASSES
    from ffn_edge.models import ModelConfig, create_model

    cfg = ModelConfig("tsm_mobilenetv2", len(CLASSES), frame_counts=tuple(counts), width_mult=width)
    ckpt = work / "model.safetensors"
    save_checkpoint(ckpt, create_model(cfg).eval(),
                    CheckpointMeta(cfg, [name for name, _ in CLASSES], input_size=size, resize_shorter=size))
    return Path(export_bundle(ckpt, counts, bundle, force=True, verify=False, frame_dim="dynamic"))


def build_video(path: Path, seconds: float, fps: float, size: int) -> Path:
    """Synthetic clips (every class in turn) for ``seconds``; cached by name."""
    if path.exists():
        return path
    import cv2

    from ffn_edge.data.synthetic import CLASSES, render_clip

    tmp = path.with_suffix(".tmp.mp4")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (size, size))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {tmp}")
    rng = np.random.default_rng(0)
    clip_frames = int(2 * fps)
    for i in range(int(np.ceil(seconds * fps / clip_frames))):
        for frame in render_clip(i % len(CLASSES), rng, clip_frames, size):
            writer.write(frame)
    writer.release()
    tmp.rename(path)
    return path


# -- calibration and the oracle ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Step:
    n: int
    reasons: tuple[str, ...] = ("calibration",)


class RoundRobin:
    """A scheduler for ``stream(scheduler=...)`` that runs every count in turn and keeps the latencies.

    The calibration thus goes through the live stream's own path (capture thread, real-time pacing,
    idle gaps between decisions), so its latencies are the ones the controllers schedule on.
    """

    def __init__(self, counts: Sequence[int], runs: int) -> None:
        self.plan = [n for _ in range(runs) for n in counts]
        self.latencies: list[tuple[int, float, float | None]] = []  # (n, wall ms, CPU ms)

    def decide(self, now_s: float, signals: Any) -> _Step:
        return _Step(self.plan[len(self.latencies) % len(self.plan)])

    def observe(self, n: int, subnet: int, latency_ms: float, now_s: float, cpu_ms: float | None = None) -> None:
        self.latencies.append((n, latency_ms, cpu_ms))


def calibrate(rt: Any, video: Path, counts: Sequence[int], load: CpuLoad, runs: int, stride_ms: float,
              samples: dict[tuple[bool, int], list[float]], cpu: dict[tuple[bool, int], list[float]]) -> None:
    """Add ``runs`` stream latencies (and CPU ms) per (load, n): counts round robin, load off then on."""
    for on in (False, True):
        load.set(on, settle_s=0.5)
        rr = RoundRobin(counts, runs)
        with rt.stream(str(video), scheduler=rr, window_s=1.0, stride_ms=stride_ms, realtime=True,
                       max_decisions=len(rr.plan), duration_s=600) as stream:
            for _ in stream:
                pass
        for n, latency, cpu_ms in rr.latencies:
            samples.setdefault((on, n), []).append(latency)
            cpu.setdefault((on, n), []).append(cpu_ms if cpu_ms is not None else latency)
    load.set(False)


def oracle(latency: dict[int, float], budget_ms: float) -> int:
    """Largest count whose latency, made monotone in n (running max), fits; else the smallest."""
    fits, worst = [], 0.0
    for n in sorted(latency):
        worst = max(worst, latency[n])
        if worst <= budget_ms:
            fits.append(n)
    return max(fits, default=min(latency))


# -- the A/B stream ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Record:
    t: float  # seconds since the stream started
    controller: str  # "new": the controller in the tree (a --baseline run is printed as "baseline")
    load: bool  # the load state the decision ran under
    n: int
    latency_ms: float
    cpu_ms: float | None
    predicted_ms: float | None
    reasons: tuple[str, ...]


def run_stream(rt: Any, video: Path, budget_ms: float, load: CpuLoad, phase_s: float, cycles: int,
               stride_ms: float) -> list[Record]:
    """Stream in real time while the load is off / on for ``phase_s`` each, ``cycles`` times."""
    from ffn_edge.runtime.control.scheduler import Scheduler

    sched = Scheduler(rt.manifest.subnet_frame_counts, budget_ms)
    records: list[Record] = []
    load.set(False)
    t0 = time.monotonic()
    with rt.stream(str(video), scheduler=sched, window_s=1.0, stride_ms=stride_ms, realtime=True,
                   duration_s=2 * phase_s * cycles) as stream:
        for r in stream:
            now = time.monotonic() - t0
            p = r.prediction
            records.append(Record(now, "new", load.on, p.frames, p.latency_ms, p.cpu_ms, r.predicted_ms, r.reasons))
            want = int(now // phase_s) % 2 == 1  # off, on, off, on, ...
            if want != load.on:
                load.set(want)
    return records


# -- analysis ---------------------------------------------------------------------------------------


def analyse(records: list[Record], budget_ms: float, oracles: dict[bool, int],
            smallest_cpu: dict[bool, float]) -> dict[str, Any]:
    """One controller's numbers (``records`` are its decisions only, in order)."""
    steps = [i for i in range(1, len(records)) if records[i].load != records[i - 1].load]
    warm = sum("warmup" in r.reasons for r in records)
    transient = {j for i in steps for j in range(i, i + RECOVERY_WINDOW)}
    steady_idx = [i for i in range(warm, len(records)) if i not in transient]
    steady = [records[i] for i in steady_idx]
    ok = [r.latency_ms <= budget_ms for r in steady]
    def feasible(r: Record) -> bool:  # would the smallest count have fitted under this run's slowdown?
        return r.cpu_ms is None or r.latency_ms / max(r.cpu_ms, 1e-6) * smallest_cpu[r.load] <= budget_ms

    ok_feasible = [r.latency_ms <= budget_ms for r in steady if feasible(r)]
    recovery = []
    for k, i in enumerate(steps):
        end = steps[k + 1] if k + 1 < len(steps) else len(records)
        # Back within budget: RECOVERED_RUN decisions in a row within it or infeasible (where no count fits,
        # no controller can be within); counted are the feasible over-budget decisions before that.
        fine = [r.latency_ms <= budget_ms or not feasible(r) for r in records[i:end]]
        first = next((j for j in range(len(fine)) if all(fine[j:j + RECOVERED_RUN])), len(fine))
        recovery.append({"decision": i, "to": "on" if records[i].load else "off",
                         "over_budget": sum(not x for x in fine[:first]), "decisions": first,
                         "over_budget_any": sum(r.latency_ms > budget_ms for r in records[i:i + first])})
    ratio = [r.n / oracles[r.load] for r in steady]
    off_ratio = [r.n / oracles[False] for r in steady if not r.load]
    # Switches of the count run, between consecutive steady decisions of this controller.
    pairs = [(records[i - 1], records[i]) for i in steady_idx if i - 1 in set(steady_idx)]
    switches = sum(a.n != b.n for a, b in pairs)
    steady_s = sum(b.t - a.t for a, b in pairs)
    return {
        "decisions": len(records), "warmup": warm, "steady": len(steady),
        "within_feasible": float(np.mean(ok_feasible)) if ok_feasible else float("nan"),
        "feasible": len(ok_feasible),
        "within_all": float(np.mean(ok)) if ok else float("nan"),
        "within_after_warmup": float(np.mean([r.latency_ms <= budget_ms for r in records[warm:]])),
        "recovery": recovery,
        "worst_recovery": max((s["over_budget"] for s in recovery), default=0),
        "ratio": float(np.mean(ratio)) if ratio else float("nan"),
        "off_ratio": float(np.mean(off_ratio)) if off_ratio else float("nan"),
        "switches": switches, "switches_per_s": switches / steady_s if steady_s else float("nan"),
        "probes": sum(r.reasons == ("probe",) for r in steady),
        "held": float(np.mean(["hysteresis" in r.reasons for r in steady])) if steady else float("nan"),
        "phases": _phases(records, warm, transient, budget_ms, oracles),
    }


def _phases(records: list[Record], warm: int, transient: set[int], budget_ms: float,
            oracles: dict[bool, int]) -> list[dict[str, Any]]:
    """Per load phase: decisions, share within budget, latency p50/p99, mean n (steady state only)."""
    phases: list[dict[str, Any]] = []
    for i, r in enumerate(records):
        if not phases or phases[-1]["load"] != r.load:
            phases.append({"load": r.load, "start_s": r.t, "lat": [], "n": []})
        if i >= warm and i not in transient:
            phases[-1]["lat"].append(r.latency_ms)
            phases[-1]["n"].append(r.n)
    out = []
    for p in phases:
        lat, ns = np.array(p["lat"]), np.array(p["n"])
        nan = float("nan")
        out.append({"load": "on" if p["load"] else "off", "start_s": p["start_s"], "decisions": len(lat),
                    "within": float(np.mean(lat <= budget_ms)) if len(lat) else nan,
                    "p50_ms": float(np.median(lat)) if len(lat) else nan,
                    "p99_ms": float(np.percentile(lat, 99)) if len(lat) else nan,
                    "mean_n": float(ns.mean()) if len(ns) else nan, "oracle_n": oracles[p["load"]]})
    return out


# -- battery replay ---------------------------------------------------------------------------------


def battery_replay(policy_text: str, budget_ms: float, decisions: int = 600, seed: int = 0) -> dict[str, Any]:
    """The pure Scheduler on scripted latencies while the battery runs down from 100 % to 5 %."""
    from ffn_edge.runtime.control.scheduler import BatteryPolicy, Budgets, Scheduler
    from ffn_edge.runtime.control.signals import Signals, SignalTrace

    percent = np.linspace(100.0, 5.0, decisions)
    trace = SignalTrace([(float(t), Signals(battery_percent=float(p), plugged=False)) for t, p in enumerate(percent)])
    sched = Scheduler((4, 8, 16), Budgets(budget_ms, battery_policy=BatteryPolicy.parse(policy_text)))
    rng = np.random.default_rng(seed)
    ns, reasons = [], []
    for t in range(decisions):
        d = sched.decide(float(t), trace(float(t)))
        cost = 5.0 + 3.0 * d.n
        sched.observe(d.n, d.subnet, cost * float(np.exp(rng.normal(0, 0.03))), float(t), cpu_ms=cost)
        ns.append(d.n)
        reasons.append(",".join(d.reasons))
    return {"percent": percent.tolist(), "n": ns, "reasons": reasons, "policy": policy_text, "budget_ms": budget_ms}


def battery_table(replay: dict[str, Any]) -> list[str]:
    bands = [(100, 80), (80, 60), (60, 40), (40, 20), (20, 10), (10, 5)]
    pct, ns, reasons = np.array(replay["percent"]), np.array(replay["n"]), replay["reasons"]
    lines = [f"battery replay: policy {replay['policy']} (PERCENT:FRAMES), budget {replay['budget_ms']:g} ms, "
             "latency 5 + 3n ms (3 % noise), not plugged in",
             f"  {'battery %':>10s} {'decisions':>9s} {'mean n':>7s} {'n range':>8s}  reasons"]
    for hi, lo in bands:
        sel = np.where((pct <= hi) & (pct > lo) if lo > 5 else (pct <= hi) & (pct >= lo))[0]
        counts: dict[str, int] = {}
        for i in sel:
            counts[reasons[i]] = counts.get(reasons[i], 0) + 1
        why = " ".join(f"{k}:{v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
        span = f"{ns[sel].min()}-{ns[sel].max()}"
        lines.append(f"  {f'{hi}-{lo}':>10s} {len(sel):9d} {ns[sel].mean():7.2f} {span:>8s}  {why}")
    first = next((i for i, r in enumerate(reasons) if "battery" in r), None)
    if first is not None:
        lines.append(f"  cap first applied at decision {first} (battery {pct[first]:.1f} %)")
    return lines


# -- report -----------------------------------------------------------------------------------------

COLORS = {"baseline": "tab:purple", "new": "tab:green"}


def plot(path: Path, records: list[Record], budget_ms: float, oracles: dict[bool, int], replay: dict[str, Any],
         title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(11, 10), gridspec_kw={"height_ratios": [3, 2, 2]})
    ax_lat, ax_n, ax_bat = axes
    t_end = records[-1].t
    on_periods = []
    for i, r in enumerate(records):
        if r.load and (i == 0 or not records[i - 1].load):
            end = next((records[j].t for j in range(i, len(records)) if not records[j].load), t_end)
            on_periods.append((r.t, end))
    for ax in (ax_lat, ax_n):
        for k, (a, b) in enumerate(on_periods):
            ax.axvspan(a, b, color="tab:red", alpha=0.10, label="CPU load on" if k == 0 else None)
    for who in dict.fromkeys(r.controller for r in records):
        mine = [r for r in records if r.controller == who]
        t = np.array([r.t for r in mine])
        lat = np.array([r.latency_ms for r in mine])
        over = lat > budget_ms
        ax_lat.plot(t[~over], lat[~over], ".", ms=3, color=COLORS[who], alpha=0.7, label=f"{who}: within budget")
        ax_lat.plot(t[over], lat[over], "x", ms=4, color=COLORS[who], label=f"{who}: over budget")
        ax_n.step(t, [r.n for r in mine], where="post", color=COLORS[who], lw=1.1, alpha=0.85,
                  label=f"frames chosen ({who} controller)")
    ax_lat.axhline(budget_ms, color="k", lw=1.2, ls="--", label=f"budget {budget_ms:.1f} ms")
    lat_all = np.array([r.latency_ms for r in records])
    ax_lat.set_ylim(0, max(budget_ms * 2.0, float(np.percentile(lat_all, 99)) * 1.1))
    ax_lat.set_ylabel("latency per decision (ms)")
    ax_lat.legend(loc="upper right", fontsize=8, ncol=3)
    ax_lat.set_title(title, fontsize=10)
    ax_n.step([r.t for r in records], [oracles[r.load] for r in records], where="post", color="k", ls=":", lw=1.2,
              label="median oracle (largest n whose calibrated median fits)")
    ax_n.set_ylabel("frames n")
    ax_n.set_xlabel("time (s)")
    ax_n.legend(loc="lower right", fontsize=8)
    for ax in (ax_lat, ax_n):
        ax.set_xlim(0, t_end)
    x = np.arange(len(replay["n"]))
    ax_bat.step(x, replay["n"], where="post", color="tab:green", label="frames chosen")
    ax_bat.set_ylabel("frames n")
    ax_bat.set_xlabel("decision (battery replay, scripted latencies)")
    ax2 = ax_bat.twinx()
    ax2.plot(x, replay["percent"], color="tab:orange", label="battery %")
    ax2.axhline(float(replay["policy"].split(":")[0]), color="tab:orange", ls="--", lw=0.8)
    ax2.set_ylabel("battery %")
    ax_bat.set_title(f"battery discharging 100 % -> 5 %, policy {replay['policy']}, "
                     f"budget {replay['budget_ms']:g} ms", fontsize=10)
    handles = ax_bat.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax_bat.legend(handles, [h.get_label() for h in handles], loc="center left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def print_tables(results: dict[str, dict[str, Any]], budget_ms: float) -> None:
    """Per phase and per load step for each controller, then the A/B summary against the goals."""
    for who, res in results.items():
        print(f"\n[{who} controller] per phase (steady state):")
        print(f"  {'phase':>5s} {'load':>4s} {'start s':>7s} {'decisions':>9s} {'within':>7s} {'p50 ms':>7s} "
              f"{'p99 ms':>7s} {'mean n':>7s} {'oracle':>6s}")
        for k, p in enumerate(res["phases"]):
            print(f"  {k:5d} {p['load']:>4s} {p['start_s']:7.1f} {p['decisions']:9d} {100 * p['within']:6.1f}% "
                  f"{p['p50_ms']:7.1f} {p['p99_ms']:7.1f} {p['mean_n']:7.2f} {p['oracle_n']:6d}")
        steps = ", ".join(f"->{s['to']}: {s['over_budget']}" for s in res["recovery"])
        print(f"  feasible over-budget decisions before back within budget, per load step: {steps}")
    names = list(results)
    rows = [
        ("within budget, feasible decisions (steady)", "within_feasible", ">= 99 %", lambda v: v >= GOALS["within"],
         lambda v, r: f"{100 * v:.1f} % of {r['feasible']}"),
        ("within budget, all decisions (steady)", "within_all", "", None,
         lambda v, r: f"{100 * v:.1f} % of {r['steady']}"),
        ("within budget, all after warm-up", "within_after_warmup", "", None, lambda v, r: f"{100 * v:.1f} %"),
        ("feasible decisions over budget after a load step (worst)", "worst_recovery", "<= 3",
         lambda v: v <= GOALS["recovery"], lambda v, r: f"{v}"),
        ("mean frames / median oracle, load off", "off_ratio", ">= 0.95", lambda v: v >= GOALS["off_ratio"],
         lambda v, r: f"{v:.3f}"),
        ("mean frames / median oracle, overall", "ratio", ">= 0.9", lambda v: v >= GOALS["ratio"],
         lambda v, r: f"{v:.3f}"),
        ("switches per second (steady)", "switches_per_s", "<= 1", lambda v: v <= GOALS["switches_per_s"],
         lambda v, r: f"{v:.2f} ({r['switches']})"),
        ("decisions held by hysteresis (steady)", "held", "", None, lambda v, r: f"{100 * v:.0f} %"),
        ("probes (steady)", "probes", "", None, lambda v, r: f"{v}"),
    ]
    print(f"\nsummary (budget {budget_ms:.1f} ms)")
    print(f"  {'metric':<48s} " + " ".join(f"{who:>18s}" for who in names) + f" {'goal':>8s}  met (new)")
    for label, key, goal, met, fmt in rows:
        cells = " ".join(f"{fmt(results[who][key], results[who]):>18s}" for who in names)
        verdict = "" if met is None else ("yes" if met(results["new"][key]) else "NO")
        print(f"  {label:<48s} {cells} {goal:>8s}  {verdict}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", type=Path, default=None, help="a --json file of an earlier run, printed beside "
                    "this one (other minutes: compare the load averages too)")
    ap.add_argument("--phase-s", type=float, default=20.0, help="seconds per load-off / load-on phase")
    ap.add_argument("--cycles", type=int, default=4, help="off+on cycles")
    ap.add_argument("--budget-ms", type=float, default=None, help="latency budget (default: from the calibration)")
    ap.add_argument("--stride-ms", type=float, default=150.0, help="time between decisions")
    ap.add_argument("--width", type=float, default=0.5, help="TSM-MobileNetV2 width multiplier (model size)")
    ap.add_argument("--size", type=int, default=112, help="input size (px)")
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads (default 1: on 2 "
                    "cores a 2-thread pool that loses a core to the load stalls at every op; 0: the CPUs this "
                    "process may use)")
    ap.add_argument("--load-procs", type=int, default=os.cpu_count() or 2, help="busy processes when the load is on")
    ap.add_argument("--calib-runs", type=int, default=20, help="runs per count and load state before the stream "
                    "(>= 20); half as many again after it")
    ap.add_argument("--calib-stride-ms", type=float, default=100.0, help="time between calibration decisions")
    ap.add_argument("--battery-policy", default="20:4", help="PERCENT:FRAMES for the battery replay")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "ffn_scheduler_bench",
                    help="cache for the bundle and the video")
    ap.add_argument("--png", type=Path, default=ROOT / "docs" / "scheduler" / "scheduler.png")
    ap.add_argument("--json", type=Path, default=None, help="also write every decision and number here")
    args = ap.parse_args()
    if args.phase_s <= 0 or args.cycles < 1 or args.stride_ms <= 0 or args.calib_runs < 20:
        ap.error("--phase-s and --stride-ms must be > 0, --cycles >= 1, --calib-runs >= 20")

    counts = (4, 8, 16)
    work = args.work / f"mnv2_w{args.width:g}_s{args.size}"
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.monotonic()
    load_before = os.getloadavg()
    bundle = build_bundle(work, args.width, args.size, counts)
    duration = 2 * args.phase_s * args.cycles
    video = build_video(args.work / f"clips_{int(duration) + 10}s.mp4", duration + 10, 24.0, 96)
    from ffn_edge.runtime import FFNRuntime

    candidates = list(range(min(counts), max(counts) + 1))
    samples: dict[tuple[bool, int], list[float]] = {}
    cpu: dict[tuple[bool, int], list[float]] = {}
    with CpuLoad(args.load_procs) as load, FFNRuntime.open(bundle, threads=args.threads or None) as rt:
        calibrate(rt, video, candidates, load, args.calib_runs, args.calib_stride_ms, samples, cpu)
        middle = candidates[len(candidates) // 2]
        budget = args.budget_ms or float(np.percentile(samples[(False, middle)], BUDGET_PERCENTILE))
        print(f"bundle {bundle} (backend {rt.backend_name}, {rt.threads} thread(s)); budget {budget:.1f} ms "
              f"(p{BUDGET_PERCENTILE} of {args.calib_runs} calibration runs of n={middle}, load off); stream "
              f"{duration:.0f} s, load {args.load_procs} procs {args.phase_s:g} s off / on; "
              f"load average before {load_before[0]:.2f}", flush=True)
        records = run_stream(rt, video, budget, load, args.phase_s, args.cycles, args.stride_ms)
        calibrate(rt, video, candidates, load, max(1, args.calib_runs // 2), args.calib_stride_ms, samples, cpu)
    load_after = os.getloadavg()
    medians = {key: statistics.median(v) for key, v in samples.items()}
    p95 = {key: float(np.percentile(v, BUDGET_PERCENTILE)) for key, v in samples.items()}
    oracles = {on: oracle({n: medians[(on, n)] for n in candidates}, budget) for on in (False, True)}
    smallest_cpu = {on: statistics.median(cpu[(on, candidates[0])]) for on in (False, True)}
    results = {who: analyse([r for r in records if r.controller == who], budget, oracles, smallest_cpu)
               for who in dict.fromkeys(r.controller for r in records)}
    if args.baseline is not None:
        recorded = json.loads(args.baseline.read_text())
        results = {"baseline": recorded["results"]["new"], **results}
        print(f"baseline {args.baseline}: budget {recorded['budget_ms']:.1f} ms, load average before "
              f"{recorded['loadavg']['before'][0]:.2f} / after {recorded['loadavg']['after'][0]:.2f}")
    replay = battery_replay(args.battery_policy, budget_ms=50.0)

    runs = len(samples[(False, candidates[0])])
    print(f"\ncalibration: stream latency (ms) per count, {runs} runs each (before + after the stream), load off / on:")
    print("  n           " + " ".join(f"{n:6d}" for n in candidates))
    for on in (False, True):
        for name, table in (("median", medians), (f"p{BUDGET_PERCENTILE}", p95)):
            print(f"  {'on ' if on else 'off'} {name:<7s} " + " ".join(f"{table[(on, n)]:6.1f}" for n in candidates))
    print(f"  median oracle for {budget:.1f} ms: load off {oracles[False]}, load on {oracles[True]}; median CPU ms "
          f"of n={candidates[0]}: off {smallest_cpu[False]:.1f}, on {smallest_cpu[True]:.1f}")
    print_tables(results, budget)
    print(f"\nload average (1 min) before {load_before[0]:.2f}, after {load_after[0]:.2f} "
          f"(the scripted load adds {args.load_procs} while on)")
    print()
    print("\n".join(battery_table(replay)))
    title = (f"ffn-edge scheduler: TSM-MobileNetV2 w{args.width:g} "
             f"{args.size}px on {rt.backend_name}, {args.load_procs}-process load {args.phase_s:g} s off / on, "
             f"budget {budget:.1f} ms")
    plot(args.png, records, budget, oracles, replay, title)
    print(f"\nwrote {args.png}  ({time.monotonic() - t_start:.0f} s in all)")
    if args.json:
        args.json.write_text(json.dumps({
            "budget_ms": budget, "oracles": {str(k): v for k, v in oracles.items()},
            "loadavg": {"before": load_before, "after": load_after},
            "calibration": {f"{'on' if on else 'off'}/{n}": v for (on, n), v in samples.items()},
            "calibration_cpu": {f"{'on' if on else 'off'}/{n}": v for (on, n), v in cpu.items()},
            "results": results, "records": [dataclasses.asdict(r) for r in records], "battery": replay}, indent=1))


if __name__ == "__main__":
    main()
