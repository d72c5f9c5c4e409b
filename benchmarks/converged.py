"""FFN vs Separated Training trained to convergence, over seeds, for several FFN recipes/losses.

The paper's central claim: one FFN checkpoint is at least as good as three separately trained (ST)
models at every frame count. This trains, per seed, ST at L/M/H and one FFN per variant in
``VARIANTS`` (the paper's loss with the project's and with the authors' recipe, and losses aimed at
FFN >= ST), evaluates every model on the whole evaluation list at L/M/H and 2-20 frames (FFN: its
nearest sub-network; ST: the ST model trained nearest) and the ST Ensemble at L/M/H, then writes
``OUT/converged.md``, ``OUT/converged.json`` and two plots.

It first checks the premise the claim needs (ST L < ST M < ST H: more frames help here) and prints it.
Runs and evaluations are cached per run like ``reproduce.py`` (finished ``last.safetensors`` +
``eval.json``; an interrupted run resumes), and the order is seed-major, so a stopped study still
leaves complete seeds; ``--report-only`` writes the report from what has finished.

    python benchmarks/converged.py --out runs/converged          # default size: see parse_args
    python benchmarks/converged.py --tiny --out /tmp/c           # smoke size (seconds)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reproduce import (  # noqa: E402
    ANY_FRAMES,
    Run,
    ValBatches,
    cached_eval,
    claim_out,
    compare,
    finished,
    fmt,
    load_models,
    mean_std,
    plot_bars,
    plot_curves,
    prepare_data,
    read_cache,
    st_nearest,
    table,
    write_cache,
)

from ffn_edge.core.errors import run_cli  # noqa: E402
from ffn_edge.evaluate import evaluate  # noqa: E402
from ffn_edge.train import TrainConfig, train  # noqa: E402

# name -> (TrainConfig overrides, label). "recipe": "paper" takes batch size, lr, warm-up, optimiser and
# weight decay from the authors' recipe; every other run uses the study's base recipe (see parse_args).
VARIANTS: dict[str, tuple[dict[str, Any], str]] = {
    "ffn": ({}, "FFN, paper loss, project recipe"),
    "ffn_paper_recipe": ({"recipe": "paper"}, "FFN, paper loss, --recipe paper"),
    "ffn_ce_td": ({"loss": "ce_td"}, "FFN, --loss ce_td (CE on every sub-network + TD)"),
    "ffn_ce_td_ramp": ({"loss": "ce_td", "lam_ramp": "half"}, "FFN, --loss ce_td, λ ramped 0→1 over half the epochs"),
}
PAPER_OPTIM = {"optimizer": "sgd", "weight_decay": 5e-4}  # the authors' optimiser (lr/batch: the recipe table)


def plan_runs(args: argparse.Namespace) -> list[Run]:
    """Seed-major: ST at L/M/H then every variant, seed 0 first (an early stop leaves whole seeds)."""
    runs = []
    for seed in range(args.first_seed, args.seeds):
        runs += [Run(f"st{n}", seed, (("method", "st"), ("frames", n))) for n in args.frame_counts]
        runs += [Run(name, seed, (("method", "ffn"), *over.items())) for name, (over, _) in VARIANTS.items()
                 if name in args.variants]
    return runs


def run_config(run: Run, args: argparse.Namespace, data: dict[str, str], run_dir: Path, resume: bool) -> TrainConfig:
    """The TrainConfig of ``run``: the study's base recipe, or the authors' for ``recipe=paper``."""
    over = dict(run.overrides)
    if over.get("lam_ramp") == "half":
        over["lam_ramp"] = args.epochs / 2
    if over.get("recipe") == "paper":
        base: dict[str, Any] = dict(PAPER_OPTIM)  # batch size, lr, warm-up: None -> the recipe's
    else:
        base = {"optimizer": args.optimizer, "lr": args.lr, "weight_decay": args.weight_decay,
                "batch_size": args.batch_size, "warmup_epochs": 1.0}
    return TrainConfig(
        arch=args.arch, width_mult=args.width_mult, frame_counts=tuple(args.frame_counts), dataset=data["kind"],
        train_list=data["train_list"], val_list=data["monitor_list"], root=data["root"], input_size=args.size,
        resize_shorter=args.resize_shorter, epochs=args.epochs, workers=args.workers, dropout=args.dropout,
        max_batches=args.max_batches, device="cpu", seed=run.seed, out=str(run_dir), quiet=True, resume=resume,
        **base, **over)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="tsm_resnet18")
    p.add_argument("--width-mult", type=float, default=0.25)
    p.add_argument("--size", type=int, default=32, help="input crop size (synthetic frames are 8/7 of it)")
    p.add_argument("--frame-counts", type=int, nargs=3, default=[4, 8, 16], help="L M H")
    p.add_argument("--epochs", type=int, default=24, help="24: ~80 min of one core for 3 seeds")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=0,
                   help="train seeds FIRST..SEEDS-1 only (a second process on another core; copy its run folders "
                        "into the main OUT and rerun with --report-only)")
    p.add_argument("--variants", nargs="+", choices=tuple(VARIANTS), default=list(VARIANTS))
    p.add_argument("--batch-size", type=int, default=16, help="base recipe (docs/training's converged runs)")
    p.add_argument("--optimizer", choices=("sgd", "adamw"), default="adamw", help="base recipe")
    p.add_argument("--lr", type=float, default=3e-3, help="base recipe")
    p.add_argument("--weight-decay", type=float, default=1e-4, help="base recipe")
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--max-batches", type=int, default=0, help="batches per epoch (0: all)")
    p.add_argument("--synth-classes", type=int, default=10)
    p.add_argument("--synth-train-per-class", type=int, default=40,
                   help="40: with 30, ST16 overfit below ST8 in probes (the premise failed)")
    p.add_argument("--synth-val-per-class", type=int, default=20)
    p.add_argument("--synth-frames", type=int, default=48)
    p.add_argument("--monitor-per-class", type=int, default=2, help="videos per class the trainer validates on")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="runs/converged")
    p.add_argument("--tiny", action="store_true", help="smoke size: tiny set and model, 1 epoch, 2 seeds")
    p.add_argument("--report-only", action="store_true", help="train nothing: report the finished runs")
    args = p.parse_args(argv)
    if args.tiny:
        args.width_mult, args.size, args.epochs, args.seeds, args.max_batches = 0.125, 28, 1, 2, 1
        args.batch_size, args.monitor_per_class, args.optimizer, args.lr = 4, 1, "sgd", 0.01  # sgd: no dynamo import
        args.synth_classes, args.synth_train_per_class, args.synth_val_per_class, args.synth_frames = 3, 2, 2, 16
    if sorted(set(args.frame_counts)) != args.frame_counts:
        p.error("--frame-counts must be three increasing numbers L M H")
    if min(args.seeds, args.epochs) < 1:
        p.error("--seeds and --epochs must be >= 1")
    args.dataset = "synthetic"
    args.resize_shorter = args.size * 8 // 7
    return args


RECIPE_KEYS = ("arch", "width_mult", "size", "frame_counts", "epochs", "batch_size", "optimizer", "lr",
               "weight_decay", "dropout", "max_batches", "synth_classes", "synth_train_per_class",
               "synth_val_per_class", "synth_frames", "monitor_per_class")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    claim_out(out, {k: getattr(args, k) for k in RECIPE_KEYS}, "converged")
    data = prepare_data(args, out)
    lmh = list(args.frame_counts)
    frames = sorted(set(ANY_FRAMES) | set(lmh))
    val_all, val_lmh = ValBatches(data, args, frames), ValBatches(data, args, lmh)
    timing_file = out / "timing.json"
    timing = read_cache(timing_file)
    timing = timing if isinstance(timing, dict) else {}
    results: dict[str, dict[str, Any]] = {}
    runs = plan_runs(args)
    missing = []
    for i, run in enumerate(runs, 1):
        run_dir = out / "runs" / run.key
        path = run_dir / "last.safetensors"
        if not args.report_only and not finished([path], args.epochs):
            t0 = time.perf_counter()
            train(run_config(run, args, data, run_dir, resume=path.is_file()))
            timing[run.key] = time.perf_counter() - t0
            write_cache(timing_file, timing)
        if not finished([path], args.epochs):
            missing.append(run.key)
            continue
        results[run.key] = cached_eval(run_dir / "eval.json", frames,
                                       lambda p=path: evaluate(load_models([p]), val_all, frames))
        r = results[run.key]
        print(f"[{i}/{len(runs)}] {run.key} ({timing.get(run.key, 0):.0f}s): top-1 "
              + " ".join(f"{n}f {r['top1'][r['frames'].index(n)]:.1f}" for n in lmh), flush=True)
    for seed in range(args.seeds):
        paths = [out / "runs" / f"st{n}_s{seed}" / "last.safetensors" for n in lmh]
        if all(f"st{n}_s{seed}" in results for n in lmh):
            results[f"ensemble_s{seed}"] = cached_eval(
                out / f"ensemble_s{seed}.json", lmh, lambda p=paths: evaluate(load_models(p), val_lmh, lmh,
                                                                               ensemble=True))
    summary = summarise(args, results, frames)
    summary["missing"], summary["timing_s"] = missing, timing
    (out / "converged.json").write_text(json.dumps(summary, indent=1))
    report = write_report(args, out, summary, results, frames)
    print(summary["premise"]["line"])
    for line in summary["verdicts"]:
        print(line)
    print(f"wrote {report}")
    return 0


def seeds_of(results: dict[str, dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """Results of run ``name`` over consecutive seeds from 0."""
    found, seed = [], 0
    while f"{name}_s{seed}" in results:
        found.append(results[f"{name}_s{seed}"])
        seed += 1
    return found


def top1(rows: Sequence[dict[str, Any]], n: int) -> list[float]:
    return [r["top1"][r["frames"].index(n)] for r in rows]


def reaches(ffn: Sequence[float], st: Sequence[float]) -> bool:
    """FFN >= ST in the study's sense: Δ of the means >= 0, or |Δ| within the larger across-seed std."""
    d, _ = compare(ffn, st)
    spread = max((mean_std(x)[1] for x in (ffn, st) if len(x) > 1), default=math.nan)
    return d >= 0 or (not math.isnan(spread) and abs(d) <= spread)


