"""mit-han-lab/temporal-shift-module: TSM-ResNet checkpoints (e.g. its Kinetics-400 models).

Saved by its ``main.py`` as ``{"epoch", "arch", "state_dict", "best_prec1"}`` from a DataParallel
``TSN``: ``module.base_model.<resnet>`` and ``module.new_fc``. With ``--shift_place=blockres`` (all
its released ResNet models) ``make_temporal_shift`` wraps each block's ``conv1`` in a
``TemporalShift`` whose ``net`` is the conv, hence ``conv1.net.weight``. Other placements, non-local
blocks or temporal pooling are not ffn-edge architectures: their extra tensors are refused.
A plain (one frame count) model: import it as ST (``--as st``) or as an FFN starting point
(``--as ffn-init``). Evaluation: resize 256, centre crop 224, ImageNet mean/std, RGB; its uniform
models sample TSN segment centres (its ``dense`` models: dense sampling, not reproduced here).
"""

from __future__ import annotations

from .spec import BN, WB, Preprocess, Rule, SourceSpec

B = r"base_model\.(?P<b>layer[1-4]\.\d+)"


def _spec(arch: str) -> SourceSpec:
    return SourceSpec(
        source="tsm", arch=arch, ffn=False, frame_counts=(8,), preprocess=Preprocess(224, 256, sampling="tsn-centre"),
        rules=(
            Rule(r"base_model\.conv1\.weight", "conv1.weight"),
            Rule(rf"base_model\.bn1\.{BN}", "bn1.{p}"),
            Rule(rf"{B}\.conv1\.net\.weight", "{b}.conv1.weight"),
            Rule(rf"{B}\.(?P<c>conv2|conv3)\.weight", "{b}.{c}.weight"),
            Rule(rf"{B}\.(?P<n>bn[1-3])\.{BN}", "{b}.{n}.{p}"),
            Rule(rf"{B}\.downsample\.0\.weight", "{b}.downsample.0.weight"),
            Rule(rf"{B}\.downsample\.1\.{BN}", "{b}.downsample.1.{p}"),
            Rule(rf"new_fc\.{WB}", "fc.{p}", head=True),
            Rule(rf"base_model\.fc\.{WB}", "fc.{p}", head=True),
        ),
    )


SPECS = tuple(_spec(a) for a in ("tsm_resnet18", "tsm_resnet34", "tsm_resnet50"))
