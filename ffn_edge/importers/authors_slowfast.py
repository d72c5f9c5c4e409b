"""FFN-pytorch 3D_Network (the FFN authors): SlowFast-R50 FFN on Something-Something V1.

A PySlowFast checkpoint (``{"epoch", "model_state", "optimizer_state", "cfg"}``) of their
``SlowFast_FFN`` (config ``SLOWFAST_16x8_R50_FFN.yaml``: ALPHA 4, BETA_INV 8, fusion kernel 7,
sub-networks of 16/32/64 fast frames = 4/8/16 slow frames, suffixes ``_4`` / ``_8`` / ``_16``).
Table: ``slowfast_rules``. Their data pipeline: ``REVERSE_INPUT_CHANNEL: True`` (BGR), mean 0.45 /
std 0.225, test crop 256 after resizing the shorter side to 256, slow frames by PySlowFast's
``linspace``, clip frames from uniform segments over the video (``sth_ffn.get_seq_frames``). The
BGR order is folded into the two stem convolutions on import, so the checkpoint takes RGB like
every ffn-edge model (exact: it permutes the stems' input channels and the mean/std).
"""

from __future__ import annotations

from .slowfast_rules import slowfast_rules
from .spec import Preprocess, SourceSpec

SLOWFAST_FFN = SourceSpec(
    source="authors-slowfast", arch="slowfast_r50", ffn=True, frame_counts=(16, 32, 64),
    preprocess=Preprocess(256, 256, (0.45, 0.45, 0.45), (0.225, 0.225, 0.225), channels="BGR",
                          sampling="segments (sth_ffn)"),
    first_convs=("slow_stem.0.weight", "fast_stem.0.weight"),
    config=(("slow_frames", "linspace"),),
    rules=slowfast_rules(ffn=True),
)

SPECS = (SLOWFAST_FFN,)
