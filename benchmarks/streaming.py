"""Online (streaming) mode vs window mode, side by side in one run, on this CPU.

Two models: the demo-sized FFN (TSM-ResNet-18 x0.25, 56 px, 10 synthetic classes; its causal variant
fine-tuned here from the shipped ``models/demo_ffn.safetensors``) and TSM-MobileNetV2 (x1.0, 224 px,
causal, untrained but perturbed like a trained model: latency only). Everything is pinned to the
CPUs this process may use (run it under ``taskset -c 0``) with one ONNX Runtime / torch thread.

1. **Per-label compute**: median wall ms of the clip graph at n vs one step of sub-network n, taking
   turns run by run; n x step / clip (goal: step <= 1.2 / n of the clip, i.e. ratio <= 1.2).
2. **Real time**: the model's online stream (``FFNRuntime.online_stream(source, frames=n)``, n = the
   largest count, window 1 s) on a 30 fps file played in real time: capture-to-label p50 / p99 over
   warm labels (frame handed to the ring -> its label; goal p99 <= 50 ms for the demo model), warm
   labels per second, and the process's CPU share (all threads: decode, preprocessing, steps).
3. **Accuracy in one continuous stream** ("continuous" table; ``--only continuous`` runs it alone) on
   the synthetic validation set at each count, per seed: (i) bidirectional FFN on clips (torch; the
   shipped demo checkpoint, trained to convergence); causal FFNs fine-tuned from it, run online
   through their exported step graphs (ONNX Runtime): (ii) buffers reset at each video (what a
   stream starting at the video sees; equal to the causal clip graph), (iii) the validation videos
   as one continuous stream (buffers carried from video to video, label = mean of the last n logits
   at each video's end), trained on clips as ``ffn-train --shift causal`` does by default, (iv) the
   same stream, fine-tuned with carried state (``--context``, ``CONTEXT`` frames), (v) (iii) with
   the scene-cut reset (``ffn_edge.runtime.media.scene_cut.SceneCut`` on the frames each
   sub-network gets: at a cut its buffers go back to zeros and its label averages the frames since
   the cut only), and (iv) with the cut reset. Goals: (iv) within 2 points of (ii) at every count,
   (iv) within 3 points of (i) at the largest count.
4. **Switch flips**: the causal demo model online on a sample video, once at the largest count
   throughout and once switching between the two largest counts every two windows: label changes
   in each run, and at how many switches the first warm label of the new sub-network differs from
   the label before it (the stale label is held while warming, so a switch flips at most once).

    taskset -c 0 env OMP_NUM_THREADS=1 .venv/bin/python benchmarks/streaming.py          # ~15-20 min
    taskset -c 0 env OMP_NUM_THREADS=1 .venv/bin/python benchmarks/streaming.py --quick  # smoke: tiny models
    taskset -c 0 env OMP_NUM_THREADS=1 .venv/bin/python benchmarks/streaming.py --only continuous  # part 3 only
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ffn_edge.export import export_bundle  # noqa: E402
from ffn_edge.runtime import FFNRuntime  # noqa: E402
from ffn_edge.runtime.control.scheduler import Decision  # noqa: E402
from ffn_edge.runtime.media.scene_cut import SceneCut  # noqa: E402

from ffn_edge.checkpoint import CheckpointMeta, load_checkpoint, save_checkpoint  # noqa: E402
from ffn_edge.demo import SHIPPED, write_sample_video  # noqa: E402
from ffn_edge.models import ModelConfig, create_model, perturb_like_trained  # noqa: E402
from ffn_edge.train import TrainConfig, train  # noqa: E402

RT_FPS, RT_WINDOW_S = 30.0, 1.0  # the real-time part: a 30 fps source, ffn-run's default window
# --context of the fine-tune with carried state: TSM-ResNet-18 has 8 causal shifts on every path, so a
# frame's logits depend on at most the 8 frames before it; a longer context would only cost time
CONTEXT = 8


@dataclasses.dataclass(frozen=True)
class Plan:
    """How big each part is (the full run, or --quick's smoke sizes)."""

    counts: tuple[int, ...] = (4, 8, 16)
    demo_width: float = 0.25
    synth_size: int = 64  # the demo's synthetic frames (56 px crops)
    init_from_shipped: bool = True
    train_per_class: int = 40
    val_per_class: int = 20
    epochs: int = 2
    max_batches: int = 0
    seeds: tuple[int, ...] = (0, 1)
    mnv2_width: float = 1.0
    mnv2_size: int = 224
    latency_runs: int = 15
    realtime_s: float = 20.0
    flip_clips: int = 12


QUICK = Plan(counts=(2, 4), demo_width=0.125, synth_size=32, init_from_shipped=False, train_per_class=2,
             val_per_class=2, epochs=1, max_batches=1, seeds=(0,), mnv2_width=0.35, mnv2_size=32, latency_runs=3,
             realtime_s=1.5, flip_clips=2)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------- models
def finetune(plan: Plan, shift: str, seed: int, out: Path, context: int = 0, reuse: bool = False) -> Path:
    """The demo-sized FFN with ``shift``, fine-tuned (or, --quick, trained) on the demo's synthetic set;
    ``context`` > 0: with carried state (``ffn-train --context``). ``reuse``: an earlier run's checkpoint."""
    lr = 1e-3 if plan.init_from_shipped else 3e-3
    cfg = TrainConfig(arch="tsm_resnet18", width_mult=plan.demo_width, shift=shift, frame_counts=plan.counts,
                      dropout=0.2, init=str(SHIPPED) if plan.init_from_shipped else None,
                      synth_size=plan.synth_size, synth_train_per_class=plan.train_per_class,
                      synth_val_per_class=plan.val_per_class, data_dir=str(out / "synthetic"), epochs=plan.epochs,
                      max_batches=plan.max_batches, optimizer="adamw", lr=lr, weight_decay=1e-4, warmup_epochs=0.0,
                      batch_size=16, workers=0, device="cpu", seed=seed, synth_seed=0, quiet=True, context=context,
                      out=str(out / f"{shift}{f'_context{context}' if context else ''}_seed{seed}"))
    if reuse and (Path(cfg.out) / "last.safetensors").is_file():
        log(f"reusing {Path(cfg.out) / 'last.safetensors'}")
        return Path(cfg.out) / "last.safetensors"
    t0 = time.perf_counter()
    rec = train(cfg)
    log(f"fine-tuned {shift} (context {context}) seed {seed}: val top-1 {rec['val_top1']} in "
        f"{time.perf_counter() - t0:.0f} s")
    return Path(cfg.out) / "last.safetensors"


def mobilenet(plan: Plan, out: Path) -> Path:
    """Causal TSM-MobileNetV2, untrained but perturbed (its sub-networks differ as after training)."""
    cfg = ModelConfig("tsm_mobilenetv2", 10, frame_counts=plan.counts, width_mult=plan.mnv2_width, shift="causal")
    model = create_model(cfg).eval()
    perturb_like_trained(model, weight_std=0.1, var_spread=1.5)
    path = out / "mobilenetv2_causal.safetensors"
    save_checkpoint(path, model, CheckpointMeta(cfg, [f"class{i}" for i in range(10)], input_size=plan.mnv2_size,
                                                resize_shorter=plan.mnv2_size * 8 // 7))
    return path


def export(ckpt: Path, plan: Plan, out: Path, quick: bool, reuse: bool = False) -> Path:
    if reuse and out.is_dir():
        log(f"reusing {out}")
        return out
    t0 = time.perf_counter()
    bundle = export_bundle(ckpt, plan.counts, out, force=True, verify=not quick)
    log(f"exported {ckpt.name} -> {out} in {time.perf_counter() - t0:.0f} s (step parity verified: {not quick})")
    return bundle


# ---------------------------------------------------------------------------------- measurements
def per_label_compute(bundle: Path, plan: Plan) -> dict[int, tuple[float, float]]:
    """n -> (clip ms, step ms), medians; clip runs and steps take turns so a load change hits both."""
    rng = np.random.default_rng(0)
    with FFNRuntime.open(bundle, backend="ort-cpu", threads=1) as rt:
        steps = rt.step_graphs()
        h, w = rt.manifest.input.size
        out = {}
        for k, n in enumerate(plan.counts):
            clip = rng.standard_normal((1, n, 3, h, w)).astype(np.float32)
            clip_ms, step_ms = [], []
            for _ in range(plan.latency_runs):
                clip_ms.append(rt.run(n, clip).latency_ms)
                state = steps.zero_state(k)
                for frame in clip[0]:
                    r = steps.run(frame, k, state)
                    state = r.state
                    step_ms.append(r.latency_ms)
            out[n] = (statistics.median(clip_ms), statistics.median(step_ms))
    return out


def realtime(bundle: Path, video: Path, n: int, seconds: float) -> dict[str, float]:
    """The online stream at n on a file played at its frame rate: latency, label rate, CPU share."""
    ages, stamps = [], []
    with FFNRuntime.open(bundle, backend="ort-cpu", threads=1) as rt:
        stream = rt.online_stream(str(video), frames=n, window_s=RT_WINDOW_S, realtime=True,
                           duration_s=seconds)
        cpu0 = wall0 = None
        for r in stream:
            if not r.warm:
                continue
            if cpu0 is None:  # from the first warm label: the warm-up of the buffers is not the steady state
                cpu0, wall0 = time.process_time(), time.monotonic()
            ages.append(r.capture_to_label_ms)
            stamps.append(time.monotonic())
        cpu, wall = time.process_time() - cpu0, stamps[-1] - wall0
    return {"p50": float(np.percentile(ages, 50)), "p99": float(np.percentile(ages, 99)),
            "labels_per_s": (len(stamps) - 1) / wall if wall > 0 else float("nan"),
            "cpu_share": cpu / wall if wall > 0 else float("nan"), "labels": len(ages)}


def _val_set(plan: Plan, data_dir: Path, meta: CheckpointMeta):
    import json

    from ffn_edge.data import VideoDataset

    s = json.loads((data_dir / "synthetic.json").read_text())
    return VideoDataset(s["val_list"], s["root"], kind="frames", frame_counts=plan.counts, train=False,
                        input_size=meta.input_size, resize_shorter=meta.resize_shorter, mean=meta.mean, std=meta.std)


ROWS = {  # the continuous table's rows: (model trained how, run how)
    "(ii) causal, zero buffers per video": ("clips", "reset"),
    "(ii') causal with carried state, zero buffers per video": ("context", "reset"),
    "(iii) causal continuous, trained on clips": ("clips", "continuous"),
    "(iv) causal continuous, trained with carried state": ("context", "continuous"),
    "(v) (iii) + scene-cut reset": ("clips", "cut"),
    "(vi) (iv) + scene-cut reset": ("context", "cut"),
}


def stream_top1(steps, val, order: np.ndarray, counts: tuple[int, ...], meta: CheckpointMeta) -> dict[str, list[float]]:
    """Top-1 (%) per count of one causal bundle's step graphs on the validation videos in ``order``.

    Each sub-network k gets each video's n_k-frame clip (its own stride) and labels the video with the
    mean of its last n_k logits at the video's end, in three ways: buffers and ring reset at each
    video ("reset"), carried through the whole stream ("continuous"), and carried but reset where
    ``SceneCut`` at its default threshold (one per sub-network, on the frames it gets, normalised with
    ``meta``'s mean and std) sees a scene cut ("cut"; the label then averages the frames since the cut)."""
    import collections

    modes = ("reset", "continuous", "cut")
    hits = {m: np.zeros(len(counts)) for m in modes}
    found = np.zeros((2, len(counts)), int)  # cuts at a video's first frame (the true ones), elsewhere
    states = {m: [steps.zero_state(k) for k in range(len(counts))] for m in modes}
    rings = {m: [collections.deque(maxlen=n) for n in counts] for m in modes}
    cuts = [SceneCut(mean=tuple(meta.mean), std=tuple(meta.std)) for _ in counts]
    for i in order:
        clips, label = val[int(i)]
        for k, clip in enumerate(clips):
            states["reset"][k] = steps.zero_state(k)
            rings["reset"][k].clear()
            for t, frame in enumerate(clip.numpy()):
                frame = np.ascontiguousarray(frame, dtype=np.float32)
                if cuts[k].is_cut(frame):
                    states["cut"][k] = steps.zero_state(k)
                    rings["cut"][k].clear()
                    found[int(t > 0), k] += 1
                for m in modes:
                    r = steps.run(frame, k, states[m][k])
                    states[m][k] = r.state
                    rings[m][k].append(r.logits)
            for m in modes:
                hits[m][k] += int(np.argmax(np.mean(rings[m][k], axis=0)) == label)
    log(f"scene cuts found per count {counts}: at a video's first frame {found[0].tolist()} of {len(order) - 1} "
        f"video boundaries, inside videos {found[1].tolist()}")
    return {m: list(100.0 * h / len(val)) for m, h in hits.items()}


def accuracy(plan: Plan, bidir: Path, bundles: dict[str, Path], data_dir: Path) -> dict[str, list[float] | None]:
    """The continuous table of one seed: top-1 (%) per count, row name -> values (None: not run).

    ``bundles``: "clips" (the causal fine-tune on clips) and "context" (with carried state) -> bundle."""
    from torch.utils.data import DataLoader

    from ffn_edge.evaluate import evaluate

    model_b, meta = load_checkpoint(bidir)
    val = _val_set(plan, data_dir, meta)
    loader = DataLoader(val, batch_size=16, num_workers=0)
    out: dict[str, list[float] | None] = {"(i) bidirectional clip": evaluate([model_b], loader, plan.counts)["top1"]}
    order = np.random.default_rng(0).permutation(len(val))  # the list is sorted by class; a stream is not
    runs = {}
    for trained, bundle in bundles.items():
        with FFNRuntime.open(bundle, backend="ort-cpu", threads=1) as rt:
            runs[trained] = stream_top1(rt.step_graphs(), val, order, plan.counts, meta)
    for name, (trained, mode) in ROWS.items():
        out[name] = runs[trained].get(mode)
    return out


def continuous_goals(acc: dict[str, list[float] | None]) -> list[str]:
    """The two goals on one seed's (or the seeds' mean) table, each with met/MISSED and the measured gaps."""
    zero, carried, bidir = (acc["(ii) causal, zero buffers per video"],
                            acc["(iv) causal continuous, trained with carried state"], acc["(i) bidirectional clip"])
    gaps = [z - c for z, c in zip(zero, carried, strict=True)]
    top = bidir[-1] - carried[-1]
    return [f"(ii) - (iv) at each count: {' / '.join(f'{g:+.1f}' for g in gaps)} points "
            f"(goal <= 2 at every count: {'met' if max(gaps) <= 2.0 else 'MISSED'})",
            f"(i) - (iv) at the largest count: {top:+.1f} points (goal <= 3: {'met' if top <= 3.0 else 'MISSED'})"]


def print_continuous(plan: Plan, tables: dict[int, dict[str, list[float] | None]], context: int) -> None:
    print("\n## Continuous stream: top-1 % on the synthetic validation set "
          f"({plan.val_per_class * 10} videos in one stream; causal models fine-tuned {plan.epochs} epoch(s), "
          f"with carried state: --context {context})\n")
    print("| seed | row | " + " | ".join(f"{n} frames" for n in plan.counts) + " |")
    print("|---|---|" + "---|" * len(plan.counts))
    for seed, acc in tables.items():
        for name, values in acc.items():
            shown = " | ".join(f"{v:.1f}" if values is not None else "n/a" for v in values or plan.counts)
            print(f"| {seed} | {name} | {shown} |")
    mean = {name: [statistics.fmean(t[name][j] for t in tables.values()) for j in range(len(plan.counts))]
            for name, v in next(iter(tables.values())).items() if v is not None}
    for name, values in mean.items():
        print(f"| mean | {name} | " + " | ".join(f"{v:.1f}" for v in values) + " |")
    print(f"\nscene-cut reset: SceneCut at its default threshold {SceneCut().threshold:g} on the frames each "
          "sub-network gets; at a cut its buffers restart from zeros and its label averages the frames since")
    print()
    for seed, acc in [*tables.items(), ("mean", mean)]:
        for line in continuous_goals(acc):
            print(f"seed {seed}: {line}")


class _Alternate:
    """A scripted scheduler (the stream's ``scheduler=`` seam): ``a`` and ``b`` frames, ``every`` windows each."""

    def __init__(self, a: int, b: int, every: int) -> None:
        self.a, self.b, self.every, self.windows = a, b, every, 0

    def decide(self, now_s: float, signals: object) -> Decision:
        n = self.a if (self.windows // self.every) % 2 == 0 else self.b
        return Decision(n, 0, None, None, ["scripted"], True)

    def observe(self, n: int, subnet: int, latency_ms: float, now_s: float, cpu_ms: float | None = None) -> None:
        self.windows += 1


def switch_flips(bundle: Path, video: Path, window_s: float, plan: Plan) -> dict[str, int]:
    """Label changes with and without switching; at each switch, whether the first warm label of the new
    sub-network differs from the label before it, and from the fixed run's label at the same frame
    (the video's content changes too; the fixed run tells which changes the switch made)."""
    hi, lo = plan.counts[-1], plan.counts[-2]
    result, fixed_at = {}, {}
    with FFNRuntime.open(bundle, backend="ort-cpu", threads=1) as rt:
        for name, kwargs in (("fixed", {"frames": hi}), ("switching", {"scheduler": _Alternate(hi, lo, 2)})):
            labels, switches, at_switch, vs_fixed, before = [], 0, 0, 0, None
            warming = False
            for r in rt.online_stream(str(video), window_s=window_s, **kwargs):
                if r.switched and labels:
                    switches, warming, before = switches + 1, True, labels[-1]
                if r.prediction is None:
                    continue
                if name == "fixed":
                    fixed_at[round(r.stamp, 3)] = r.prediction.label
                if warming and r.warm:
                    at_switch += r.prediction.label != before
                    vs_fixed += r.prediction.label != fixed_at.get(round(r.stamp, 3), r.prediction.label)
                    warming = False
                labels.append(r.prediction.label)
            result[f"{name}_flips"] = sum(a != b for a, b in zip(labels, labels[1:], strict=False))
            result[f"{name}_labels"] = len(labels)
            if name == "switching":
                result.update(switches=switches, flipped_at_switch=at_switch, differs_from_fixed=vs_fixed)
    return result


# ------------------------------------------------------------------------------------------- main
def latency_parts(plan: Plan, models: list[str], demo_bundle: Path, out: Path, quick: bool) -> Path:
    """Parts 1 and 2 (per-label compute, real time), printed; returns the switch part's video."""
    rows = {}
    if "demo" in models:
        rows[f"demo (R18 x{plan.demo_width:g}, {plan.synth_size * 7 // 8} px)"] = demo_bundle
    if "mobilenetv2" in models:
        rows[f"MobileNetV2 (x{plan.mnv2_width:g}, {plan.mnv2_size} px)"] = export(
            mobilenet(plan, out), plan, out / "mobilenetv2_causal.ffn", quick)

    rt_video = out / "rt30.mp4"
    write_sample_video(rt_video, list(range(10)) * 2, seed=3, fps=RT_FPS)  # 10 s per pass at 30 fps
    flip_video = out / "flips.mp4"
    write_sample_video(flip_video, [int(v) for v in np.random.default_rng(5).integers(0, 10, plan.flip_clips)],
                       seed=5)  # the demo's 12 fps clips: 4 s each, the window

    load = os.getloadavg()[0]
    compute = {name: per_label_compute(b, plan) for name, b in rows.items()}
    live = {name: realtime(b, rt_video, plan.counts[-1], plan.realtime_s) for name, b in rows.items()}
    load = max(load, os.getloadavg()[0])

    print(f"\n## Per-label compute (median ms, 1 thread; load average <= {load:.2f})\n")
    print("| model | n | clip graph (window mode, 1 label) | step (online, 1 label) | n x step / clip | goal <= 1.2 |")
    print("|---|---|---|---|---|---|")
    for name, res in compute.items():
        for n, (clip_ms, step_ms) in res.items():
            ratio = n * step_ms / clip_ms
            goal = "met" if ratio <= 1.2 else "MISSED"
            print(f"| {name} | {n} | {clip_ms:.2f} | {step_ms:.2f} | {ratio:.2f} | {goal} |")

    n = plan.counts[-1]
    print(f"\n## Online stream in real time ({RT_FPS:g} fps file, n={n}, window {RT_WINDOW_S:g} s, stride "
          f"{1000 * RT_WINDOW_S / n:.1f} ms)\n")
    print("| model | warm labels | capture-to-label p50 ms | p99 ms | labels/s | process CPU share |")
    print("|---|---|---|---|---|---|")
    for name, r in live.items():
        print(f"| {name} | {r['labels']} | {r['p50']:.2f} | {r['p99']:.2f} | {r['labels_per_s']:.2f} | "
              f"{100 * r['cpu_share']:.1f} % |")

    return flip_video


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke mode: tiny models, 1 seed, one training batch")
    ap.add_argument("--out", default="runs/streaming", help="working directory (default runs/streaming)")
    ap.add_argument("--models", default="demo,mobilenetv2", help="rows of the latency tables (default both)")
    ap.add_argument("--epochs", type=int, default=None, help="fine-tuning epochs of the causal models "
                    f"(default {Plan.epochs}; --quick {QUICK.epochs})")
    ap.add_argument("--only", choices=("continuous",), default=None,
                    help="run one part alone: continuous = the continuous-stream accuracy table (no latency parts)")
    ap.add_argument("--reuse", action="store_true", help="take the causal checkpoints and bundles an earlier run "
                    "with the same options left in --out instead of training and exporting them again")
    ap.add_argument("--context", type=int, default=CONTEXT,
                    help=f"--context of the fine-tune with carried state (default {CONTEXT})")
    args = ap.parse_args(argv)
    if not 1 <= args.context <= 256:
        ap.error("--context must be in [1, 256]")
    plan = QUICK if args.quick else Plan()
    if args.epochs is not None:
        if args.epochs < 1:
            ap.error("--epochs must be >= 1")
        plan = dataclasses.replace(plan, epochs=args.epochs)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    log(f"CPUs {sorted(os.sched_getaffinity(0))}; load average {os.getloadavg()[0]:.2f}; plan {plan}")

    models = args.models.split(",")
    if not set(models) <= {"demo", "mobilenetv2"}:
        ap.error(f"--models takes demo and/or mobilenetv2, got {args.models!r}")
    ckpts = {("causal", seed): finetune(plan, "causal", seed, out, reuse=args.reuse) for seed in plan.seeds}
    ckpts.update({("context", seed): finetune(plan, "causal", seed, out, args.context, args.reuse)
                  for seed in plan.seeds})
    for seed in plan.seeds:  # the shipped (converged) checkpoint, or --quick's tiny model trained alike
        ckpts[("bidirectional", seed)] = (SHIPPED if plan.init_from_shipped
                                          else finetune(plan, "bidirectional", plan.seeds[0], out))
    bundles = {seed: export(ckpts[("causal", seed)], plan, out / f"demo_causal_seed{seed}.ffn", args.quick,
                            args.reuse) for seed in plan.seeds}
    context_bundles = {seed: export(ckpts[("context", seed)], plan,
                                    out / f"demo_causal_context{args.context}_seed{seed}.ffn", args.quick, args.reuse)
                       for seed in plan.seeds}
    if args.only is None:
        flip_video = latency_parts(plan, models, bundles[plan.seeds[0]], out, args.quick)

    load = os.getloadavg()[0]
    tables = {seed: accuracy(plan, ckpts[("bidirectional", seed)],
                             {"clips": bundles[seed], "context": context_bundles[seed]}, out / "synthetic")
              for seed in plan.seeds}
    print_continuous(plan, tables, args.context)
    print(f"(load average {load:.2f} before the table, {os.getloadavg()[0]:.2f} after)")
    if args.only is not None:
        log(f"total {time.perf_counter() - t_start:.0f} s; load average now {os.getloadavg()[0]:.2f}")
        return 0

    flips = switch_flips(bundles[plan.seeds[0]], flip_video, 4.0, plan)
    print(f"\n## Sub-network switches (demo model online, {plan.flip_clips} clips of 4 s, window 4 s)\n")
    print("| run | labels | label changes | switches | first warm label after a switch differs from the one before "
          "| ... from the fixed run's at that frame |")
    print("|---|---|---|---|---|---|")
    print(f"| n={plan.counts[-1]} throughout | {flips['fixed_labels']} | {flips['fixed_flips']} | 0 | - | - |")
    print(f"| n={plan.counts[-1]}/{plan.counts[-2]} every 2 windows | {flips['switching_labels']} | "
          f"{flips['switching_flips']} | {flips['switches']} | {flips['flipped_at_switch']} | "
          f"{flips['differs_from_fixed']} |")
    log(f"total {time.perf_counter() - t_start:.0f} s; load average now {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
