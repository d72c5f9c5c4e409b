"""Online mode's scene-cut reset: false resets and missed cuts of ``SceneCut`` over a sweep of thresholds.

The frames are the runtime's: synthetic videos written as mp4v files (the demo's 64 px, 12 fps clips),
decoded with OpenCV, stamped ``index / fps`` and preprocessed by the bundle preprocessing
(``ffn_edge.bundle.preprocess``) at each crop size asked for (56: the demo bundle; 224: ImageNet-sized
bundles), then sampled as an online stream samples them: at step j the first frame stamped at or after
``j x window / n`` (``FrameBuffer.first_at``), for n = 4, 8, 16 with a 1 s window. Each (size, n) runs
its own ``SceneCut`` over its steps. The distance it reports does not depend on the threshold (the
reference is always the previous step's frame), so one pass gives every threshold of the sweep: a step
resets when its distance is at least the threshold, exactly what ``is_cut`` answers (checked here at
the default threshold).

Videos, per seed:

* **single takes**: one long take per class (``render_clip(..., period=48)``: one background, object
  colour and size; the class's motion, flashes included, starting again every 4 s with new motion
  parameters), ``--take-s`` seconds each. Every reset in them is false: reported per minute.
* **different classes**: ``demo.write_sample_video`` of clips of the 10 classes in shuffled rounds (no
  two neighbours of one class), 4 s each: every boundary is a cut.
* **same class**: ``write_sample_video`` of ``--same-clips`` clips of one class, for each class: two
  takes of one action, which is what a camera cut in one scene type looks like.

A boundary is caught when the step that first samples the new clip, or the step after it, resets; a
miss otherwise. Resets at any other step of a concatenated video are false (per minute of it).

    nice .venv/bin/python benchmarks/scene_cut.py            # ~10 min on one core
    nice .venv/bin/python benchmarks/scene_cut.py --quick    # smoke: seconds
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ffn_edge.runtime.media.ring import STAMP_TOLERANCE_S  # noqa: E402
from ffn_edge.runtime.media.scene_cut import SceneCut  # noqa: E402

from ffn_edge.bundle.manifest import InputSpec  # noqa: E402
from ffn_edge.bundle.preprocess import Preprocessor  # noqa: E402
from ffn_edge.core.defaults import (  # noqa: E402
    DEFAULT_CUT_THRESHOLD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    INPUT_SIZE,
    RESIZE_SHORTER,
)
from ffn_edge.core.errors import run_cli  # noqa: E402
from ffn_edge.data.synthetic import CLASSES, render_clip, write_video  # noqa: E402
from ffn_edge.demo import CLIP_FRAMES, CLIP_SIZE, FPS, write_sample_video  # noqa: E402

THRESHOLDS = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6)
KINDS = ("take", "different", "same")


@dataclasses.dataclass
class Steps:
    """One video's steps at one (size, n): their distances (None: the first step) and stamps."""

    distances: list[float | None]
    stamps: list[float]
    cuts_at_default: list[bool]


@dataclasses.dataclass(frozen=True)
class Video:
    path: Path
    kind: str  # "take" | "different" | "same"
    boundaries: tuple[float, ...]  # stamps (s) of the first frame of each clip after the first


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------- videos
def write_take(path: Path, label: int, seed: int, seconds: float) -> Video:
    """One long take of class ``label``: the synthetic set's motion repeated every clip length."""
    frames = round(seconds * FPS)
    write_video(path, render_clip(label, np.random.default_rng([seed, 101, label]), frames, CLIP_SIZE,
                                  period=CLIP_FRAMES), FPS)
    return Video(path, "take", ())


def shuffled_rounds(rng: np.random.Generator, rounds: int) -> list[int]:
    """Every class ``rounds`` times, shuffled per round, no two neighbours of one class."""
    labels: list[int] = []
    for _ in range(rounds):
        order = [int(c) for c in rng.permutation(len(CLASSES))]
        if labels and order[0] == labels[-1]:
            order.reverse()
        labels += order
    return labels


def concatenated(path: Path, kind: str, labels: list[int], seed: int) -> Video:
    write_sample_video(path, labels, seed)
    return Video(path, kind, tuple(i * CLIP_FRAMES / FPS for i in range(1, len(labels))))


def make_videos(out: Path, seeds: Sequence[int], take_s: float, rounds: int, same_clips: int) -> list[Video]:
    videos = []
    for seed in seeds:
        for label in range(len(CLASSES)):
            videos.append(write_take(out / f"take_s{seed}_c{label}.mp4", label, seed, take_s))
            videos.append(concatenated(out / f"same_s{seed}_c{label}.mp4", "same", [label] * same_clips, seed))
        labels = shuffled_rounds(np.random.default_rng([seed, 202]), rounds)
        videos.append(concatenated(out / f"different_s{seed}.mp4", "different", labels, seed))
    return videos


