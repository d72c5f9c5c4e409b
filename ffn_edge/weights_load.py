"""``--init`` and ``--pretrained``: load weights into a model and say what loaded and what did not.

A checkpoint that does not fit (other architecture, frame counts, classes, shift setting, tensor
shapes) is refused with one line listing the differences, unless the user asks for a partial load
(``--partial-load``): then the tensors whose names and shapes match are loaded and the rest are
listed. The one conversion taken without asking is the documented one: a bidirectional checkpoint
as the start of a causal model (the shift moves activations, not weights).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from .core.errors import ConfigError

# ModelConfig fields whose difference changes what the weights mean
CONFIG_FIELDS = ("arch", "num_classes", "frame_counts", "shift", "shift_div", "width_mult", "specialised_norm",
                 "weight_alteration")
PARTIAL_HINT = "pass --partial-load to load only the tensors whose names and shapes match"


@dataclasses.dataclass
class LoadSummary:
    """What a load took and what it left out (names)."""

    loaded: int
    total: int
    missing: list[str]  # in the model, not (usably) in the file
    unexpected: list[str]  # in the file, not in the model
    mismatched: list[str]  # in both, different shape

    def skipped(self) -> str:
        parts = [f"{len(v)} {k} ({', '.join(v[:3])}{', ...' if len(v) > 3 else ''})"
                 for k, v in (("missing", self.missing), ("unexpected", self.unexpected),
                              ("shape-mismatched", self.mismatched)) if v]
        return "; ".join(parts) if parts else "nothing"


def config_differences(have: object, want: object, ignore: Iterable[str] = ()) -> list[str]:
    """``field: checkpoint X, this run Y`` for each ModelConfig field that differs (bidirectional ->
    causal is a conversion, not a difference)."""
    out = []
    for name in CONFIG_FIELDS:
        if name in ignore:
            continue
        a, b = getattr(have, name, None), getattr(want, name, None)
        if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
            a, b = list(a), list(b)
        if name == "shift" and (a, b) == ("bidirectional", "causal"):
            continue
        if a != b:
            out.append(f"{name.replace('_', ' ')}: checkpoint {a}, this run {b}")
    return out


def compare_state(model: nn.Module, state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], LoadSummary]:
    """The tensors of ``state`` that fit ``model`` (same name and shape) and a summary of the rest."""
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    summary = LoadSummary(
        loaded=len(usable), total=len(own),
        missing=sorted(k for k in own if k not in usable and not k.endswith("num_batches_tracked")),
        unexpected=sorted(k for k in state if k not in own),
        mismatched=sorted(k for k in state if k in own and own[k].shape != state[k].shape))
    return usable, summary


def say(text: str) -> None:
    """One line on stderr, from the first process only (every DDP rank loads the same)."""
    if os.environ.get("RANK", "0") == "0":
        print(f"ffn-train: {text}", file=sys.stderr)


def load_init(model: nn.Module, want_config: object, path: str | Path, *, partial: bool,
              ignore: Iterable[str] = ()) -> LoadSummary:
    """``--init``: every weight of ``model`` from the checkpoint at ``path``, or a ConfigError."""
    from .checkpoint import load_checkpoint

    init, meta = load_checkpoint(path)
    diffs = config_differences(meta.config, want_config, ignore)
    usable, summary = compare_state(model, init.state_dict())
    incomplete = summary.missing or summary.unexpected or summary.mismatched
    if (diffs or incomplete) and not partial:
        what = "; ".join(diffs) if diffs else f"tensors do not match: {summary.skipped()}"
        raise ConfigError(f"--init {path}: does not fit this run ({what}); {PARTIAL_HINT}")
    if summary.loaded == 0:
        raise ConfigError(f"--init {path}: no tensor of it fits this model ({summary.skipped()})")
    model.load_state_dict(usable, strict=False)
    note = f" despite {'; '.join(diffs)}" if diffs else ""
    say(f"--init {path}: loaded {summary.loaded} of {summary.total} tensors{note}; skipped: {summary.skipped()}")
    return summary


def check_pretrained(summary: LoadSummary, head: Iterable[str], path: str | Path, *, partial: bool) -> None:
    """``--pretrained``: refuse a file whose backbone tensors do not fit (only the classifier head, whose
    class count differs from ImageNet's, may mismatch), unless ``partial``; say what loaded either way."""
    head = set(head)
    bad = [k for k in summary.mismatched if k not in head]
    if summary.loaded == 0 or (bad and not partial):
        detail = f"{len(bad)} backbone tensors have other shapes ({', '.join(bad[:3])})" if bad \
            else "no tensor of it fits this model"
        raise ConfigError(f"--pretrained {path}: {detail}; {PARTIAL_HINT}" if summary.loaded else
                          f"--pretrained {path}: {detail}")
    say(f"--pretrained {path}: loaded {summary.loaded} of {summary.total} tensors; skipped: {summary.skipped()}")


def head_names(model: nn.Module) -> set[str]:
    """State-dict names of ``model.classifier_head()``'s tensors."""
    head = model.classifier_head()
    for name, module in model.named_modules():
        if module is head:
            return {f"{name}.{k}" for k in head.state_dict()}
    return set()
