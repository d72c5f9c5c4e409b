"""ffn-train: train a Frame Flexible Network (paper §4.2) or one of the paper's baselines (§5.1).

Reads top to bottom like nanoGPT's train.py: the config, then distributed setup, data, model,
optimiser, the loop, checkpointing and logging — all in ``train(cfg)``.

Methods (``--method``)
  ffn           every batch sampled at L, M, H (same video); CE(p_H, y) + λ·Σ_k KL(p_H ‖ p_k)
  st            Separated Training at one frame count (``--frames``, default H); plain TSM
  mixed         trains at H; with probability ρ, 4 consecutive frames of v^H are mixed up with v^L
  proportional  each iteration trains at H with probability ρ, else at L
  finetune      starts from an ``--init`` checkpoint trained at H, trains at L (``--frames``)
Recipes (``--recipe``, docs/training/README.md): ``project`` (default: warm-up + cosine, classifier
as the rest) or ``paper`` (the authors': step schedule, classifier lr ×5/×10 and N(0, 0.001) init,
Kaiming fan-out Weight Alteration init, best epoch by 16-frame accuracy, batch 32); one table,
``ffn_edge.recipes.RECIPES``. FFN losses: ``--loss paper`` (above) or ``ce_td`` (CE on every
sub-network + the same distillation), ``--lam-ramp E`` (λ from 0 to --lam over E epochs).
Online mode: ``--shift causal`` trains the causal variant the step graphs run; ``--context MAX`` also
precedes each clip by up to MAX frames of other videos, state carried, and takes the loss on the label a
continuous stream gives (``train_context``).
Ensemble (paper §5.1) is an evaluation of several ST checkpoints: ``ffn-eval --ckpt a b c --ensemble``.
Ablations of FFN: --no-specialised-norm, --no-weight-alteration, --no-distill (CE on every
sub-network), --no-weight-sharing (three separate single-sub-network models trained jointly with
the same loss; saved as one ST-format checkpoint per frame count, ``last_f4.safetensors`` ...,
evaluated together with ``ffn-eval --ckpt best_f4... best_f8... best_f16...``, which serves each
frame count by the model trained at the nearest count).

Determinism and resume: every random stream (data order, augmentation, dropout, the baselines'
per-iteration draws) is re-seeded at the start of each epoch from (seed, epoch, rank), and the
learning rate is a pure function of the step. The training state at an epoch boundary is therefore
the weights, the optimiser state and the epoch number, all in ``last.safetensors`` (optimiser
state as extra tensors, its hyper-parameters as JSON metadata; nothing is pickled). ``--resume``
continues to the same weights as an uninterrupted run (same machine, same thread count).

Multi-GPU / multi-node: launch with ``torchrun`` (or ``python -m torch.distributed.run``); RANK,
WORLD_SIZE and LOCAL_RANK select the process group (NCCL on CUDA, Gloo on CPU). The three
sub-network forwards of a step run inside ONE call of the DDP-wrapped module (``MultiClip``) and
the summed loss gets one backward, so DDP sees every parameter used exactly once per step and
needs no ``find_unused_parameters``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import random
import resource
import sys
import time
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, DistributedSampler, Subset
from tqdm import tqdm

from .checkpoint import CheckpointError, CheckpointMeta, load_checkpoint, save_checkpoint
from .core import defaults as D
from .core import validate as V
from .core.argparsing import Parser, number, with_range
from .core.cpus import usable_cpus
from .core.errors import ConfigError, FFNError, run_cli
from .core.files import check_regular
from .evaluate import evaluate
from .importers.pretrained import create_model_pretrained, is_named
from .losses import ffn_loss
from .models import ModelConfig, VideoClassifier
from .recipes import RECIPES, init_model, param_groups, step_factor
from .train_context import draw_length, tail_logits, with_context
from .weights_load import load_init

METHODS = ("ffn", "st", "mixed", "proportional", "finetune")
LOSSES = ("paper", "ce_td")


def opt(default: Any, help: str, **kw: Any) -> Any:
    """A config field carrying its command-line help (and type/choices where not obvious)."""
    return dataclasses.field(default=default, metadata={"help": help, **kw})


@dataclasses.dataclass
class TrainConfig:
    # what to train
    method: str = opt("ffn", "training method", choices=METHODS)
    arch: str = opt("tsm_resnet18", "backbone: tsm_resnet18/34/50, tsm_mobilenetv2, tea_resnet50, uniformer_s, "
                    "slowfast_r50, x3d_s")
    width_mult: float = opt(1.0, "channel multiplier (small models for CPU experiments)")
    dropout: float = opt(0.5, "dropout before the classifier")
    drop_path: float = opt(0.0, "uniformer_s: stochastic depth, max rate (the authors: 0.1, dropout 0)")
    shift_div: int = opt(8, "temporal shift: 1/shift_div of the channels each way")
    shift: str = opt(V.DEFAULT_SHIFT, "temporal shift direction (causal: past frames only, runs online)",
                     choices=V.SHIFT_MODES)
    context: int = opt(0, "--shift causal: precede each clip by up to this many frames of other videos (length "
                       "drawn per batch, 0 included), shift state carried, loss on the last n frames' labels as an "
                       "online stream gives them (0: off; more than the network's shift layers only costs time)")
    frame_counts: tuple[int, ...] = opt(D.FRAME_COUNTS, "sub-network frame counts L M H")
    frames: int | None = opt(None, "trained frame count of st (default H) and finetune (default L)", type=int)
    rho: float = opt(0.5, "mixed: probability of mixing; proportional: probability of H frames")
    mix_alpha: float = opt(1.0, "mixed: mixup coefficient ~ Beta(alpha, alpha)")
    lam: float = opt(1.0, "weight λ of the distillation term")
    loss: str = opt("paper", "ffn loss: paper = CE on H + λ·KL(H‖k); ce_td = CE on every sub-network + λ·KL(H‖k)",
                    choices=LOSSES)
    lam_ramp: float = opt(0.0, "ffn: λ rises linearly from 0 over this many epochs (0: constant λ)")
    specialised_norm: bool = opt(True, "FFN ablation: share the normalisation layers")
    weight_alteration: bool = opt(True, "FFN ablation: no Weight Alteration")
    distill: bool = opt(True, "FFN ablation: CE on every sub-network instead of KL to H")
    weight_sharing: bool = opt(True, "FFN ablation: three separate models trained jointly")
    pretrained: str | None = opt(None, "ImageNet weights: a local state dict (torchvision names), or "
                                       "torchvision:resnet50 / timm:res2net50_26w_4s (the libraries' caches)", type=str)
    init: str | None = opt(None, "finetune: checkpoint trained at H to start from; ffn: an FFN checkpoint of the "
                           "same model to start from (the shift may differ: causal from bidirectional); st, mixed, "
                           "proportional: a checkpoint of the same model", type=str)
    partial_load: bool = opt(False, "--init/--pretrained: load the tensors that match and list the rest, instead "
                             "of refusing a checkpoint that does not fit")
    # data
    dataset: str = opt("synthetic", "dataset kind", choices=("synthetic", "frames", "video"))
    train_list: str | None = opt(None, "annotation list of the training set", type=str)
    val_list: str | None = opt(None, "annotation list of the validation set", type=str)
    root: str | None = opt(None, "directory the list paths are relative to", type=str)
    template: str = opt("{:05d}.jpg", "frame file name template (frame folders)")
    start_index: int = opt(1, "index of the first frame file")
    on_error: str = opt("raise", "a bad list line / unreadable frame: raise, or skip and count",
                        choices=("raise", "skip"))
    flip: bool = opt(False, "random horizontal flip (off for direction-sensitive labels)")
    input_size: int | None = opt(None, f"crop size (default {D.INPUT_SIZE}; synthetic: 7/8 of --synth-size)", type=int)
    resize_shorter: int | None = opt(
        None, f"shorter side before cropping (default {D.RESIZE_SHORTER}; synthetic: --synth-size)", type=int)
    data_dir: str | None = opt(None, "synthetic: where to generate it (default OUT/synthetic)", type=str)
    synth_classes: int = opt(10, "synthetic: number of classes (at most 10)")
    synth_train_per_class: int = opt(24, "synthetic: training videos per class")
    synth_val_per_class: int = opt(8, "synthetic: validation videos per class")
    synth_frames: int = opt(48, "synthetic: frames per video")
    synth_size: int = opt(64, "synthetic: frame size in pixels")
    synth_seed: int | None = opt(None, "synthetic: seed of the set (default --seed; give one to train several seeds "
                                 "on the same set)", type=int)
    # optimisation
    recipe: str = opt("project", "training recipe (docs/training/README.md): lr schedule, classifier lr and init, "
                      "Weight Alteration init, best-checkpoint metric, and defaults of the three options below",
                      choices=tuple(RECIPES))
    batch_size: int | None = opt(None, "videos per batch per process (default: the recipe's, 8 / paper 32)", type=int)
    lr: float | None = opt(None, "peak learning rate (default: the recipe's, 0.01)", type=float)
    warmup_epochs: float | None = opt(None, "linear warm-up length in epochs (default: the recipe's, 1 / paper 0)",
                                      type=float)
    epochs: int = opt(10, "number of epochs")
    workers: int = opt(usable_cpus(), "data-loader worker processes (default: the CPUs this process may use)")
    optimizer: str = opt("sgd", "optimiser", choices=("sgd", "adamw"))
    momentum: float = opt(0.9, "SGD momentum")
    weight_decay: float = opt(5e-4, "weight decay")
    min_lr: float = opt(0.0, "learning rate at the end of the cosine")
    clip_grad: float = opt(20.0, "gradient-norm clipping (0: off); without AMP only, unless --clip-grad-amp")
    clip_grad_amp: bool = opt(False, "also clip under --amp (the authors clip only without AMP)")
    amp: str = opt("none", "mixed precision (CUDA only)", choices=("none", "bf16", "fp16"))
    channels_last: bool = opt(False, "channels-last memory format (CUDA only)")
    cudnn_benchmark: bool = opt(False, "cuDNN autotuning (CUDA only): faster for fixed input sizes, not bit-exact")
    max_batches: int = opt(0, "stop each epoch after this many batches (0: all; quick runs)")
    # run
    device: str = opt("auto", "cpu, cuda or auto", choices=("auto", "cpu", "cuda"))
    out: str = opt("runs/ffn", "output directory")
    resume: bool = opt(False, "continue from OUT/last.safetensors")
    stop_after: int = opt(0, "stop after this many epochs in this invocation (0: no; preemptible jobs)")
    seed: int = opt(0, "random seed")
    tensorboard: bool = opt(False, "also log to TensorBoard (needs the tensorboard package)")
    quiet: bool = opt(False, "no progress bar")


# Options that may differ between a run and its --resume without changing the result ("out": a run
# directory that was moved or copied resumes from where it is now).
RESUME_FREE = {"resume", "stop_after", "quiet", "tensorboard", "workers", "device", "out", "cudnn_benchmark"}
PROGRESS_EVERY = 20  # steps between progress-bar loss updates: reading the loss waits for the GPU


class MultiClip(nn.Module):
    """Run sub-network ``subnets[i]`` on ``clips[i]`` in one call, so DDP sees one forward per step.

    With ``last`` (``--context``), clip i's logits are the mean of its last ``last[i]`` frames' logits
    (``train_context.tail_logits``): the frames before them are context, not part of the clip."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, clips: Sequence[torch.Tensor], subnets: Sequence[int],
                last: Sequence[int] | None = None) -> list[torch.Tensor]:
        if last is None:
            return [self.model(c, subnet=k) for c, k in zip(clips, subnets, strict=True)]
        shared = not isinstance(self.model, Unshared)
        return [tail_logits(self.model if shared else self.model.members[k], c, k if shared else 0, n)
                for c, k, n in zip(clips, subnets, last, strict=True)]


