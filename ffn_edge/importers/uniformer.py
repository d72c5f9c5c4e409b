"""Sense-X/UniFormer (video_classification): UniFormer-S checkpoints (Kinetics-400/600, SSv1/v2).

Released as plain state dicts or PySlowFast checkpoints (``model_state``). Table: ``uniformer_rules``.
The Kinetics models (config ``uniformer_s16x4_k400``): 16 frames, ``USE_OFFSET_SAMPLING`` (one frame
per uniform segment), mean 0.45 / std 0.225, RGB, shorter side 256 and crop 256 (``TEST_CROP_SIZE``),
no dropout before the head, drop-path 0.1 in training.
"""

from __future__ import annotations

from .spec import Preprocess, SourceSpec
from .uniformer_rules import uniformer_rules

UNIFORMER = SourceSpec(
    source="uniformer", arch="uniformer_s", ffn=False, frame_counts=(16,),
    preprocess=Preprocess(256, 256, (0.45, 0.45, 0.45), (0.225, 0.225, 0.225), sampling="segments (offset)"),
    config=(("dropout", 0.0), ("drop_path", 0.1)),
    rules=uniformer_rules(ffn=False),
)

SPECS = (UNIFORMER,)
