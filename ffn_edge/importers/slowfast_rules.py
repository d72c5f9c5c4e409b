"""The SlowFast-R50 table shared by PySlowFast and the FFN authors' SlowFast (names differ by a suffix).

PySlowFast's ``SlowFast`` (``video_model_builder.py``) names: ``s1.pathway{0,1}_stem.{conv,bn}``
(0 slow, 1 fast), ``s{1..4}_fuse.{conv_f2s,bn}`` (the laterals after the stem and res2-res4),
``s{2..5}.pathway{p}_res{j}.branch1`` / ``branch1_bn`` (the projection shortcut),
``...branch2.{a,b,c}`` / ``{a,b,c}_bn`` (the bottleneck), ``head.projection`` (the classifier).
The FFN authors' ``SlowFast_FFN`` has every norm per sub-network (``bn_4`` / ``bn_8`` / ``bn_16``,
``a_bn_4`` ...) and ``branch2.adaconv_{4,8,16}`` (Weight Alteration in front of ``a``).
ffn-edge: ``slow_stem`` / ``fast_stem`` (conv 0, BN 1), ``laterals.i.{conv,bn}``,
``{slow,fast}_stages.i.j.branch.{0,1,2}.{0 conv,1 BN}``, ``shortcut.{0,1}``, ``fc``.
"""

from __future__ import annotations

from .spec import BN, SUB, WB, Rule

PATHWAYS = (("0", "slow"), ("1", "fast"))


def slowfast_rules(ffn: bool) -> tuple[Rule, ...]:
    """The table for a plain PySlowFast checkpoint (``ffn=False``) or the authors' SlowFast_FFN."""
    n = f"_{SUB}" if ffn else ""  # a norm's sub-network suffix
    rules = [
        Rule(r"s(?P<f>[1-4])_fuse\.conv_f2s\.weight", "laterals.{f-1}.conv.weight"),
        Rule(rf"s(?P<f>[1-4])_fuse\.bn{n}\.{BN}", "laterals.{f-1}.bn.{p}"),
        Rule(rf"head\.projection\.{WB}", "fc.{p}", head=True),
    ]
    for p, name in PATHWAYS:
        res = rf"s(?P<st>[2-5])\.pathway{p}_res(?P<j>\d+)"
        blk = f"{name}_stages.{{st-2}}.{{j}}"
        rules += [
            Rule(rf"s1\.pathway{p}_stem\.conv\.weight", f"{name}_stem.0.weight"),
            Rule(rf"s1\.pathway{p}_stem\.bn{n}\.{BN}", f"{name}_stem.1.{{p}}"),
            Rule(rf"{res}\.branch1\.weight", f"{blk}.shortcut.0.weight"),
            Rule(rf"{res}\.branch1_bn{n}\.{BN}", f"{blk}.shortcut.1.{{p}}"),
        ]
        for i, conv in enumerate("abc"):
            rules += [
                Rule(rf"{res}\.branch2\.{conv}\.weight", f"{blk}.branch.{i}.0.weight"),
                Rule(rf"{res}\.branch2\.{conv}_bn{n}\.{BN}", f"{blk}.branch.{i}.1.{{p}}"),
            ]
        if ffn:
            rules.append(Rule(rf"{res}\.branch2\.adaconv_{SUB}\.weight", f"{blk}.branch.0.0", kind="wa"))
    return tuple(rules)