class Unshared(nn.Module):
    """--no-weight-sharing: one single-sub-network model per frame count behind the FFN interface."""

    def __init__(self, members: Sequence[VideoClassifier]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, clip: torch.Tensor, subnet: int) -> torch.Tensor:
        return self.members[subnet](clip)


def lr_at(step: int, total: int, warmup: int, cfg: TrainConfig) -> float:
    """Linear warm-up to cfg.lr, then the recipe's schedule: cosine decay to cfg.min_lr, or ×0.1 at each
    milestone epoch (a pure function of the step; ``cfg`` resolved, ``total`` = epochs × steps per epoch)."""
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    recipe = RECIPES[cfg.recipe]
    if recipe.schedule == "step":
        return cfg.lr * step_factor(recipe, step * cfg.epochs // max(1, total), cfg.epochs)
    progress = (step - warmup) / max(1, total - warmup)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1.0 + math.cos(math.pi * min(1.0, progress)))


def lam_at(step: int, steps_per_epoch: int, cfg: TrainConfig) -> float:
    """λ of the distillation term at ``step``: ``--lam``, or with ``--lam-ramp E`` rising linearly from
    ~0 to ``--lam`` over the first E epochs (a teacher that has not learned yet is not worth copying)."""
    if not cfg.lam_ramp:
        return cfg.lam
    return cfg.lam * min(1.0, (step + 1) / (cfg.lam_ramp * steps_per_epoch))


