"""Several cameras on one device: independent streams vs the joint allocator, without and with batching.

N synthetic real-time videos (clips of known classes from the demo's generator, played at their frame
rate, all at once) through the demo model's bundle on ONNX Runtime CPU, three ways, at one budget per
round B (chosen so that every stream at the largest count does not fit: B = N x the single-clip
latency at ``--budget-frames`` frames, measured here first):

  (a) N independent ``Stream``s on one session, each with budget B / N (N threads, N schedulers)
  (b) ``rt.streams`` with the joint allocator, budget B per round, every stream its own run
  (c) the same with batching: streams with the same count run as one batch

Each configuration runs in a fresh process (clean RSS / CPU); a one-stream (c) run is the RSS
reference. Per row: rounds within budget (% of rounds after the warm-up that the allocator predicted
feasible; (a): decisions within B / N), mean frames per stream, top-1 on the known classes (the clip
with at least 75 % of a window), labels per second, CPU % (of one core), RSS while streaming (the
largest sampled at each label) and the process's peak RSS (which includes opening the session).
At real time the stride sets the labels per second (N per stride) unless rounds overrun it, so two
more rows measure what batching alone buys in throughput: every stream at 16 frames, files read
offline (as fast as the rounds go), without and with batching; and a last table times the runs
alone (B clips in one batch vs B runs of one clip, no capture).

    nice python benchmarks/multistream.py --streams 4 8 --clips 5          # ~3 min
    nice python benchmarks/multistream.py --bundle /tmp/demo_dyn.ffn ...   # reuse an export
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
CLIP_S = 4.0  # the demo clips: 48 frames at 12 fps
MODES = ("a", "b", "c")
THROUGHPUT_MODES = ("b16", "c16")  # offline, every stream at 16 frames: what batching alone buys
MODE_NAMES = {"a": "(a) N Streams, B/N each", "b": "(b) joint, no batching", "c": "(c) joint + batching",
              "b16": "(b) 16 fr. offline, alone", "c16": "(c) 16 fr. offline, batch"}
RING_12FPS = int(CLIP_S * 12) + 16  # frames a stream's ring holds: one window of the 12 fps clips, plus room
SCORED_SHARE = 0.75  # top-1 counts windows with at least this share inside one clip


def labels_for(n_streams: int, clips: int) -> list[list[int]]:
    return [[(7 * s + 3 * i) % 10 for i in range(clips)] for s in range(n_streams)]


def prepare(work: Path, bundle: str | None, streams: int, clips: int) -> tuple[Path, list[Path]]:
    """The bundle (exported from the shipped demo model unless given) and ``streams`` videos."""
    from ffn_edge.demo import write_sample_video

    if bundle is None:
        out = work / "demo.ffn"
        ckpt = ROOT / "models" / "demo_ffn.safetensors"
        subprocess.run([sys.executable, "-m", "ffn_edge.export.cli", "--ckpt", str(ckpt), "--frames", "4", "8", "16",
                        "--frame-dim", "dynamic", "--out", str(out), "--force"], check=True, stdout=subprocess.DEVNULL)
        bundle = str(out)
    videos = []
    for s, labels in enumerate(labels_for(streams, clips)):
        path = work / f"cam{s}.mp4"
        write_sample_video(path, labels, seed=s)
        videos.append(path)
    return Path(bundle), videos


def single_clip_ms(bundle: Path, n: int, repeats: int = 60, spacing_s: float = 0.05) -> float:
    """Median latency of one clip of n frames (the budget's unit), runs spread over a few seconds.

    Spread, because the other jobs on a shared machine come and go: a burst of runs sees one moment.
    """
    from ffn_edge.runtime import FFNRuntime

    with FFNRuntime.open(bundle) as rt:
        _, fed = rt.route(n)
        h, w = rt.manifest.input.size
        clip = np.random.default_rng(0).standard_normal((1, fed, 3, h, w)).astype(np.float32)
        runs = []
        for _ in range(repeats):
            runs.append(rt.run(n, clip).latency_ms)
            time.sleep(spacing_s)
        return statistics.median(runs)


def batching_gain(bundle: Path, sizes: list[int], counts: tuple[int, ...] = (4, 16), repeats: int = 15) -> str:
    """ms per clip: one batch of B clips vs B runs of one (median of ``repeats``), the same clips."""
    from ffn_edge.runtime import FFNRuntime

    lines = ["| frames | B | B runs of 1 (ms) | 1 batch of B (ms) | speed-up |", "|---|---|---|---|---|"]
    with FFNRuntime.open(bundle) as rt:
        h, w = rt.manifest.input.size
        for n in counts:
            _, fed = rt.route(n)
            for b in sizes:
                clips = np.random.default_rng(b).standard_normal((b, fed, 3, h, w)).astype(np.float32)
                alone = statistics.median(sum(rt.run(n, clips[i:i + 1]).latency_ms for i in range(b))
                                          for _ in range(repeats))
                batch = statistics.median(rt.run(n, clips).latency_ms for _ in range(repeats))
                lines.append(f"| {n} | {b} | {alone:.2f} | {batch:.2f} | {alone / batch:.2f}x |")
    return "\n".join(lines)


def truth(labels: list[int], window: tuple[float, float]) -> int | None:
    """The clip class behind a window (None: the window straddles clips, or lies past the video)."""
    k = int((0.5 * (window[0] + window[1])) // CLIP_S)
    if window[1] > len(labels) * CLIP_S + 1e-6 or k >= len(labels):
        return None
    inside = min(window[1], (k + 1) * CLIP_S) - max(window[0], k * CLIP_S)
    return labels[k] if inside >= SCORED_SHARE * (window[1] - window[0]) else None


def in_video(labels: list[int], window: tuple[float, float]) -> bool:
    """The window ends within the video's clips (a real-time file keeps being windowed after its end)."""
    return window[1] <= len(labels) * CLIP_S + 1e-6


def child(args: argparse.Namespace) -> dict[str, Any]:
    """One configuration in this process; its metrics as a dict."""
    from ffn_edge.runtime import FFNRuntime, StreamOptions

    videos = [str(v) for v in args.videos]
    labels = labels_for(len(videos), args.clips)
    offline = args.mode in THROUGHPUT_MODES
    opts = StreamOptions(window_s=CLIP_S, stride_ms=args.stride_ms, realtime=not offline,
                         frames=16 if offline else None, capacity=args.capacity)
    records: list[tuple[int, int, bool | None, bool | None]] = []  # (stream, frames, within, correct or None)
    rounds: list[tuple[bool | None, bool]] = []  # (within, counted: after warm-up and predicted feasible)
    proc = psutil.Process()
    rss = [0]  # the largest RSS seen while streaming (after the session opened)

    def sample() -> None:
        rss[0] = max(rss[0], proc.memory_info().rss)

    t0, c0 = time.monotonic(), time.process_time()
    with FFNRuntime.open(args.bundle) as rt:
        if args.mode == "a":
            lock = threading.Lock()

            def one(i: int) -> None:
                with rt.stream(videos[i], opts, budget_ms=args.budget_ms / len(videos)) as s:
                    for r in s:
                        if not in_video(labels[i], r.window):
                            continue
                        want = truth(labels[i], r.window)
                        ok = None if want is None else r.prediction.index == want
                        settled = "warmup" not in r.reasons and r.feasible is not False
                        with lock:
                            sample()
                            records.append((i, r.frames, r.within_budget, ok))
                            rounds.append((r.within_budget, settled))

            threads = [threading.Thread(target=one, args=(i,)) for i in range(len(videos))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        else:
            index = {v: i for i, v in enumerate(videos)}
            budget = None if offline else args.budget_ms
            with rt.streams(videos, opts, budget_ms=budget, batching=args.mode.startswith("c")) as ms:
                last = -1
                for m in ms:
                    r = m.result
                    sample()
                    i = index[m.source]
                    if r is None or not in_video(labels[i], r.window):
                        continue
                    want = truth(labels[i], r.window)
                    ok = None if want is None else r.prediction.index == want
                    records.append((i, r.frames, m.round_within_budget, ok))
                    if m.round != last:
                        last = m.round
                        rounds.append((m.round_within_budget, "warmup" not in r.reasons and r.feasible is not False))
    wall, cpu = time.monotonic() - t0, time.process_time() - c0
    counted = [w for w, settled in rounds if settled and w is not None]
    scored = [ok for *_, ok in records if ok is not None]
    # Real time: labels per second of video (the stride sets it unless rounds overrun); offline: per wall second.
    seconds = wall if offline else args.clips * CLIP_S - CLIP_S
    return {"mode": args.mode, "streams": len(videos), "budget_ms": None if offline else args.budget_ms,
            "labels": len(records), "scored": len(scored),
            "within_pct": 100.0 * sum(counted) / max(1, len(counted)), "rounds_counted": len(counted),
            "mean_frames": statistics.fmean(f for _, f, _, _ in records) if records else 0.0,
            "top1": 100.0 * sum(scored) / max(1, len(scored)),
            "labels_per_s": len(records) / seconds, "cpu_pct": 100.0 * cpu / wall,
            "rss_mb": rss[0] / 2**20, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            "wall_s": wall}


def run_child(bundle: Path, videos: list[Path], mode: str, budget: float, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", mode, "--bundle", str(bundle), "--budget-ms", f"{budget}",
           "--capacity", str(args.capacity),
           "--clips", str(args.clips), "--stride-ms", str(args.stride_ms), "--videos", *map(str, videos)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(rows: list[dict[str, Any]]) -> str:
    head = (f"| {'N':>2} | {'configuration':<26} | {'budget ms':>9} | {'in budget %':>11} | {'frames':>6} | "
            f"{'top-1 %':>7} | {'labels/s':>8} | {'CPU %':>5} | {'RSS MB':>6} | {'peak MB':>7} |")
    lines = [head, "|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|"]
    for r in rows:
        budget = "-" if r["budget_ms"] is None else f"{r['budget_ms']:.2f}"
        within = "-" if r["budget_ms"] is None else f"{r['within_pct']:.1f}"
        lines.append(f"| {r['streams']:>2} | {MODE_NAMES[r['mode']]:<26} | {budget:>9} | "
                     f"{within:>11} | {r['mean_frames']:>6.2f} | {r['top1']:>7.1f} | "
                     f"{r['labels_per_s']:>8.2f} | {r['cpu_pct']:>5.0f} | {r['rss_mb']:>6.0f} | "
                     f"{r['peak_rss_mb']:>7.0f} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--streams", type=int, nargs="+", default=[4, 8])
    ap.add_argument("--clips", type=int, default=5, help="clips per video (4 s each)")
    ap.add_argument("--stride-ms", type=float, default=250.0)
    ap.add_argument("--budget-frames", type=int, default=10,
                    help="B = N x the single-clip latency at this many frames (default 10 of 4..16)")
    ap.add_argument("--capacity", type=int, default=RING_12FPS,
                    help="each stream's ring of preprocessed frames (default %(default)d: a 4 s window at the "
                         "clips' 12 fps plus room; the library default assumes up to 60 fps, 4.8x the memory)")
    ap.add_argument("--bundle", help="a bundle of the demo model (default: export it here)")
    ap.add_argument("--json", help="also write the rows here")
    ap.add_argument("--batching-only", action="store_true",
                    help="only the batching-alone table, for --bundle (any model, e.g. TSM-MobileNetV2)")
    ap.add_argument("--repeats", type=int, default=15, help="runs per cell of the batching-alone table")
    ap.add_argument("--child", choices=(*MODES, *THROUGHPUT_MODES), help=argparse.SUPPRESS)
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    ap.add_argument("--budget-ms", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--videos", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        args.mode = args.child
        print(json.dumps(child(args)))
        return 0
    if args.batching_only:
        if args.bundle is None:
            ap.error("--batching-only needs --bundle")
        print(batching_gain(Path(args.bundle), args.streams, repeats=args.repeats))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        bundle, videos = prepare(Path(tmp), args.bundle, max(args.streams), args.clips)
        unit = single_clip_ms(bundle, args.budget_frames)
        print(f"single clip at {args.budget_frames} frames: {unit:.2f} ms (median of 60 over 3 s); "
              f"load {os.getloadavg()}",
              file=sys.stderr)
        rows = [run_child(bundle, videos[:1], "c", unit, args)]  # the RSS reference: one stream
        for n in args.streams:
            for mode in (*MODES, *THROUGHPUT_MODES):
                rows.append(run_child(bundle, videos[:n], mode, n * unit, args))
                print(table(rows[-1:]).splitlines()[-1], file=sys.stderr)
        gain = batching_gain(bundle, args.streams, repeats=args.repeats)
    print(table(rows))
    print("\nbatching alone (ORT CPU, the same clips; ms of wall time for all B clips):")
    print(gain)
    print(f"load average after: {os.getloadavg()}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
