"""FFN-pytorch Transformer_Network (the FFN authors): UniFormer-S FFN on Something-Something V1.

A PySlowFast-style checkpoint (``model_state``) of their ``Uniformer_FFN`` (config
``uniformer_s16_sthv1_prek600_FFN``: 4/8/16 frames, suffixes ``_4`` / ``_8`` / ``_16``, no
dropout before the head, drop-path 0.1, Weight Alteration init N(0, 1e-3)). Table:
``uniformer_rules``. Test pipeline: shorter side 256, crop 256 (``TEST_CROP_SIZE``), PySlowFast's
default mean 0.45 / std 0.225, RGB, uniform segments (``sth_ffn``).
"""

from __future__ import annotations

from .spec import Preprocess, SourceSpec
from .uniformer_rules import uniformer_rules

UNIFORMER_FFN = SourceSpec(
    source="authors-uniformer", arch="uniformer_s", ffn=True, frame_counts=(4, 8, 16),
    preprocess=Preprocess(256, 256, (0.45, 0.45, 0.45), (0.225, 0.225, 0.225), sampling="segments (sth_ffn)"),
    config=(("dropout", 0.0), ("drop_path", 0.1), ("wa_init_std", 1e-3)),
    rules=uniformer_rules(ffn=True),
)

SPECS = (UNIFORMER_FFN,)