def stop_if_not_finite(loss: float, epoch: int, batch: int, ddp: bool, device: torch.device, scaled: bool) -> None:
    """Stop at the first non-finite loss (before the step), so NaN weights are never saved.

    Under DDP every rank learns that one rank stopped (no rank waits forever in an all-reduce). With
    fp16 loss scaling an overflow is expected now and then: GradScaler skips that step itself."""
    bad = not math.isfinite(loss)
    if ddp:
        flag = torch.tensor([float(bad)], device=device)
        dist.all_reduce(flag)
        bad = bool(flag.item())
    if bad and not scaled:
        raise FFNError(f"training stopped: the loss is {loss} at epoch {epoch + 1}, batch {batch + 1} "
                       "(lower --lr or check the data); nothing from this epoch was saved")


def seed_epoch(seed: int, epoch: int, rank: int) -> int:
    """Seed every global RNG for one epoch of one process; returns the seed for local generators."""
    s = (seed * 1_000_003 + epoch * 1_009 + rank) % 2**31
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)
    return s


def mix_low_into_high(high: torch.Tensor, low: torch.Tensor, lam: float, start: int) -> torch.Tensor:
    """Mixed Sampling (§5.1): frames [start, start+T_L) of v^H become lam·v^L + (1-lam)·v^H'."""
    out = high.clone()
    t = low.shape[1]
    out[:, start : start + t] = lam * low + (1.0 - lam) * high[:, start : start + t]
    return out


