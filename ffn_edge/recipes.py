"""Training recipes (``ffn-train --recipe``): the project's default and the FFN authors'.

One table, one source: ``resolve`` fills ``--batch-size``/``--lr``/``--warmup-epochs`` from it when
the user did not give them, and the trainer reads the rest (schedule, classifier learning-rate
multipliers and init, Weight Alteration init, which accuracy picks the best checkpoint) from here.

Why the paper recipe exists: the paper's central claim (one FFN beats three separately trained
models) does not hold with the project's recipe, and these are the differences from the authors'
code (``2D_Network/main_FFN.py`` / ``ops/models_FFN.py``) that had not been tested. Not copied: their
code shifts 4- and 8-frame clips as if they were 16 frames long, which leaks frames across the
videos of a batch (a bug).
"""

from __future__ import annotations

import dataclasses
import math

from torch import nn

from .layers import WeightAlteration


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Everything a recipe changes; the first three are defaults that a user's flag overrides."""

    batch_size: int
    lr: float
    warmup_epochs: float
    schedule: str  # "cosine" (to --min-lr) or "step" (×0.1 at each milestone)
    milestones: tuple[float, ...]  # step: fractions of --epochs at which the lr drops ×0.1
    head_lr_mult: float  # classifier weight's learning-rate multiplier
    head_bias_lr_mult: float  # classifier bias's learning-rate multiplier
    head_init_std: float | None  # classifier weight ~ N(0, std), bias 0; None: PyTorch's default init
    wa_init: str  # "zero" (x·1 at the start) or "kaiming_fan_out" (per sub-network N(0, 2/C))
    select: str  # best checkpoint by "mean" top-1 over the frame counts or the "highest" count's


RECIPES: dict[str, Recipe] = {
    "project": Recipe(batch_size=8, lr=0.01, warmup_epochs=1.0, schedule="cosine", milestones=(),
                      head_lr_mult=1.0, head_bias_lr_mult=1.0, head_init_std=None, wa_init="zero", select="mean"),
    "paper": Recipe(batch_size=32, lr=0.01, warmup_epochs=0.0, schedule="step", milestones=(0.4, 0.8),
                    head_lr_mult=5.0, head_bias_lr_mult=10.0, head_init_std=0.001, wa_init="kaiming_fan_out",
                    select="highest"),
}


def milestone_epochs(recipe: Recipe, epochs: int) -> list[int]:
    """Epochs at which the step schedule multiplies the lr by 0.1 (paper: 20 and 40 of 50); never epoch 0,
    so a run of one or two epochs starts at the full learning rate."""
    return [max(1, round(f * epochs)) for f in recipe.milestones]


def step_factor(recipe: Recipe, epoch: int, epochs: int) -> float:
    """0.1 to the number of milestones reached at ``epoch`` (0-based)."""
    return 0.1 ** sum(epoch >= m for m in milestone_epochs(recipe, epochs))


def init_model(model: nn.Module, head: nn.Linear, recipe: Recipe) -> None:
    """Apply the recipe's initialisation of the classifier and of every Weight Alteration.

    Kaiming fan-out of the authors' depth-wise 1×1 conv (C, 1, 1, 1): fan-out = C, std = √(2/C),
    drawn independently for each sub-network, so each starts from its own per-channel scale 1 + w.
    """
    if recipe.head_init_std is not None:
        nn.init.normal_(head.weight, 0.0, recipe.head_init_std)
        nn.init.zeros_(head.bias)
    if recipe.wa_init == "kaiming_fan_out":
        for m in model.modules():
            if isinstance(m, WeightAlteration):
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / m.weight.shape[1]))


def param_groups(model: nn.Module, heads: list[nn.Linear], recipe: Recipe, weight_decay: float) -> list[dict]:
    """Optimiser groups: decay on weights (ndim > 1) only, as TSM; the classifier's weight and bias in
    groups of their own with the recipe's ``lr_mult`` when it is not 1 (the loop sets lr = base × lr_mult)."""
    head_w = {id(h.weight) for h in heads}
    head_b = {id(h.bias) for h in heads if h.bias is not None}
    split = recipe.head_lr_mult != 1.0 or recipe.head_bias_lr_mult != 1.0
    special = head_w | head_b if split else set()
    params = [p for p in model.parameters() if id(p) not in special]
    groups = [{"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay, "lr_mult": 1.0},
              {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0, "lr_mult": 1.0}]
    if split:
        ps = list(model.parameters())
        groups += [{"params": [p for p in ps if id(p) in head_w], "weight_decay": weight_decay,
                    "lr_mult": recipe.head_lr_mult},
                   {"params": [p for p in ps if id(p) in head_b], "weight_decay": 0.0,
                    "lr_mult": recipe.head_bias_lr_mult}]
    return groups
