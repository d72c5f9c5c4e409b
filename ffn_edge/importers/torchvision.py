"""torchvision ResNet-18/34/50 ImageNet weights (``torchvision.models.resnet``) -> TSM-ResNet.

ffn-edge's TSM-ResNet keeps torchvision's module names (the temporal shift has no weights), so the
table is the identity on every name torchvision has. Its 1000-class ``fc`` fills the head only
when ``--classes`` has 1000 names; otherwise it is ignored (reported) and the head starts fresh.
"""

from __future__ import annotations

from .spec import BN, WB, Preprocess, Rule, SourceSpec

B = r"(?P<b>layer[1-4]\.\d+)"


def _spec(arch: str) -> SourceSpec:
    return SourceSpec(
        source="torchvision", arch=arch, ffn=False, frame_counts=(8,), new_head=True,
        preprocess=Preprocess(224, 256, sampling="tsn-centre"),
        rules=(
            Rule(r"conv1\.weight", "conv1.weight"),
            Rule(rf"bn1\.{BN}", "bn1.{p}"),
            Rule(rf"{B}\.(?P<c>conv[1-3])\.weight", "{b}.{c}.weight"),
            Rule(rf"{B}\.(?P<n>bn[1-3])\.{BN}", "{b}.{n}.{p}"),
            Rule(rf"{B}\.downsample\.0\.weight", "{b}.downsample.0.weight"),
            Rule(rf"{B}\.downsample\.1\.{BN}", "{b}.downsample.1.{p}"),
            Rule(rf"fc\.{WB}", "fc.{p}", head=True),
        ),
    )


SPECS = tuple(_spec(a) for a in ("tsm_resnet18", "tsm_resnet34", "tsm_resnet50"))