def summarise(args: argparse.Namespace, results: dict[str, dict[str, Any]], frames: Sequence[int]) -> dict[str, Any]:
    """Premise check, per-variant top-1 per seed at L/M/H and 2-20, Δ vs ST and the FFN >= ST verdicts."""
    lmh = list(args.frame_counts)
    st = {n: seeds_of(results, f"st{n}") for n in lmh}
    k = min(len(v) for v in st.values())
    st_at = {n: top1(st[n][:k], n) for n in lmh}
    premise: dict[str, Any] = {"seeds": k}
    if k:
        means = {n: statistics.fmean(st_at[n]) for n in lmh}
        holds = all(means[a] < means[b] for a, b in zip(lmh, lmh[1:], strict=False))
        premise.update(means={str(n): means[n] for n in lmh}, holds=holds,
                       line=f"premise ST{lmh[0]} < ST{lmh[1]} < ST{lmh[2]} ({k} seeds): "
                            + " / ".join(f"{means[n]:.1f}" for n in lmh) + f" -> {'holds' if holds else 'FAILS'}")
    else:
        premise.update(holds=None, line="premise: no complete ST seed yet")
    out: dict[str, Any] = {"premise": premise, "st": {str(n): st_at[n] for n in lmh},
                           "st_anyframe": st_nearest(results, lmh, frames, k) if k else [],
                           "ensemble": {str(n): top1(seeds_of(results, "ensemble"), n) for n in lmh},
                           "variants": {}, "verdicts": []}
    for name in args.variants:
        rows = seeds_of(results, name)
        if not rows:
            continue
        v = {"label": VARIANTS[name][1], "seeds": len(rows), "top1": {str(n): top1(rows, n) for n in lmh},
             "anyframe": [[r["top1"][r["frames"].index(n)] for n in frames] for r in rows],
             "delta_vs_st": {}, "reaches_st": {}}
        for n in lmh:
            m = min(len(rows), k)  # paired seeds
            d, verdict = compare(top1(rows[:m], n), st_at[n][:m])
            v["delta_vs_st"][str(n)] = [d, verdict]
            v["reaches_st"][str(n)] = reaches(top1(rows[:m], n), st_at[n][:m]) if m else False
        v["reaches_all"] = all(v["reaches_st"].values())
        ens = out["ensemble"]
        v["delta_vs_ensemble"] = {str(n): compare(top1(rows, n)[:len(ens[str(n)])], ens[str(n)])[0] for n in lmh}
        if out["st_anyframe"]:
            m = min(len(rows), k)
            v["anyframe_higher"] = sum(statistics.fmean(row[j] for row in v["anyframe"][:m])
                                       >= statistics.fmean(row[j] for row in out["st_anyframe"][:m])
                                       for j in range(len(frames)))
        out["variants"][name] = v
        out["verdicts"].append(f"{name}: FFN >= ST at all of {'/'.join(map(str, lmh))}: "
                               f"{'YES' if v['reaches_all'] else 'no'} (Δ "
                               + " / ".join(f"{v['delta_vs_st'][str(n)][0]:+.1f}" for n in lmh) + ")")
    return out