def optimizer_tensors(optim: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Optimiser state as tensors (``optimizer.<param>.<key>``) plus JSON for the rest."""
    sd = optim.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for idx, state in sd["state"].items():
        for key, v in state.items():
            if isinstance(v, torch.Tensor):
                tensors[f"optimizer.{idx}.{key}"] = v
            else:
                scalars[f"{idx}.{key}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def load_optimizer_tensors(optim: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], info: dict) -> None:
    """Inverse of ``optimizer_tensors``."""
    state: dict[int, dict[str, Any]] = {}
    items = [(k.removeprefix("optimizer."), v) for k, v in tensors.items() if k.startswith("optimizer.")]
    for name, v in items + list(info["scalars"].items()):
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = v
    optim.load_state_dict({"state": state, "param_groups": info["param_groups"]})


def resolve(cfg: TrainConfig) -> TrainConfig:
    """Fill method-dependent defaults and reject bad combinations with a one-line ConfigError."""
    try:
        V.check_fields(cfg, V.TRAIN_RANGES)  # finite and in range, also for a TrainConfig built in Python
    except ValueError as e:
        raise ConfigError(str(e)) from None
    counts = tuple(sorted(set(cfg.frame_counts)))
    if len(counts) != len(cfg.frame_counts) or counts[0] < 1:
        raise ConfigError(f"--frame-counts must be distinct positive numbers, got {list(cfg.frame_counts)}")
    frames = cfg.frames
    if cfg.method == "st" and frames is None:
        frames = counts[-1]
    if cfg.method == "finetune":
        frames = counts[0] if frames is None else frames
        if cfg.init is None:
            raise ConfigError("--method finetune needs --init CHECKPOINT (a model trained at H frames)")
    if frames is not None and frames < 1:
        raise ConfigError(f"--frames must be >= 1, got {frames}")
    if cfg.method in ("mixed", "proportional") and len(counts) < 2:
        raise ConfigError(f"--method {cfg.method} needs two frame counts (L and H)")
    if not 0.0 <= cfg.rho <= 1.0:
        raise ConfigError(f"--rho must be in [0, 1], got {cfg.rho}")
    ablations = not (cfg.specialised_norm and cfg.weight_alteration and cfg.distill and cfg.weight_sharing)
    if ablations and cfg.method != "ffn":
        raise ConfigError("--no-specialised-norm/--no-weight-alteration/--no-distill/--no-weight-sharing "
                          "are ablations of --method ffn")
    for name in ("epochs", "synth_classes", "synth_train_per_class", "synth_val_per_class"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(cfg, name)}")
    if cfg.workers < 0 or cfg.max_batches < 0 or cfg.stop_after < 0:
        raise ConfigError("--workers/--max-batches/--stop-after must be >= 0")
    if cfg.dataset != "synthetic" and not (cfg.train_list and cfg.val_list and cfg.root):
        raise ConfigError(f"--dataset {cfg.dataset} needs --train-list, --val-list and --root")
    for path in (cfg.pretrained, cfg.init):
        if path is not None and not is_named(path):
            check_regular(Path(path), ConfigError, follow_symlinks=True)  # not found / FIFO / directory: one line
    synthetic = cfg.dataset == "synthetic"
    recipe = RECIPES[cfg.recipe]
    cfg = dataclasses.replace(
        cfg, batch_size=recipe.batch_size if cfg.batch_size is None else cfg.batch_size,
        lr=recipe.lr if cfg.lr is None else cfg.lr,
        warmup_epochs=recipe.warmup_epochs if cfg.warmup_epochs is None else cfg.warmup_epochs)
    if cfg.batch_size < 1 or cfg.lr <= 0 or cfg.warmup_epochs < 0 or cfg.lam_ramp < 0:
        raise ConfigError("--batch-size must be >= 1, --lr > 0, --warmup-epochs and --lam-ramp >= 0")
    if cfg.method != "ffn" and (cfg.loss != "paper" or cfg.lam_ramp):
        raise ConfigError("--loss/--lam-ramp apply to --method ffn")
    if cfg.context and cfg.shift != "causal":
        raise ConfigError("--context needs --shift causal (a bidirectional model cannot carry state between frames)")
    return dataclasses.replace(
        cfg,
        frame_counts=counts,
        frames=frames,
        input_size=cfg.input_size or (cfg.synth_size * 7 // 8 if synthetic else D.INPUT_SIZE),
        resize_shorter=cfg.resize_shorter or (cfg.synth_size if synthetic else D.RESIZE_SHORTER),
    )


def plan(cfg: TrainConfig) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(frame counts each training item carries, frame counts of the trained model's sub-networks)."""
    fc = cfg.frame_counts
    if cfg.method == "ffn":
        return fc, fc
    if cfg.method in ("st", "finetune"):
        return (cfg.frames,), (cfg.frames,)
    return (fc[0], fc[-1]), (fc[-1],)  # mixed / proportional: load L and H, train a model at H


def build_models(cfg: TrainConfig, num_classes: int,
                 model_counts: tuple[int, ...]) -> tuple[list[ModelConfig], list[VideoClassifier]]:
    """The trained model (or, without weight sharing, one model per frame count) and its config."""
    flexible = cfg.method == "ffn" and cfg.weight_sharing  # baselines and unshared members: plain TSM
    per_model = [(n,) for n in model_counts] if cfg.method == "ffn" and not cfg.weight_sharing else [model_counts]
    try:
        configs = [ModelConfig(cfg.arch, num_classes, frame_counts=counts, dropout=cfg.dropout,
                               shift_div=cfg.shift_div, shift=cfg.shift, width_mult=cfg.width_mult,
                               drop_path=cfg.drop_path,
                               specialised_norm=flexible and cfg.specialised_norm,
                               weight_alteration=flexible and cfg.weight_alteration)
                   for counts in per_model]
        models = [create_model_pretrained(c, cfg.pretrained, partial=cfg.partial_load) for c in configs]
        for m in models:
            init_model(m, m.classifier_head(), RECIPES[cfg.recipe])
    except (ValueError, FileNotFoundError) as e:  # unknown architecture, bad frame counts, missing weights
        raise ConfigError(str(e)) from None
    if cfg.method == "ffn" and cfg.init is not None:
        _init_ffn(cfg, models[0], configs[0])
    if cfg.method == "finetune":
        init, init_meta = load_checkpoint(cfg.init)
        if len(init.frame_counts) != 1 or init_meta.config.specialised_norm or init_meta.config.weight_alteration:
            raise ConfigError(f"{cfg.init}: --init must be a single-sub-network (st) checkpoint")
        # the point of finetune: a model trained at H starts training at L
        load_init(models[0], configs[0], cfg.init, partial=cfg.partial_load, ignore=("frame_counts",))
    elif cfg.method != "ffn" and cfg.init is not None:  # st, mixed, proportional: the same model
        load_init(models[0], configs[0], cfg.init, partial=cfg.partial_load)
    return configs, models


def _init_ffn(cfg: TrainConfig, model: VideoClassifier, config: ModelConfig) -> None:
    """``--init`` for FFN: every weight from an FFN checkpoint of the same model (shift direction aside).

    The shift moves activations, not weights, so a causal model can start from a bidirectional one
    (what online mode's causal variant of a trained model is fine-tuned from).
    """
    if not cfg.weight_sharing:
        raise ConfigError("--init with --method ffn needs weight sharing (one model to load)")
    load_init(model, config, cfg.init, partial=cfg.partial_load)


def synthetic_params(cfg: TrainConfig) -> dict[str, int]:
    """The ``make_synthetic`` arguments of ``--dataset synthetic`` (recorded beside the set it wrote)."""
    return {"num_classes": cfg.synth_classes, "train_per_class": cfg.synth_train_per_class,
            "val_per_class": cfg.synth_val_per_class, "frames": cfg.synth_frames, "size": cfg.synth_size,
            "seed": cfg.seed if cfg.synth_seed is None else cfg.synth_seed}


def build_data(cfg: TrainConfig, out: Path, item_counts: tuple[int, ...], val_counts: tuple[int, ...],
               master: bool, ddp: bool) -> tuple[Any, Any, list[str], dict[str, Any]]:
    """Train and val datasets, class names, and how to find the val set again (for ffn-eval)."""
    from .data import VideoDataset, make_synthetic
    from .data.synthetic_record import read_synthetic_record, val_spec

    kind, train_list, val_list, root = cfg.dataset, cfg.train_list, cfg.val_list, cfg.root
    if kind == "synthetic":
        data_dir = Path(cfg.data_dir or out / "synthetic")
        record = data_dir / "synthetic.json"  # what make_synthetic returned, so it is generated once
        params = synthetic_params(cfg)
        if master and not record.is_file():
            s = make_synthetic(data_dir, **params,
                               progress_desc=None if cfg.quiet else f"synthetic set ({data_dir})")
            record.write_text(json.dumps({"root": str(s.root), "train_list": str(s.train_list),
                                          "val_list": str(s.val_list), "params": params}))
        if ddp:
            dist.barrier()
        s = read_synthetic_record(record, params)
        kind, train_list, val_list, root = "frames", s["train_list"], s["val_list"], s["root"]
    common = dict(kind=kind, input_size=cfg.input_size, resize_shorter=cfg.resize_shorter, mean=D.IMAGENET_MEAN,
                  std=D.IMAGENET_STD, template=cfg.template, start_index=cfg.start_index, on_error=cfg.on_error,
                  seed=cfg.seed)
    train_set = VideoDataset(train_list, root, frame_counts=item_counts, train=True, flip=cfg.flip, **common)
    val_set = VideoDataset(val_list, root, frame_counts=val_counts, train=False, **common)
    if list(train_set.class_names) != list(val_set.class_names):
        raise ConfigError(f"{train_list} and {val_list} have different class lists")
    data = {"kind": kind, "val_list": str(Path(val_list).resolve()), "root": str(Path(root).resolve()),
            "template": cfg.template, "start_index": cfg.start_index}
    if cfg.dataset == "synthetic":  # its parameters, not this machine's paths: ffn-eval re-creates it anywhere
        p = synthetic_params(cfg)
        data = {"kind": "frames", "synthetic": val_spec(p["num_classes"], p["val_per_class"], p["frames"], p["size"],
                                                        p["seed"])}
    return train_set, val_set, list(train_set.class_names), data


def init_distributed(use_cuda: bool, local_rank: int, ddp: bool) -> torch.device:
    """This process's device, selected BEFORE joining the process group and bound to it (``device_id``).

    Unbound, NCCL's first collective guesses the GPU as ``global rank % visible GPUs``, which is not
    LOCAL_RANK's GPU on multi-node runs with uneven GPU counts or one visible GPU per process."""
    device = torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if ddp and use_cuda:
        dist.init_process_group(backend="nccl", device_id=device)
    elif ddp:
        dist.init_process_group(backend="gloo")
    return device


def to_channels_last(net: nn.Module) -> nn.Module:
    """Channels-last weights: ``channels_last`` for 4-D (2-D convolutions), ``channels_last_3d`` for 5-D
    (the 3-D convolutions of TEA's ME, UniFormer, SlowFast, X3D); ``Module.to`` takes one format only."""
    formats = {4: torch.channels_last, 5: torch.channels_last_3d}
    for t in [*net.parameters(), *net.buffers()]:
        if t.dim() in formats:
            t.data = t.data.contiguous(memory_format=formats[t.dim()])
    return net


def clips_gradients(cfg: TrainConfig, amp_dtype: torch.dtype | None) -> bool:
    """Whether a step clips at ``--clip-grad``: always without AMP; under AMP only with ``--clip-grad-amp``
    (the authors' code clips only without AMP, and their runs use AMP: by default we do the same)."""
    return cfg.clip_grad > 0 and (amp_dtype is None or cfg.clip_grad_amp)


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train as ``cfg`` says; returns the last epoch's log record (rank 0's view)."""
    cfg = resolve(cfg)
    out = Path(cfg.out)

    # ---- distributed: one process per GPU (or several CPU processes), set up by torchrun ----
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    use_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    if use_cuda and not torch.cuda.is_available():
        raise ConfigError("--device cuda but no CUDA GPU is available")
    ddp = world > 1 or "TORCHELASTIC_RUN_ID" in os.environ  # a one-process torchrun is DDP too (checkable on 1 GPU)
    device = init_distributed(use_cuda, local_rank, ddp)
    master = rank == 0
    made_out = master and not out.exists()
    try:
        return _train(cfg, out, rank, world, device, master, ddp)
    except BaseException:
        if made_out:  # a run refused before it wrote anything leaves no empty --out behind (rmdir: empty only)
            with contextlib.suppress(OSError):
                out.rmdir()
        raise
    finally:
        if ddp:
            dist.destroy_process_group()


def _train(cfg: TrainConfig, out: Path, rank: int, world: int, device: torch.device, master: bool,
           ddp: bool) -> dict[str, Any]:
    use_cuda = device.type == "cuda"
    item_counts, model_counts = plan(cfg)
    val_counts = tuple(sorted(set(cfg.frame_counts) | set(model_counts)))
    target_counts = model_counts if cfg.method in ("st", "finetune") else cfg.frame_counts  # best = their mean
    if RECIPES[cfg.recipe].select == "highest":  # the authors pick the best epoch by 16-frame accuracy
        target_counts = target_counts[-1:]
    if master:
        out.mkdir(parents=True, exist_ok=True)

    # ---- data ----
    train_set, val_set, class_names, data_info = build_data(cfg, out, item_counts, val_counts, master, ddp)
    sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed)
    loader_gen = torch.Generator()
    train_loader = DataLoader(train_set, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.workers,
                              pin_memory=use_cuda, generator=loader_gen, persistent_workers=False)
    val_shard = Subset(val_set, range(rank, len(val_set), world))  # no padding: metrics count each video once
    val_loader = DataLoader(val_shard, batch_size=cfg.batch_size, num_workers=cfg.workers, pin_memory=use_cuda)
    if len(train_loader) == 0 or len(val_set) == 0:
        raise ConfigError("the training or validation set is empty")

    # ---- model (same initial weights on every rank) ----
    seed_epoch(cfg.seed, 0, 0)
    configs, members = build_models(cfg, len(class_names), model_counts)
    net: nn.Module = members[0] if len(members) == 1 else Unshared(members)
    net.to(device)
    if cfg.channels_last and use_cuda:
        to_channels_last(net)
    if use_cuda:
        torch.backends.cudnn.benchmark = cfg.cudnn_benchmark
    step_net: nn.Module = MultiClip(net)
    if ddp:
        step_net = DDP(step_net, device_ids=[device.index] if use_cuda else None)
    suffixes = [""] if len(members) == 1 else [f"_f{n}" for n in model_counts]

    # ---- optimiser, schedule, precision ----
    groups = param_groups(net, [m.classifier_head() for m in members], RECIPES[cfg.recipe], cfg.weight_decay)
    if cfg.optimizer == "sgd":
        optim: torch.optim.Optimizer = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    else:
        optim = torch.optim.AdamW(groups, lr=cfg.lr)
    steps_per_epoch = len(train_loader) if not cfg.max_batches else min(cfg.max_batches, len(train_loader))
    total_steps, warmup_steps = cfg.epochs * steps_per_epoch, round(cfg.warmup_epochs * steps_per_epoch)
    if master and not use_cuda and (cfg.amp != "none" or cfg.channels_last):
        print("ffn-train: --amp/--channels-last apply on CUDA only; training in fp32 on CPU", file=sys.stderr)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.amp) if use_cuda else None
    autocast = (lambda: torch.autocast("cuda", dtype=amp_dtype)) if amp_dtype else nullcontext
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    clip = clips_gradients(cfg, amp_dtype)

    # ---- resume ----
    start_epoch, best = 0, -1.0
    if cfg.resume:
        start_epoch, best = _resume(cfg, out, members, suffixes, optim, scaler)
    log_path = out / "log.jsonl"
    if master:  # drop log lines of epochs that will run again (a crash between log and checkpoint)
        lines = log_path.read_text().splitlines() if log_path.is_file() else []
        log_path.write_text("".join(f"{s}\n" for s in lines if json.loads(s)["epoch"] <= start_epoch))
    writer = _tensorboard(out) if cfg.tensorboard and master else None

    record: dict[str, Any] = {}
    for epoch in range(start_epoch, cfg.epochs):
        if cfg.stop_after and epoch - start_epoch >= cfg.stop_after:
            break
        # ---- one epoch of training ----
        local_seed = seed_epoch(cfg.seed, epoch, rank)
        sampler.set_epoch(epoch)
        loader_gen.manual_seed(local_seed)  # worker seeds
        if hasattr(train_set, "set_epoch"):
            train_set.set_epoch(epoch)
        draw = np.random.default_rng(local_seed)  # the baselines' per-iteration choices
        context_draw = np.random.default_rng((local_seed, 1))  # --context lengths: apart, so draw's stream stays
        net.train()
        t0 = time.perf_counter()
        loss_sum = torch.zeros(2, dtype=torch.float64, device=device)
        bar = tqdm(train_loader, total=steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
                   disable=cfg.quiet or not master or not sys.stderr.isatty())
        for it, (clips, labels) in enumerate(bar):
            if it >= steps_per_epoch:
                break
            lr = lr_at(epoch * steps_per_epoch + it, total_steps, warmup_steps, cfg)
            for g in optim.param_groups:
                g["lr"] = lr * g.get("lr_mult", 1.0)  # older checkpoints have no lr_mult
            lam = lam_at(epoch * steps_per_epoch + it, steps_per_epoch, cfg)
            clips = [c.to(device, non_blocking=True) for c in clips]
            labels = labels.to(device, non_blocking=True)
            if cfg.method == "mixed":  # clips = (v^L, v^H); train at H
                low, high = clips
                if draw.random() < cfg.rho:
                    start = int(draw.integers(0, high.shape[1] - low.shape[1] + 1))
                    high = mix_low_into_high(high, low, float(draw.beta(cfg.mix_alpha, cfg.mix_alpha)), start)
                clips = [high]
            elif cfg.method == "proportional":  # clips = (v^L, v^H); H with probability rho
                clips = [clips[1] if draw.random() < cfg.rho else clips[0]]
            last = None
            if cfg.context:  # clips preceded by other videos' frames; the loss on the last n frames' labels
                length = draw_length(context_draw, cfg.context)
                last = [c.shape[1] for c in clips]
                clips = [with_context(c, length) for c in clips]
            with autocast():
                logits = step_net(clips, tuple(range(len(clips))), last)
                loss = ffn_loss(logits, labels, lam=lam, distill=cfg.distill, ce_all=cfg.loss == "ce_td")
            # The finite check reads the loss on the host, which waits for the GPU: every PROGRESS_EVERY steps,
            # and the epoch's summed loss (below) before anything of the epoch is saved. A NaN step in between
            # turns the weights, hence every later loss and the sum, NaN too.
            read = loss.item() if (it + 1) % PROGRESS_EVERY == 0 else None  # one host read: the check and the bar
            if read is not None:
                stop_if_not_finite(read, epoch, it, ddp, device, scaler.is_enabled())
            optim.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if clip:
                scaler.unscale_(optim)
                nn.utils.clip_grad_norm_(net.parameters(), cfg.clip_grad)
            scaler.step(optim)
            scaler.update()
            loss_sum[0] += loss.detach() * len(labels)  # on the device: no host sync per step
            loss_sum[1] += len(labels)
            if not bar.disable and read is not None:
                bar.set_postfix(loss=f"{read:.3f}", lr=f"{lr:.2e}")
        bar.close()
        train_time = time.perf_counter() - t0

        # ---- validation (each rank its shard; counts summed across ranks inside evaluate) ----
        t1 = time.perf_counter()
        val = evaluate(members, val_loader, val_counts)
        if ddp:
            dist.all_reduce(loss_sum)
        loss_total, loss_count = loss_sum.tolist()  # one host read per epoch
        stop_if_not_finite(loss_total, epoch, it, ddp, device, scaler.is_enabled())  # the steps between two checks
        top1 = dict(zip(val["frames"], val["top1"], strict=True))
        metric = float(np.mean([top1[n] for n in target_counts]))
        record = {
            "epoch": epoch + 1, "lr": lr, "train_loss": loss_total / loss_count,
            "val_top1": {str(n): v for n, v in top1.items()},
            "val_top5": {str(n): v for n, v in zip(val["frames"], val["top5"], strict=True)},
            "train_time": train_time, "val_time": time.perf_counter() - t1, "time": time.perf_counter() - t0,
            "peak_mem_mb": _peak_mem_mb(device), "ddp": ddp,
        }

        # ---- log and checkpoint (rank 0 only) ----
        if master:
            with log_path.open("a") as f:
                f.write(json.dumps(record) + "\n")
            if writer is not None:
                writer.add_scalar("train/loss", record["train_loss"], epoch + 1)
                writer.add_scalar("train/lr", lr, epoch + 1)
                for n, v in top1.items():
                    writer.add_scalar(f"val/top1_{n}f", v, epoch + 1)
            is_best = metric > best
            best = max(best, metric)
            state = {"method": cfg.method, "epoch": epoch + 1, "best_top1": best, "val_top1": record["val_top1"],
                     "train_config": dataclasses.asdict(cfg), "data": data_info}
            _save(out, "last", configs, members, suffixes, class_names, cfg, state, optim, scaler)
            if is_best:
                _save(out, "best", configs, members, suffixes, class_names, cfg, state)
            if not cfg.quiet:
                accs = " ".join(f"{n}f {v:.1f}" for n, v in top1.items())
                print(f"epoch {epoch + 1}/{cfg.epochs} loss {record['train_loss']:.4f} lr {lr:.2e} "
                      f"top-1 {accs} ({train_time:.1f}s)", flush=True)
    if writer is not None:
        writer.close()
    return record


def _save(out: Path, stem: str, configs: Sequence[ModelConfig], members: Sequence[VideoClassifier],
          suffixes: Sequence[str], class_names: list[str], cfg: TrainConfig, state: dict[str, Any],
          optim: torch.optim.Optimizer | None = None, scaler: torch.amp.GradScaler | None = None) -> None:
    """Write one checkpoint per member; the first member's file carries the optimiser state and is
    written last, so its epoch number marks a complete set (checked by ``_resume``)."""
    for i in reversed(range(len(members))):
        extra, tensors = dict(state), None
        if optim is not None and i == 0:
            tensors, extra["optimizer"] = optimizer_tensors(optim)
            extra["scaler"] = scaler.state_dict() if scaler is not None and scaler.is_enabled() else None
        meta = CheckpointMeta(configs[i], class_names, input_size=cfg.input_size, resize_shorter=cfg.resize_shorter,
                              mean=D.IMAGENET_MEAN, std=D.IMAGENET_STD, extra=extra)
        save_checkpoint(out / f"{stem}{suffixes[i]}.safetensors", members[i], meta, extra_tensors=tensors)


def _resume(cfg: TrainConfig, out: Path, members: Sequence[VideoClassifier], suffixes: Sequence[str],
            optim: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> tuple[int, float]:
    """Load OUT/last*.safetensors into the models and optimiser; returns (next epoch, best metric).

    With nothing to resume yet (no ``last`` checkpoint) the run starts from epoch 0, so a wrapper
    may always pass ``--resume``.
    """
    first = out / f"last{suffixes[0]}.safetensors"
    if not os.path.lexists(first):
        print(f"ffn-train: --resume: nothing to resume in {out} yet ({first.name} not found); starting a new run",
              file=sys.stderr)
        return 0, -1.0
    _, meta, tensors = load_checkpoint(first, with_extra=True)
    extra = meta.extra
    old = {k: v for k, v in extra.get("train_config", {}).items() if k not in RESUME_FREE}
    old.setdefault("shift", V.DEFAULT_SHIFT)  # runs saved before the option existed were bidirectional
    old.setdefault("partial_load", False)  # runs saved before the option existed
    old.setdefault("synth_seed", None)  # runs saved before the option existed made the set with --seed
    old.setdefault("context", 0)  # runs saved before --context existed trained on clips alone
    for k, v in (("recipe", "project"), ("loss", "paper"), ("lam_ramp", 0.0)):  # runs saved before recipes existed
        old.setdefault(k, v)
    new = {k: v for k, v in json.loads(json.dumps(dataclasses.asdict(cfg))).items() if k not in RESUME_FREE}
    changed = sorted(k for k in new if old.get(k) != new[k])
    if changed:
        raise ConfigError(f"--resume: options differ from the run in {out}: {', '.join(changed)} "
                          f"(--resume takes the run's options: drop the flags that change them)")
    for member, suffix in zip(members, suffixes, strict=True):
        path = out / f"last{suffix}.safetensors"
        loaded, m = load_checkpoint(path)
        if m.extra.get("epoch") != extra["epoch"]:
            raise CheckpointError(f"{path}: epoch {m.extra.get('epoch')} but {first} is at epoch {extra['epoch']} "
                                  f"(interrupted while saving; restore a consistent set)")
        member.load_state_dict(loaded.state_dict())
    load_optimizer_tensors(optim, tensors, extra["optimizer"])
    if extra.get("scaler"):
        scaler.load_state_dict(extra["scaler"])
    return int(extra["epoch"]), float(extra["best_top1"])


def _peak_mem_mb(device: torch.device) -> float:
    """Peak memory of this process: CUDA allocator peak on GPU, peak RSS on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


