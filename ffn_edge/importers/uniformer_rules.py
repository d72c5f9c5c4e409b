"""The UniFormer-S (video) table shared by Sense-X UniFormer and the FFN authors' Uniformer_FFN.

Sense-X ``video_classification/slowfast/models/uniformer.py`` names: ``patch_embed{1..4}.{proj,norm}``,
``blocks{1,2}.j`` (CBlock: ``pos_embed``, ``norm1`` BN, ``conv1``, ``attn`` (the 5x5x5 depth-wise
conv), ``conv2``, ``norm2`` BN, ``mlp.fc1`` / ``mlp.fc2`` 1x1x1 convs), ``blocks{3,4}.j`` (SABlock:
``pos_embed``, ``norm1`` LN, ``attn.qkv``, ``attn.proj``, ``norm2`` LN, ``mlp.fc1`` / ``mlp.fc2``),
``norm`` (BN), ``head``. The authors' ``Uniformer_FFN`` adds the suffixes ``_4`` / ``_8`` / ``_16``
to every norm and ``adaconv_{4,8,16}`` per block (Weight Alteration of the block input).
ffn-edge: ``stages.i.0`` is stage i's patch embedding, ``stages.i.{j+1}`` its blocks (``adapter`` =
the Weight Alteration site, ``mlp.0`` / ``mlp.2``), ``norm``, ``head``.
"""

from __future__ import annotations

from .spec import BN, LN, SUB, WB, Rule


def uniformer_rules(ffn: bool) -> tuple[Rule, ...]:
    n = f"_{SUB}" if ffn else ""
    local = r"blocks(?P<i>[12])\.(?P<j>\d+)"
    glob = r"blocks(?P<i>[34])\.(?P<j>\d+)"
    blk = "stages.{i-1}.{j+1}"
    rules = [
        Rule(rf"patch_embed(?P<i>[1-4])\.proj\.{WB}", "stages.{i-1}.0.proj.{p}"),
        Rule(rf"patch_embed(?P<i>[1-4])\.norm{n}\.{LN}", "stages.{i-1}.0.norm.{p}"),
        Rule(rf"norm{n}\.{BN}", "norm.{p}"),
        Rule(rf"head\.{WB}", "head.{p}", head=True),
    ]
    for blocks, norm in ((local, BN), (glob, LN)):
        rules += [
            Rule(rf"{blocks}\.pos_embed\.{WB}", f"{blk}.pos_embed.{{p}}"),
            Rule(rf"{blocks}\.(?P<nm>norm[12]){n}\.{norm}", f"{blk}.{{nm}}.{{p}}"),
            Rule(rf"{blocks}\.mlp\.fc1\.{WB}", f"{blk}.mlp.0.{{p}}"),
            Rule(rf"{blocks}\.mlp\.fc2\.{WB}", f"{blk}.mlp.2.{{p}}"),
        ]
        if ffn:
            rules.append(Rule(rf"{blocks}\.adaconv_{SUB}\.weight", f"{blk}.adapter", kind="wa"))
    rules += [
        Rule(rf"{local}\.(?P<c>conv1|conv2|attn)\.{WB}", f"{blk}.{{c}}.{{p}}"),
        Rule(rf"{glob}\.attn\.(?P<c>qkv|proj)\.{WB}", f"{blk}.attn.{{c}}.{{p}}"),
    ]
    return tuple(rules)