def write_report(args: argparse.Namespace, out: Path, s: dict[str, Any], results: dict[str, dict[str, Any]],
                 frames: Sequence[int]) -> Path:
    """OUT/converged.md + converged_lmh.png + converged_anyframe.png, every number from ``s``."""
    lmh = list(args.frame_counts)
    n_val = next(iter(results.values()))["num_videos"] if results else 0
    lines = ["# FFN vs ST trained to convergence, over seeds\n",
             f"Generated by `benchmarks/converged.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
             "reproduce with `OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/converged.py --out OUT` (the defaults "
             "are this setting; `--report-only` rewrites the report from finished runs).\n"]
    w = lines.append
    if s["missing"]:
        w(f"**Partial: {len(s['missing'])} run(s) not finished** ({', '.join(s['missing'])}).\n")
    w(f"- Setting: synthetic set, {args.synth_classes} classes, {args.synth_train_per_class}/{args.synth_val_per_class}"
      f" train/eval videos per class ({n_val} evaluated, {100 / max(n_val, 1):.1f} points per video), "
      f"{args.synth_frames} frames per video; {args.arch} ×{args.width_mult}, {args.size}px, from scratch, "
      f"{args.epochs} epochs, last-epoch weights.")
    w(f"- Base recipe (ST and every FFN except `--recipe paper`): {args.optimizer} lr {args.lr}, wd "
      f"{args.weight_decay}, batch {args.batch_size}, 1 warm-up epoch + cosine, dropout {args.dropout}. "
      f"`--recipe paper`: SGD momentum 0.9, wd 5e-4, batch 32, lr 0.01, step ×0.1 at 40%/80% of the epochs, "
      f"classifier lr ×5 (bias ×10) and N(0, 0.001) init, Kaiming fan-out WA init.")
    w("- Cells: mean ± std (sample std) over seeds; Δ = FFN − ST of the means (paired seeds); "
      "'FFN ≥ ST' = Δ ≥ 0 or |Δ| within the larger across-seed std.\n")
    w(f"**Premise:** {s['premise']['line']}\n")
    w("## Top-1 at L/M/H\n")
    body = [[f"ST ({'/'.join(map(str, lmh))}, three models)", str(s["premise"]["seeds"]),
             *[fmt(s["st"][str(n)]) for n in lmh], "", ""],
            [f"Ensemble (ST {'+'.join(map(str, lmh))})", str(len(s["ensemble"][str(lmh[0])])),
             *[fmt(s["ensemble"][str(n)]) for n in lmh], "", ""]]
    for v in s["variants"].values():
        body.append([v["label"], str(v["seeds"]), *[fmt(v["top1"][str(n)]) for n in lmh],
                     " / ".join(f"{v['delta_vs_st'][str(n)][0]:+.1f}" for n in lmh),
                     "**yes**" if v["reaches_all"] else "no"])
    w(table(["model", "seeds", *[f"top-1 {n}F" for n in lmh], "Δ vs ST", "FFN ≥ ST at all"], body) + "\n")
    if s["premise"]["holds"] is False:
        w("**The premise fails in this setting, so these rows do not test the paper's claim.**\n")
    w("Δ against the seed spread (and FFN − Ensemble of the means; FFN mean ≥ ST mean at how many of the "
      f"{len(frames)} counts 2–20):\n")
    w(table(["variant", *[f"{n}F" for n in lmh], "FFN − Ensemble", "≥ ST at 2–20"],
            [[name, *[f"{v['delta_vs_st'][str(n)][0]:+.1f}: {v['delta_vs_st'][str(n)][1]}" for n in lmh],
              " / ".join(f"{v['delta_vs_ensemble'][str(n)]:+.1f}" for n in lmh),
              f"{v.get('anyframe_higher', '–')}/{len(frames)}"]
             for name, v in s["variants"].items()]) + "\n")
    if s["st_anyframe"]:
        w("## Any frame count 2–20 (nearest rule; * = outside the trained range)\n")
        cols = [("ST (nearest)", s["st_anyframe"])] + [(name, v["anyframe"]) for name, v in s["variants"].items()]
        body = [[f"{n}{'*' if n < lmh[0] or n > lmh[-1] else ''}",
                 *[fmt([row[j] for row in per]) for _, per in cols]] for j, n in enumerate(frames)]
        w(table(["frames", *[c for c, _ in cols]], body) + "\n")
        plot_curves(out / "converged_anyframe.png", {c: (list(frames), per) for c, per in cols},
                    "FFN variants vs ST at any frame count", band=(lmh[0], lmh[-1]))
        w("![any frame](converged_anyframe.png)\n")
    series = {"ST": [s["st"][str(n)] for n in lmh]}
    series.update({name: [v["top1"][str(n)] for n in lmh] for name, v in s["variants"].items()})
    if all(len(x) for x in series["ST"]):  # a complete ST seed
        plot_bars(out / "converged_lmh.png", [f"{n}F" for n in lmh], series, "FFN variants vs ST (mean ± std)")
        w("![L/M/H](converged_lmh.png)\n")
    w("## Verdicts\n")
    w("\n".join(f"- {line}" for line in s["verdicts"]) + "\n")
    w("## Training time per run (s)\n")
    w(f"One torch thread per run, runs one after another; total {sum(s['timing_s'].values()) / 60:.1f} min of "
      f"training; load average when this report was written: {' '.join(f'{x:.1f}' for x in os.getloadavg())} "
      f"({os.cpu_count()} cores).\n")
    w(table(["run", "s"], [[k, f"{t:.0f}"] for k, t in s["timing_s"].items()]) + "\n")
    path = out / "converged.md"
    path.write_text("\n".join(lines))
    return path


if __name__ == "__main__":
    run_cli("converged.py", main)