def decoded(path: Path) -> Iterator[tuple[np.ndarray, float]]:
    """The file's frames and stamps as the runtime's file source gives them (index / fps)."""
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS)
    index = 0
    try:
        while True:
            ok, image = cap.read()
            if not ok:
                return
            yield image, index / fps
            index += 1
    finally:
        cap.release()


# ---------------------------------------------------------------------------------------- steps
def run_steps(video: Video, sizes: Sequence[int], counts: Sequence[int],
              window_s: float) -> dict[tuple[int, int], Steps]:
    """(size, n) -> the steps an online stream of ``video`` runs, each through its own ``SceneCut``."""
    preps = {s: Preprocessor(InputSpec("input", "NTCHW", (s, s), round(s * RESIZE_SHORTER / INPUT_SIZE),
                                       IMAGENET_MEAN, IMAGENET_STD)) for s in sizes}
    cuts = {(s, n): SceneCut(DEFAULT_CUT_THRESHOLD, mean=IMAGENET_MEAN, std=IMAGENET_STD)
            for s in sizes for n in counts}
    out = {key: Steps([], [], []) for key in cuts}
    next_step = dict.fromkeys(counts, 0)
    for image, stamp in decoded(video.path):
        frames = {s: prep(image) for s, prep in preps.items()}
        for n in counts:
            while next_step[n] * window_s / n <= stamp + STAMP_TOLERANCE_S:  # steps this frame is first_at for
                next_step[n] += 1
                for s in sizes:
                    steps, cut = out[(s, n)], cuts[(s, n)]
                    steps.cuts_at_default.append(cut.is_cut(frames[s]))
                    steps.distances.append(cut.distance)
                    steps.stamps.append(stamp)
    return out


@dataclasses.dataclass
class Tally:
    """Counts of one (kind, size, n, threshold) over every video of that kind."""

    minutes: float = 0.0
    false: int = 0
    boundaries: int = 0
    missed: int = 0


def boundary_steps(stamps: np.ndarray, boundary: float) -> list[int]:
    """The steps that may catch the cut at ``boundary``: the first step on the new clip and the one after."""
    first = int(np.searchsorted(stamps, boundary - STAMP_TOLERANCE_S))
    return [j for j in (first, first + 1) if j < len(stamps)]


def tally(video: Video, steps: Steps, threshold: float, into: Tally) -> None:
    cut = [d is not None and d >= threshold for d in steps.distances]
    stamps = np.asarray(steps.stamps)
    expected: set[int] = set()
    for b in video.boundaries:
        window = boundary_steps(stamps, b)
        expected.update(window)
        into.boundaries += 1
        into.missed += not any(cut[j] for j in window)
    into.false += sum(c for j, c in enumerate(cut) if j not in expected)
    into.minutes += (stamps[-1] - stamps[0]) / 60.0 if len(stamps) > 1 else 0.0


# ---------------------------------------------------------------------------------------- report
def report(videos: list[Video], results: dict[Path, dict[tuple[int, int], Steps]], sizes: Sequence[int],
           counts: Sequence[int], window_s: float, thresholds: Sequence[float]) -> str:
    lines = ["## False resets and misses by threshold", "",
             f"Threshold: total variation distance of consecutive steps' colour histograms; * = the default "
             f"({DEFAULT_CUT_THRESHOLD:g}). Window {window_s:g} s, stride = window / n. False resets per minute of "
             "video; misses = boundaries with no reset at the first step on the new clip or the step after.", "",
             "| size px | n | stride ms | threshold | takes: false/min | different classes: missed | false/min "
             "| same class: missed | false/min |",
             "|---|---|---|---|---|---|---|---|---|"]
    for size in sizes:
        for n in counts:
            for threshold in thresholds:
                t = {kind: Tally() for kind in KINDS}
                for v in videos:
                    tally(v, results[v.path][(size, n)], threshold, t[v.kind])
                mark = "*" if threshold == DEFAULT_CUT_THRESHOLD else ""
                lines.append(f"| {size} | {n} | {1000 * window_s / n:.1f} | {threshold:g}{mark} "
                             f"| {t['take'].false / t['take'].minutes:.3f} "
                             f"| {t['different'].missed}/{t['different'].boundaries} "
                             f"| {t['different'].false / t['different'].minutes:.3f} "
                             f"| {t['same'].missed}/{t['same'].boundaries} "
                             f"| {t['same'].false / t['same'].minutes:.3f} |")
    lines += ["", "## Distances (what the sweep cuts through)", "",
              "| size px | n | takes: minutes | takes: max | takes: p99.9 | boundaries: min (different) "
              "| min (same class) | median (all boundaries) |", "|---|---|---|---|---|---|---|---|"]
    for size in sizes:
        for n in counts:
            within, across = {"take": []}, {"different": [], "same": []}
            minutes = 0.0
            for v in videos:
                steps = results[v.path][(size, n)]
                d = [x for x in steps.distances if x is not None]
                if v.kind == "take":
                    within["take"] += d
                    minutes += (steps.stamps[-1] - steps.stamps[0]) / 60.0
                    continue
                stamps = np.asarray(steps.stamps)
                for b in v.boundaries:
                    across[v.kind].append(max(steps.distances[j] or 0.0 for j in boundary_steps(stamps, b)))
            take = np.asarray(within["take"])
            lines.append(f"| {size} | {n} | {minutes:.1f} | {take.max():.3f} | {np.percentile(take, 99.9):.3f} "
                         f"| {min(across['different']):.3f} | {min(across['same']):.3f} "
                         f"| {np.median(across['different'] + across['same']):.3f} |")
    return "\n".join(lines)


