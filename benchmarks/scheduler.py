"""Budget scheduler on this machine: the real runtime under a CPU load that switches on and off.

Part 1 (live): an FFN bundle (TSM-MobileNetV2, sub-networks 4/8/16, graphs that take any frame
count, so every n in 4..16 is a candidate) runs ``FFNRuntime.stream`` in real time on a generated
video (synthetic clips) with a latency budget, while a background load (one process per core
doing busy numpy work, via multiprocessing) switches on and off on a schedule (default 20 s off /
20 s on). Before and after the stream, a short calibration measures every count's latency with the
load off and on, through the same stream path (capture thread, real-time pacing; a round-robin
``scheduler=``); the budget (unless given) sits between the smallest count's latency under load and
the largest count's without, and the *oracle* of a load condition is the largest count whose
calibrated 90th-percentile latency (made monotone in n) fits the budget (a count whose median just
fits is over budget half the time, so it cannot be held at 99 %; the median oracle is printed
too). Printed:

* share of steady-state decisions within budget (warm-up and the first 5 decisions after each load
  step excluded; goal >= 99 %);
* decisions needed after each load step to get back within budget (over-budget decisions before
  the first 3 in a row within it; goal <= 5);
* mean of chosen frames / oracle frames over the steady state (goal >= 0.9);
* number of frame-count switches.

Part 2 (replay, no runtime): the pure ``Scheduler`` with scripted latencies (5 + 3 n ms, 3 % noise)
and a battery discharging from 100 % to 5 % (a ``SignalTrace``, not plugged in) under a battery
policy (default 20:4): the cap, in a table.

Both go into one PNG (``docs/scheduler/scheduler.png`` by default): latency vs budget, chosen vs
oracle frames (load periods shaded), and the battery replay.

    python benchmarks/scheduler.py                                    # ~4 min
    python benchmarks/scheduler.py --cycles 2 --phase-s 10            # quicker
    python benchmarks/scheduler.py --budget-ms 40 --width 1.0 --size 128

This machine's cores may be shared with other processes: their load adds to the scripted one,
so the latencies (and the oracle) move with it; the calibration runs in the same process and
minutes as the stream to keep the comparison fair.
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

GOALS = {"within": 0.99, "recovery": 5, "oracle_ratio": 0.9}
ORACLE_PERCENTILE = 90  # a count "fits" when this percentile of its calibrated latency does
AFTER_STEP = 5  # decisions after a load step left out of the steady state
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
    idle gaps between decisions), so its latencies are comparable with the stream's.
    """

    def __init__(self, counts: Sequence[int], repeats: int) -> None:
        self.plan = [n for _ in range(repeats) for n in counts]
        self.latencies: list[tuple[int, float]] = []

    def decide(self, now_s: float, signals: Any) -> _Step:
        return _Step(self.plan[len(self.latencies) % len(self.plan)])

    def observe(self, n: int, subnet: int, latency_ms: float, now_s: float) -> None:
        self.latencies.append((n, latency_ms))


def calibrate(rt: Any, video: Path, counts: Sequence[int], load: CpuLoad, repeats: int, stride_ms: float,
              samples: dict[tuple[bool, int], list[float]]) -> None:
    """Add ``repeats`` stream latencies per (load, n) to ``samples``: counts round robin, load off then on."""
    for on in (False, True):
        load.set(on, settle_s=0.5)
        rr = RoundRobin(counts, repeats)
        for _ in rt.stream(str(video), scheduler=rr, window_s=1.0, stride_ms=stride_ms, realtime=True,
                           max_decisions=len(rr.plan), duration_s=60):
            pass
        for n, latency in rr.latencies:
            samples.setdefault((on, n), []).append(latency)
    load.set(False)


def oracle(latency: dict[int, float], budget_ms: float) -> int:
    """Largest count whose latency, made monotone in n (running max), fits; else the smallest."""
    fits, worst = [], 0.0
    for n in sorted(latency):
        worst = max(worst, latency[n])
        if worst <= budget_ms:
            fits.append(n)
    return max(fits, default=min(latency))