def _tensorboard(out: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        print("ffn-train: --tensorboard: the tensorboard package is not installed; logging to log.jsonl only",
              file=sys.stderr)
        return None
    return SummaryWriter(str(out / "tensorboard"))


EXAMPLES = """\
examples:
  ffn-train --out runs/ffn                                    # FFN on the built-in synthetic set
  ffn-train --method st --frames 4 --out runs/st4             # Separated Training at 4 frames
  ffn-train --method mixed --rho 0.5 --out runs/mixed
  ffn-train --method finetune --init runs/st16/best.safetensors --out runs/ft
  ffn-train --no-distill --out runs/ffn-ce                    # ablation
  ffn-train --recipe paper --epochs 50 --out runs/ffn-paper   # the authors' recipe (batch 32, step lr)
  ffn-train --loss ce_td --lam-ramp 10 --out runs/ffn-cetd    # CE on every sub-network + ramped distillation
  ffn-train --dataset frames --root /data/sthv1 --train-list train.txt --val-list val.txt \\
      --arch tsm_resnet50 --pretrained resnet50.pth --batch-size 32 --epochs 50 --device cuda --amp bf16
  torchrun --nproc_per_node 4 -m ffn_edge.train --dataset video ...   # multi-GPU (DDP)
  ffn-train --shift causal --context 8 --init runs/ffn/best.safetensors --out runs/causal   # for online mode
  ffn-train --out runs/ffn --resume                           # continue an interrupted run
"""


def build_parser() -> argparse.ArgumentParser:
    """One command-line flag per TrainConfig field (booleans that default on get a --no- flag)."""
    p = Parser(prog="ffn-train", description="\n\n".join(__doc__.split("\n\n")[0:3:2]),
                                epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in dataclasses.fields(TrainConfig):
        flag, meta = "--" + f.name.replace("_", "-"), f.metadata
        if isinstance(f.default, bool):
            if f.default:
                p.add_argument("--no-" + flag[2:], dest=f.name, action="store_false", help=meta["help"])
            else:
                p.add_argument(flag, action="store_true", help=meta["help"])
        elif isinstance(f.default, tuple):
            kind, lo, hi, lo_open = V.TRAIN_RANGES[f.name]
            p.add_argument(flag, nargs="+", type=number(kind, lo, hi, lo_open), default=f.default,
                           help=f"{with_range(meta['help'], lo, hi, lo_open)} "
                                f"(default: {' '.join(map(str, f.default))})")
        else:
            shown = "" if f.default is None and "default" in meta["help"] else f" (default: {f.default})"
            kind, help_text = meta.get("type", type(f.default)), meta["help"]
            if f.name in V.TRAIN_RANGES:
                kind, lo, hi, lo_open = V.TRAIN_RANGES[f.name]
                kind, help_text = number(kind, lo, hi, lo_open), with_range(help_text, lo, hi, lo_open)
            p.add_argument(flag, type=kind, default=f.default, choices=meta.get("choices"), help=help_text + shown)
    return p


def cli(argv: Sequence[str] | None = None) -> int:
    """``ffn-train`` without the exit handling: parse, train, return 0 (errors raise FFNError)."""
    args = build_parser().parse_args(argv)
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in vars(args).items()}
    if args.resume:  # the run's saved options, then the flags given now
        from .train_resume import given_flags, resume_values, saved_options

        given = given_flags(build_parser(), argv, values)
        values = resume_values(values, given, saved_options(Path(args.out)), RESUME_FREE)
    cfg = TrainConfig(**values)
    from .data import DatasetError

    try:
        train(cfg)
    except DatasetError as e:
        if isinstance(e, FFNError):
            raise
        raise FFNError(str(e)) from None
    return 0


def main() -> None:
    """Console entry point: a bad input is one line on stderr and exit code 2 (``run_cli``)."""
    run_cli("ffn-train", cli)


if __name__ == "__main__":
    main()