def check_is_cut(results: dict[Path, dict[tuple[int, int], Steps]]) -> None:
    """``is_cut`` at the default threshold is ``distance >= threshold``: what the sweep assumes."""
    for per_video in results.values():
        for steps in per_video.values():
            want = [d is not None and d >= DEFAULT_CUT_THRESHOLD for d in steps.distances]
            if want != steps.cuts_at_default:
                raise AssertionError("SceneCut.is_cut disagrees with its distance at the default threshold")


def cost_ms(size: int, calls: int = 200) -> float:
    """Median wall ms of one ``is_cut`` on a preprocessed frame of ``size`` (a synthetic one, resized)."""
    prep = Preprocessor(InputSpec("input", "NTCHW", (size, size), round(size * RESIZE_SHORTER / INPUT_SIZE),
                                  IMAGENET_MEAN, IMAGENET_STD))
    frames = [prep(image) for image in render_clip(0, np.random.default_rng(0), 2, CLIP_SIZE)]
    cut = SceneCut()
    times = []
    for i in range(calls):
        t = time.perf_counter()
        cut.is_cut(frames[i % 2])
        times.append(1000 * (time.perf_counter() - t))
    return float(np.median(times))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="0,1", help="video seeds (default %(default)s)")
    p.add_argument("--take-s", type=float, default=120.0, help="seconds of each single take, one per class "
                   "(default %(default)g)")
    p.add_argument("--rounds", type=int, default=3, help="shuffled rounds of the 10 classes in the different-class "
                   "video (default %(default)d)")
    p.add_argument("--same-clips", type=int, default=4, help="clips per same-class video (default %(default)d)")
    p.add_argument("--sizes", default=f"56,{INPUT_SIZE}", help="crop sizes (default %(default)s)")
    p.add_argument("--counts", default="4,8,16", help="online frame counts n (default %(default)s)")
    p.add_argument("--window-s", type=float, default=1.0, help="online window (default %(default)g)")
    p.add_argument("--quick", action="store_true", help="smoke sizes: one seed, 8 s takes, one round, 56 px")
    args = p.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    sizes = [int(s) for s in args.sizes.split(",")]
    counts = [int(n) for n in args.counts.split(",")]
    take_s, rounds = args.take_s, args.rounds
    if args.quick:
        seeds, take_s, rounds, sizes = seeds[:1], 8.0, 1, sizes[:1]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ffn-scene-cut-") as tmp:
        videos = make_videos(Path(tmp), seeds, take_s, rounds, args.same_clips)
        log(f"wrote {len(videos)} videos in {time.perf_counter() - t0:.0f} s")
        results = {}
        for i, v in enumerate(videos):
            results[v.path] = run_steps(v, sizes, counts, args.window_s)
            if i % 10 == 9:
                log(f"{i + 1}/{len(videos)} videos stepped")
    check_is_cut(results)
    print(report(videos, results, sizes, counts, args.window_s, THRESHOLDS))
    print("\nSceneCut.is_cut per frame (median of 200): " + ", ".join(f"{s} px {cost_ms(s):.3f} ms" for s in sizes))
    print(f"\n{len(seeds)} seed(s), single takes of {take_s:g} s per class, {rounds} round(s) of the classes, "
          f"{args.same_clips} clips per same-class video; {time.perf_counter() - t0:.0f} s; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    run_cli("scene_cut.py", main)
