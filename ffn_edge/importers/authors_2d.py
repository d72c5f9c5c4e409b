"""FFN-pytorch 2D_Network (the FFN authors): TSM-FFN (``resnet_TSM_FFN.py``) and TEA-FFN (``resnet_TEA_FFN.py``).

Their checkpoint (``main_FFN.py``'s ``save_checkpoint``) is ``{"epoch", "state_dict", "optimizer",
"best_prec1", accuracy lists...}``; ``state_dict`` comes from the DataParallel-wrapped ``TSN``, so
names read ``module.base_model.<backbone>`` and ``module.new_fc`` (with dropout > 0 TSN replaces the
backbone's ``fc`` by a Dropout and adds ``new_fc``; with dropout 0 it keeps ``base_model.fc``).
Every norm exists once per sub-network with the suffix ``_4`` / ``_8`` / ``_16`` (the L/M/H
sub-networks: 4, 8, 16 frames). Weight Alteration: TSM-FFN's ``adaconv_{4,8,16}`` (a depth-wise 1x1
conv ``x + adaconv(x)`` after the shift, before ``conv1``); TEA-FFN has none, so the model is built
with ``weight_alteration=False``. TEA's MTA (``shifts.i.conv``, a Conv1d of kernel 3 over frames)
becomes ffn-edge's ``temporal.i.conv`` (a Conv3d of kernel 3x1x1): same numbers, another shape.
Evaluation as in their ``test.sh``: 1 clip x 1 centre crop of 224 after resizing the shorter side to
256, TSN segment centres, ImageNet mean/std, RGB.
"""

from __future__ import annotations

from .spec import BN, SUB, WB, Preprocess, Rule, SourceSpec

B = r"base_model\.(?P<b>layer[1-4]\.\d+)"
PRE = Preprocess(224, 256, sampling="tsn-centre")

_HEAD = (
    Rule(rf"new_fc\.{WB}", "fc.{p}", head=True),
    Rule(rf"base_model\.fc\.{WB}", "fc.{p}", head=True),
)

TSM_FFN = SourceSpec(
    source="authors-2d", arch="tsm_resnet50", ffn=True, frame_counts=(4, 8, 16), preprocess=PRE,
    rules=(
        Rule(r"base_model\.conv1\.weight", "conv1.weight"),
        Rule(rf"base_model\.bn1_{SUB}\.{BN}", "bn1.{p}"),
        Rule(rf"{B}\.(?P<c>conv[1-3])\.weight", "{b}.{c}.weight"),
        Rule(rf"{B}\.(?P<n>bn[1-3])_{SUB}\.{BN}", "{b}.{n}.{p}"),
        Rule(rf"{B}\.downsample_conv\.weight", "{b}.downsample.0.weight"),
        Rule(rf"{B}\.downsample_bn_{SUB}\.{BN}", "{b}.downsample.1.{p}"),
        Rule(rf"{B}\.adaconv_{SUB}\.weight", "{b}.conv1", kind="wa"),
        *_HEAD,
    ),
)

TEA_FFN = SourceSpec(
    source="authors-2d", arch="tea_resnet50", ffn=True, frame_counts=(4, 8, 16), preprocess=PRE,
    config=(("weight_alteration", False), ("mta_shift_div", 2)),
    rules=(
        Rule(r"base_model\.conv1\.weight", "conv1.weight"),
        Rule(rf"base_model\.bn1_{SUB}\.{BN}", "bn1.{p}"),
        Rule(rf"{B}\.(?P<c>conv1|conv3)\.weight", "{b}.{c}.weight"),
        Rule(rf"{B}\.(?P<n>bn1|bn3)_{SUB}\.{BN}", "{b}.{n}.{p}"),
        Rule(rf"{B}\.convs\.(?P<i>\d+)\.weight", "{b}.convs.{i}.weight"),
        Rule(rf"{B}\.bns_{SUB}\.(?P<i>\d+)\.{BN}", "{b}.bns.{i}.{p}"),
        Rule(rf"{B}\.shifts\.(?P<i>\d+)\.conv\.weight", "{b}.temporal.{i}.conv.weight", kind="reshape"),
        Rule(rf"{B}\.me\.conv1\.weight", "{b}.me.reduce.weight"),
        Rule(rf"{B}\.me\.bn1_{SUB}\.{BN}", "{b}.me.bn1.{p}"),
        Rule(rf"{B}\.me\.conv2\.weight", "{b}.me.spatial.weight"),
        Rule(rf"{B}\.me\.conv3\.weight", "{b}.me.expand.weight"),
        Rule(rf"{B}\.me\.bn3_{SUB}\.{BN}", "{b}.me.bn2.{p}"),
        Rule(rf"{B}\.downsample_conv\.weight", "{b}.downsample.0.weight"),
        Rule(rf"{B}\.downsample_bn_{SUB}\.{BN}", "{b}.downsample.1.{p}"),
        *_HEAD,
    ),
)

SPECS = (TSM_FFN, TEA_FFN)
