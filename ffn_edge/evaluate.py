"""ffn-eval: top-1 / top-5 of one or several checkpoints at any frame counts (paper §5.3).

How a frame count n is served:
* one checkpoint: by its sub-network nearest to n (tie -> higher), the paper's inference rule;
* several single-sub-network (ST) checkpoints: by the checkpoint trained at the frame count nearest
  to n — how ST is evaluated at frame counts it was not trained on;
* ``--ensemble``: the softmax of every checkpoint (each by its own nearest rule) averaged — the
  paper's Ensemble baseline.

``evaluate(models, loader, frames)`` is the library function behind it (the trainer's validation
and the reproduction benchmark call it too).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence, Sized
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from .checkpoint import CheckpointMeta, load_checkpoint
from .core.argparsing import Parser
from .core.cpus import usable_cpus
from .core.deps import require_modules
from .core.errors import ConfigError, FFNError, run_cli
from .core.progress import progress
from .core.sampling import nearest_subnet
from .models import VideoClassifier


def serving(models: Sequence[VideoClassifier], n: int, ensemble: bool = False) -> list[tuple[int, int]]:
    """The (model index, sub-network index) pairs that answer a clip of ``n`` frames."""
    if ensemble or len(models) == 1:
        return [(i, m.subnet_for(n)) for i, m in enumerate(models)]
    if any(m.n_subnets != 1 for m in models):
        raise ValueError("several checkpoints without --ensemble must each have one sub-network (ST models)")
    return [(nearest_subnet(n, [m.frame_counts[0] for m in models]), 0)]


@torch.inference_mode()
def evaluate(
    models: Sequence[VideoClassifier],
    loader: Iterable[tuple[Sequence[torch.Tensor], torch.Tensor]],
    frames: Sequence[int],
    *,
    ensemble: bool = False,
    desc: str | None = None,
) -> dict[str, Any]:
    """Top-1/top-5 (%) at each of ``frames``; ``loader`` yields (one clip batch per frame count, labels).

    Models are put in eval mode and run on the device of their parameters. Under torch.distributed
    each rank evaluates its shard of the data and the counts are summed over ranks. ``desc``: report
    progress per batch on stderr under that name (``core.progress``).
    """
    if not models:
        raise ValueError("evaluate needs at least one model")
    device = next(models[0].parameters()).device
    for m in models:
        m.eval()
    plans = [serving(models, n, ensemble) for n in frames]
    k5 = min(5, models[0].num_classes_out())
    counts = torch.zeros(3, len(frames), dtype=torch.float64, device=device)  # top-1 hits, top-5 hits, videos
    batches = len(loader) if isinstance(loader, Sized) else 0
    for clips, labels in progress(loader, batches, desc or "", enabled=desc is not None):
        if len(clips) != len(frames):
            raise ValueError(f"the loader yields {len(clips)} clips per video but {len(frames)} frame counts "
                             f"were asked for")
        labels = labels.to(device)
        for j, (clip, plan) in enumerate(zip(clips, plans, strict=True)):
            clip = clip.to(device, non_blocking=True)
            if len(plan) == 1:
                scores = models[plan[0][0]](clip, subnet=plan[0][1])  # logits rank like softmax
            else:
                scores = torch.stack([models[i](clip, subnet=k).float().softmax(-1) for i, k in plan]).mean(0)
            hits = scores.topk(k5, dim=-1).indices == labels[:, None]
            counts[0, j] += hits[:, 0].sum()
            counts[1, j] += hits.any(dim=1).sum()
            counts[2, j] += len(labels)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(counts)
    total = counts[2, 0].item() if len(frames) else 0.0
    pct = (100.0 * counts[:2] / max(total, 1.0)).tolist()
    return {
        "frames": [int(n) for n in frames],
        "top1": pct[0],
        "top5": pct[1],
        "num_videos": int(total),
        # for each frame count: [model index, frame count of the sub-network used] per model used
        "served_by": [[[i, models[i].frame_counts[k] if models[i].frame_counts else n] for i, k in plan]
                      for n, plan in zip(frames, plans, strict=True)],
    }


def format_table(result: dict[str, Any], names: Sequence[str]) -> str:
    """The result as a fixed-width table (one row per frame count)."""
    served = ["+".join(f"{names[i]}@{f}f" for i, f in row) for row in result["served_by"]]
    width = max([len("served by"), *map(len, served)])
    lines = [f"{'frames':>6}  {'served by':<{width}}  {'top-1':>6}  {'top-5':>6}"]
    for n, s, t1, t5 in zip(result["frames"], served, result["top1"], result["top5"], strict=True):
        lines.append(f"{n:>6}  {s:<{width}}  {t1:6.2f}  {t5:6.2f}")
    lines.append(f"({result['num_videos']} videos)")
    return "\n".join(lines)


def plot(result: dict[str, Any], path: str | Path, title: str) -> None:
    """Accuracy-vs-frames PNG (matplotlib, Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(result["frames"], result["top1"], "o-", label="top-1")
    ax.plot(result["frames"], result["top5"], "s--", label="top-5", alpha=0.6)
    ax.set(xlabel="frames at inference", ylabel="accuracy (%)", title=title, xticks=result["frames"])
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


EXAMPLES = """\
examples:
  ffn-eval --ckpt runs/ffn/best.safetensors --frames 2 4 6 8 12 16 20 --plot acc.png
  ffn-eval --ckpt runs/st4/best.safetensors runs/st8/best.safetensors runs/st16/best.safetensors --frames 4 8 12 16
  ffn-eval --ckpt runs/st4/best.safetensors runs/st8/best.safetensors runs/st16/best.safetensors --ensemble
  ffn-eval --ckpt model.safetensors --dataset video --list val.txt --root /data/k400 --json
The dataset defaults to the validation list recorded in the first checkpoint by ffn-train.
"""


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="ffn-eval", description=__doc__.split("\n\n")[0], epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", nargs="+", required=True, help="checkpoint(s) (.safetensors)")
    p.add_argument("--frames", nargs="+", type=int, help="frame counts (default: the checkpoints' sub-networks)")
    p.add_argument("--ensemble", action="store_true", help="average the softmax of all checkpoints")
    p.add_argument("--plot", help="write a PNG of accuracy vs frames")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--dataset", choices=("frames", "video"), help="list kind (default: as recorded)")
    p.add_argument("--list", help="annotation list (default: the val list recorded in the checkpoint)")
    p.add_argument("--root", help="directory the list paths are relative to (default: as recorded)")
    p.add_argument("--template", help="frame file name template (default: as recorded, else {:05d}.jpg)")
    p.add_argument("--start-index", type=int, help="index of the first frame file (default: as recorded, else 1)")
    p.add_argument("--on-error", choices=("raise", "skip"), default="raise", help="bad video: raise or skip")
    p.add_argument("--batch-size", type=int, default=8, help="videos per batch (default: 8)")
    p.add_argument("--workers", type=int, default=usable_cpus(),
                   help="data-loader workers (default: the CPUs this process may use, here %(default)s)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: auto")
    return p


def _same_preprocessing(metas: Sequence[CheckpointMeta], paths: Sequence[str]) -> None:
    first = metas[0]
    for m, path in zip(metas[1:], paths[1:], strict=True):
        for field in ("class_names", "input_size", "resize_shorter", "mean", "std"):
            if getattr(m, field) != getattr(first, field):
                raise ConfigError(f"{path}: {field.replace('_', ' ')} differs from {paths[0]}; "
                                  f"checkpoints evaluated together must share classes and preprocessing")


def cli(argv: Sequence[str] | None = None) -> int:
    """``ffn-eval`` without the exit handling (errors raise FFNError)."""
    args = build_parser().parse_args(argv)
    if args.batch_size < 1 or args.workers < 0:
        raise ConfigError("--batch-size must be >= 1 and --workers >= 0")
    if args.plot:
        require_modules(("matplotlib",))  # before the evaluation, not after it
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda but no CUDA GPU is available")
    device = torch.device("cuda" if args.device != "cpu" and torch.cuda.is_available() else "cpu")
    loaded = [load_checkpoint(p) for p in args.ckpt]
    models, metas = [m.to(device) for m, _ in loaded], [meta for _, meta in loaded]
    _same_preprocessing(metas, args.ckpt)
    frames = sorted(set(args.frames or [n for m in models for n in m.frame_counts]))
    if not frames or frames[0] < 1:
        raise ConfigError(f"--frames must be positive, got {args.frames}")
    try:
        for n in frames:
            serving(models, n, args.ensemble)
    except ValueError as e:
        raise ConfigError(str(e)) from None

    from .data import DatasetError, VideoDataset
    from .data.synthetic_record import synthetic_val_set

    recorded = metas[0].extra.get("data", {})
    list_file, root = args.list or recorded.get("val_list"), args.root or recorded.get("root")
    if not (args.list or args.root) and "synthetic" in recorded:  # re-created here from its recorded parameters
        try:
            list_file, root = synthetic_val_set(recorded["synthetic"])
        except DatasetError as e:
            raise FFNError(f"{args.ckpt[0]}: {e}") from None
    if not list_file or not root:
        raise ConfigError(f"{args.ckpt[0]} records no validation set: give --list and --root")

    meta = metas[0]
    try:
        dataset = VideoDataset(
            list_file, root, kind=args.dataset or recorded.get("kind", "frames"), frame_counts=tuple(frames),
            train=False, input_size=meta.input_size, resize_shorter=meta.resize_shorter, mean=meta.mean,
            std=meta.std, template=args.template or recorded.get("template", "{:05d}.jpg"),
            start_index=args.start_index if args.start_index is not None else recorded.get("start_index", 1),
            on_error=args.on_error)
        if list(dataset.class_names) != list(meta.class_names):
            raise ConfigError(f"{list_file}: its classes differ from the checkpoint's {len(meta.class_names)} classes")
        loader = DataLoader(dataset, batch_size=args.batch_size, num_workers=args.workers)
        result = evaluate(models, loader, frames, ensemble=args.ensemble, desc="ffn-eval")
    except DatasetError as e:
        raise FFNError(str(e)) from None
    result["checkpoints"] = [str(p) for p in args.ckpt]
    result["ensemble"] = bool(args.ensemble)
    result["skipped"] = int(getattr(dataset, "skipped", 0))

    names = [Path(p).parent.name or Path(p).stem for p in args.ckpt]
    if len(set(names)) != len(names):
        names = [Path(p).stem for p in args.ckpt]
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for name, path, m in zip(names, args.ckpt, metas, strict=True):
            counts = "/".join(map(str, m.config.frame_counts))
            print(f"{name}: {path} ({m.extra.get('method', '?')}, {m.config.arch}, trained at {counts} frames)")
        print(format_table(result, names))
        if result["skipped"]:
            print(f"{result['skipped']} unreadable videos skipped", file=sys.stderr)
    if args.plot:
        label = "ensemble of " + ", ".join(names) if args.ensemble else ", ".join(names)
        plot(result, args.plot, label)
    return 0


def main() -> None:
    """Console entry point: a bad input is one line on stderr and exit code 2 (``run_cli``)."""
    run_cli("ffn-eval", cli)


if __name__ == "__main__":
    main()
