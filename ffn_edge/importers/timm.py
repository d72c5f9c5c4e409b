"""timm ``res2net50_26w_4s`` ImageNet weights -> TEA-ResNet-50 (TEA's backbone is that Res2Net).

timm's Res2Net bottleneck (``timm.models.res2net.Bottle2neck``) names: ``conv1``/``bn1``,
``convs.i``/``bns.i`` (the hierarchical 3x3 convs), ``conv3``/``bn3``, ``downsample.0/1``; the
stem is a single 7x7 ``conv1``. TEA's own modules are not in an ImageNet network: Motion Excitation
(``me.*``) starts from its random init and MTA (``temporal.*``) from its identity / shift init
(``mta_shift_div``; the authors: 2). The 1000-class ``fc`` is used only with 1000 class names.
"""

from __future__ import annotations

from .spec import BN, NUM_BATCHES, WB, Preprocess, Rule, SourceSpec

B = r"(?P<b>layer[1-4]\.\d+)"

RES2NET_TEA = SourceSpec(
    source="timm", arch="tea_resnet50", ffn=False, frame_counts=(8,), new_head=True,
    preprocess=Preprocess(224, 256, sampling="tsn-centre"),
    config=(("mta_shift_div", 2),),
    ignore=(NUM_BATCHES,),
    model_init=(r"layer[1-4]\.\d+\.me\..*", r"layer[1-4]\.\d+\.temporal\.\d+\.conv\.weight"),
    rules=(
        Rule(r"conv1\.weight", "conv1.weight"),
        Rule(rf"bn1\.{BN}", "bn1.{p}"),
        Rule(rf"{B}\.(?P<c>conv1|conv3)\.weight", "{b}.{c}.weight"),
        Rule(rf"{B}\.(?P<n>bn1|bn3)\.{BN}", "{b}.{n}.{p}"),
        Rule(rf"{B}\.convs\.(?P<i>\d+)\.weight", "{b}.convs.{i}.weight"),
        Rule(rf"{B}\.bns\.(?P<i>\d+)\.{BN}", "{b}.bns.{i}.{p}"),
        Rule(rf"{B}\.downsample\.0\.weight", "{b}.downsample.0.weight"),
        Rule(rf"{B}\.downsample\.1\.{BN}", "{b}.downsample.1.{p}"),
        Rule(rf"fc\.{WB}", "fc.{p}", head=True),
    ),
)

SPECS = (RES2NET_TEA,)
