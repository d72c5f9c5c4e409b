"""facebookresearch/SlowFast (PySlowFast): SlowFast-R50 ``.pyth`` checkpoints (e.g. Kinetics-400 8x8).

``{"epoch", "model_state", "optimizer_state", "cfg"}``; the model zoo's Caffe2 ``.pkl`` files are
not torch files and are refused (convert them with PySlowFast first). Table: ``slowfast_rules``
(ALPHA 4 / BETA_INV 8 / fusion kernel 7 as ffn-edge's SlowFast; the 4x16 model's fusion kernel 5 is
refused by shape). Kinetics test pipeline: mean 0.45 / std 0.225, RGB, shorter side 256, crop 256,
slow frames by ``linspace``; SLOWFAST_8x8: 32 frames at stride 2 (dense sampling).
"""

from __future__ import annotations

from .slowfast_rules import slowfast_rules
from .spec import Preprocess, SourceSpec

SLOWFAST = SourceSpec(
    source="pyslowfast", arch="slowfast_r50", ffn=False, frame_counts=(32,),
    preprocess=Preprocess(256, 256, (0.45, 0.45, 0.45), (0.225, 0.225, 0.225), sampling="dense, stride 2"),
    first_convs=("slow_stem.0.weight", "fast_stem.0.weight"),
    config=(("slow_frames", "linspace"),),
    rules=slowfast_rules(ffn=False),
)

SPECS = (SLOWFAST,)