# -- live run ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class Record:
    t: float  # seconds since the stream started
    load: bool  # the load state the decision ran under
    n: int
    latency_ms: float
    predicted_ms: float | None
    reasons: tuple[str, ...]


def run_stream(rt: Any, video: Path, budget_ms: float, load: CpuLoad, phase_s: float, cycles: int,
               stride_ms: float) -> list[Record]:
    """Stream in real time while the load is off / on for ``phase_s`` each, ``cycles`` times."""
    duration = 2 * phase_s * cycles
    records: list[Record] = []
    load.set(False)
    t0 = time.monotonic()
    stream = rt.stream(str(video), budget_ms=budget_ms, window_s=1.0, stride_ms=stride_ms, realtime=True,
                       duration_s=duration)
    try:
        for r in stream:
            now = time.monotonic() - t0
            records.append(Record(now, load.on, r.prediction.frames, r.prediction.latency_ms, r.predicted_ms,
                                  r.reasons))
            want = int(now // phase_s) % 2 == 1  # off, on, off, on, ...
            if want != load.on:
                load.set(want)
    finally:
        stream.close()
    return records


def analyse(records: list[Record], budget_ms: float, oracles: dict[bool, int],
            oracles_median: dict[bool, int]) -> dict[str, Any]:
    """The table's numbers: steady-state share within budget, recovery per step, oracle ratio, switches."""
    steps = [i for i in range(1, len(records)) if records[i].load != records[i - 1].load]
    warm = sum("warmup" in r.reasons for r in records)
    transient = {j for i in steps for j in range(i, i + AFTER_STEP)}
    steady = [r for i, r in enumerate(records) if i >= warm and i not in transient]
    within = [r.latency_ms <= budget_ms for r in steady]
    recovery = []
    for k, i in enumerate(steps):
        end = steps[k + 1] if k + 1 < len(steps) else len(records)
        ok = [r.latency_ms <= budget_ms for r in records[i:end]]
        first = next((j for j in range(len(ok)) if all(ok[j:j + RECOVERED_RUN])), len(ok))
        recovery.append({"decision": i, "to": "on" if records[i].load else "off", "over_budget": sum(
            not x for x in ok[:first]), "decisions": first})
    chosen = [r.n for r in records[warm:]]
    return {
        "decisions": len(records), "warmup": warm, "steady": len(steady),
        "within_share": float(np.mean(within)) if within else float("nan"),
        "recovery": recovery,
        "oracle_ratio": float(np.mean([r.n / oracles[r.load] for r in steady])) if steady else float("nan"),
        "oracle_ratio_median": float(np.mean([r.n / oracles_median[r.load] for r in steady])) if steady
        else float("nan"),
        "switches": sum(a != b for a, b in zip(chosen, chosen[1:], strict=False)),
        "phases": _phases(records, warm, transient, budget_ms, oracles),
    }


def _phases(records: list[Record], warm: int, transient: set[int], budget_ms: float,
            oracles: dict[bool, int]) -> list[dict[str, Any]]:
    """Per load phase: decisions, share within budget, latency p50/p99, mean n (steady state only)."""
    phases: list[dict[str, Any]] = []
    for i, r in enumerate(records):
        if not phases or phases[-1]["load"] != r.load:
            phases.append({"load": r.load, "start_s": r.t, "lat": [], "n": [], "held": []})
        if i >= warm and i not in transient:
            phases[-1]["lat"].append(r.latency_ms)
            phases[-1]["n"].append(r.n)
            phases[-1]["held"].append("hysteresis" in r.reasons)
    out = []
    for p in phases:
        lat, ns = np.array(p["lat"]), np.array(p["n"])
        out.append({"load": "on" if p["load"] else "off", "start_s": p["start_s"], "decisions": len(lat),
                    "within": float(np.mean(lat <= budget_ms)) if len(lat) else float("nan"),
                    "p50_ms": float(np.median(lat)) if len(lat) else float("nan"),
                    "p99_ms": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
                    "mean_n": float(ns.mean()) if len(ns) else float("nan"), "oracle_n": oracles[p["load"]],
                    "held": float(np.mean(p["held"])) if len(ns) else float("nan")})
    return out


# -- battery replay ---------------------------------------------------------------------------------


def battery_replay(policy_text: str, budget_ms: float, decisions: int = 600, seed: int = 0) -> dict[str, Any]:
    """The pure Scheduler on scripted latencies while the battery runs down from 100 % to 5 %."""
    from ffn_edge.runtime.scheduler import BatteryPolicy, Scheduler
    from ffn_edge.runtime.signals import Signals, SignalTrace

    percent = np.linspace(100.0, 5.0, decisions)
    trace = SignalTrace([(float(t), Signals(battery_percent=float(p), plugged=False)) for t, p in enumerate(percent)])
    sched = Scheduler((4, 8, 16), budget_ms, battery_policy=BatteryPolicy.parse(policy_text))
    rng = np.random.default_rng(seed)
    ns, reasons = [], []
    for t in range(decisions):
        d = sched.decide(float(t), trace(float(t)))
        sched.observe(d.n, d.subnet, (5.0 + 3.0 * d.n) * float(np.exp(rng.normal(0, 0.03))), float(t))
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


def plot(path: Path, records: list[Record], budget_ms: float, oracles: dict[bool, int], phase_s: float,
         replay: dict[str, Any], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.array([r.t for r in records])
    lat = np.array([r.latency_ms for r in records])
    ns = np.array([r.n for r in records])
    pred = np.array([np.nan if r.predicted_ms is None else r.predicted_ms for r in records])
    fig, axes = plt.subplots(3, 1, figsize=(11, 10), gridspec_kw={"height_ratios": [3, 2, 2]})
    ax_lat, ax_n, ax_bat = axes
    on_periods = []
    for i, r in enumerate(records):
        if r.load and (i == 0 or not records[i - 1].load):
            end = next((records[j].t for j in range(i, len(records)) if not records[j].load), t[-1])
            on_periods.append((r.t, end))
    for ax in (ax_lat, ax_n):
        for k, (a, b) in enumerate(on_periods):
            ax.axvspan(a, b, color="tab:red", alpha=0.12, label="CPU load on" if k == 0 else None)
    over = lat > budget_ms
    ax_lat.plot(t[~over], lat[~over], ".", ms=3, color="tab:blue", label="measured latency (within budget)")
    ax_lat.plot(t[over], lat[over], "x", ms=4, color="tab:red", label="measured latency (over budget)")
    ax_lat.plot(t, pred, "-", lw=0.8, color="tab:gray", alpha=0.8, label="predicted (high percentile)")
    ax_lat.axhline(budget_ms, color="k", lw=1.2, ls="--", label=f"budget {budget_ms:.1f} ms")
    ax_lat.set_ylabel("latency per decision (ms)")
    ax_lat.set_ylim(0, max(budget_ms * 2.0, float(np.percentile(lat, 99)) * 1.1))
    ax_lat.legend(loc="upper right", fontsize=8, ncol=3)
    ax_lat.set_title(title, fontsize=10)
    ax_n.step(t, ns, where="post", color="tab:green", lw=1.2, label="frames chosen")
    ax_n.step(t, [oracles[r.load] for r in records], where="post", color="k", ls=":", lw=1.2,
              label="oracle (largest that fits, calibrated)")
    ax_n.set_ylabel("frames n")
    ax_n.set_xlabel("time (s)")
    ax_n.legend(loc="lower right", fontsize=8)
    for ax in (ax_lat, ax_n):
        ax.set_xlim(0, t[-1])
    x = np.arange(len(replay["n"]))
    ax_bat.step(x, replay["n"], where="post", color="tab:green", label="frames chosen")
    ax_bat.set_ylabel("frames n")
    ax_bat.set_xlabel("decision (battery replay, scripted latencies)")
    ax2 = ax_bat.twinx()
    ax2.plot(x, replay["percent"], color="tab:orange", label="battery %")
    threshold = float(replay["policy"].split(":")[0])
    ax2.axhline(threshold, color="tab:orange", ls="--", lw=0.8)
    ax2.set_ylabel("battery %")
    ax_bat.set_title(f"battery discharging 100 % -> 5 %, policy {replay['policy']}, "
                     f"budget {replay['budget_ms']:g} ms", fontsize=10)
    handles = ax_bat.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax_bat.legend(handles, [h.get_label() for h in handles], loc="center left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--phase-s", type=float, default=20.0, help="seconds per load-off / load-on phase")
    ap.add_argument("--cycles", type=int, default=4, help="off+on cycles")
    ap.add_argument("--budget-ms", type=float, default=None, help="latency budget (default: from the calibration)")
    ap.add_argument("--stride-ms", type=float, default=150.0, help="time between decisions")
    ap.add_argument("--width", type=float, default=0.5, help="TSM-MobileNetV2 width multiplier (model size)")
    ap.add_argument("--size", type=int, default=112, help="input size (px)")
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads (default 1: on 2 "
                    "cores a 2-thread pool that loses a core to the load stalls at every op, so the load would "
                    "slow large counts several times more than small ones; 0: ORT's default)")
    ap.add_argument("--load-procs", type=int, default=os.cpu_count() or 2, help="busy processes when the load is on")
    ap.add_argument("--calib-repeats", type=int, default=3, help="runs per count and load state, before and after")
    ap.add_argument("--battery-policy", default="20:4", help="PERCENT:FRAMES for the battery replay")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "ffn_scheduler_bench",
                    help="cache for the bundle and the video")
    ap.add_argument("--png", type=Path, default=ROOT / "docs" / "scheduler" / "scheduler.png")
    ap.add_argument("--json", type=Path, default=None, help="also write every decision and number here")
    args = ap.parse_args()
    if args.phase_s <= 0 or args.cycles < 1 or args.stride_ms <= 0:
        ap.error("--phase-s and --stride-ms must be > 0, --cycles >= 1")

    counts = (4, 8, 16)
    work = args.work / f"mnv2_w{args.width:g}_s{args.size}"
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.monotonic()
    bundle = build_bundle(work, args.width, args.size, counts)
    duration = 2 * args.phase_s * args.cycles
    video = build_video(args.work / f"clips_{int(duration) + 10}s.mp4", duration + 10, 24.0, 96)
    from ffn_edge.runtime import FFNRuntime

    candidates = list(range(min(counts), max(counts) + 1))
    samples: dict[tuple[bool, int], list[float]] = {}
    with CpuLoad(args.load_procs) as load, FFNRuntime.open(bundle, threads=args.threads or None) as rt:
        calibrate(rt, video, candidates, load, args.calib_repeats, args.stride_ms, samples)
        before = {key: float(np.percentile(v, ORACLE_PERCENTILE)) for key, v in samples.items()}
        budget = args.budget_ms
        if budget is None:  # between n=4 under load (with room) and n=16 without
            on4, off16 = before[(True, 4)], before[(False, 16)]
            budget = max(float(np.sqrt(1.3 * on4 * off16)), 1.3 * on4)
        print(f"bundle {bundle} (backend {rt.backend_name}); budget {budget:.1f} ms; stream {duration:.0f} s, "
              f"load {args.load_procs} procs {args.phase_s:g} s off / {args.phase_s:g} s on", flush=True)
        records = run_stream(rt, video, budget, load, args.phase_s, args.cycles, args.stride_ms)
        calibrate(rt, video, candidates, load, args.calib_repeats, args.stride_ms, samples)
    medians = {key: statistics.median(v) for key, v in samples.items()}
    p90 = {key: float(np.percentile(v, ORACLE_PERCENTILE)) for key, v in samples.items()}
    oracles = {on: oracle({n: p90[(on, n)] for n in candidates}, budget) for on in (False, True)}
    oracles_median = {on: oracle({n: medians[(on, n)] for n in candidates}, budget) for on in (False, True)}
    result = analyse(records, budget, oracles, oracles_median)
    replay = battery_replay(args.battery_policy, budget_ms=50.0)

    print(f"\ncalibration: stream latency (ms) per count, {2 * args.calib_repeats} runs each before + after "
          "the stream, load off / on:")
    print("  n           " + " ".join(f"{n:6d}" for n in candidates))
    for on in (False, True):
        for name, table in (("median", medians), (f"p{ORACLE_PERCENTILE}", p90)):
            print(f"  {'on ' if on else 'off'} {name:<7s} " + " ".join(f"{table[(on, n)]:6.1f}" for n in candidates))
    print(f"  oracle = largest n whose p{ORACLE_PERCENTILE} fits {budget:.1f} ms: load off {oracles[False]}, "
          f"load on {oracles[True]}  (by the median: off {oracles_median[False]}, on {oracles_median[True]})")
    print("\nper phase (steady state; held: decisions where a larger count fitted the budget but not with the "
          "room that going up needs, reason hysteresis):")
    print(f"  {'phase':>5s} {'load':>4s} {'start s':>7s} {'decisions':>9s} {'within':>7s} {'p50 ms':>7s} "
          f"{'p99 ms':>7s} {'mean n':>7s} {'oracle':>6s} {'held':>6s}")
    for k, p in enumerate(result["phases"]):
        print(f"  {k:5d} {p['load']:>4s} {p['start_s']:7.1f} {p['decisions']:9d} {100 * p['within']:6.1f}% "
              f"{p['p50_ms']:7.1f} {p['p99_ms']:7.1f} {p['mean_n']:7.2f} {p['oracle_n']:6d} {100 * p['held']:5.0f}%")
    print("\nload steps (decisions to get back within budget):")
    for s in result["recovery"]:
        print(f"  decision {s['decision']:5d} load -> {s['to']:<3s}: {s['decisions']} decisions "
              f"({s['over_budget']} over budget)")
    worst = max((s["decisions"] for s in result["recovery"]), default=0)
    rows = [
        ("steady-state decisions within budget", f"{100 * result['within_share']:.1f} % of {result['steady']}",
         ">= 99 %", result["within_share"] >= GOALS["within"]),
        ("decisions to get back within budget (worst step)", f"{worst}", "<= 5", worst <= GOALS["recovery"]),
        (f"mean frames chosen / oracle frames (p{ORACLE_PERCENTILE} oracle)", f"{result['oracle_ratio']:.3f}",
         ">= 0.9", result["oracle_ratio"] >= GOALS["oracle_ratio"]),
        ("mean frames chosen / oracle frames (median oracle)", f"{result['oracle_ratio_median']:.3f}", "", None),
        ("frame-count switches (after warm-up)", f"{result['switches']} in {result['decisions'] - result['warmup']}"
         " decisions", "", None),
    ]
    print("\nsummary")
    print(f"  {'metric':<50s} {'measured':>22s} {'goal':>8s}  met")
    for name, value, goal, met in rows:
        print(f"  {name:<50s} {value:>22s} {goal:>8s}  {'' if met is None else ('yes' if met else 'NO')}")
    print()
    print("\n".join(battery_table(replay)))
    title = (f"ffn-edge scheduler: TSM-MobileNetV2 w{args.width:g} {args.size}px on {rt.backend_name}, "
             f"{args.load_procs}-process CPU load {args.phase_s:g} s off / on, budget {budget:.1f} ms")
    plot(args.png, records, budget, oracles, args.phase_s, replay, title)
    print(f"\nwrote {args.png}  ({time.monotonic() - t_start:.0f} s in all)")
    if args.json:
        args.json.write_text(json.dumps({"budget_ms": budget, "oracles": {str(k): v for k, v in oracles.items()},
                                         "calibration": {f"{'on' if on else 'off'}/{n}": v
                                                         for (on, n), v in samples.items()},
                                         "result": result, "records": [dataclasses.asdict(r) for r in records],
                                         "battery": replay}, indent=1))


if __name__ == "__main__":
    main()
