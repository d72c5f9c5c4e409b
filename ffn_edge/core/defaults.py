"""The project's defaults, each written once: what a value is when nobody says otherwise.

Training, export, the runtime and the benchmarks read these names instead of repeating the numbers,
so changing a default is a one-line change here. Limits (what is *allowed*) live in ``validate``.
"""

from __future__ import annotations

FRAME_COUNTS: tuple[int, ...] = (4, 8, 16)  # the paper's L / M / H sub-networks
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)  # RGB, on 0..1 pixel values
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
INPUT_SIZE = 224  # square centre crop fed to the network
RESIZE_SHORTER = 256  # shorter side before the centre crop (256/224: the usual ImageNet ratio)
MAX_BATCH = 8  # the largest batch a TensorRT engine accepts unless ffn-export engines --max-batch says otherwise
# Online mode's scene-cut reset (``runtime.media.scene_cut``): the total variation distance between the
# colour histograms of two consecutive steps' frames from which a new scene starts (the share of pixels
# whose colour changed). benchmarks/scene_cut.py (README, online mode): between the largest distance in
# long single takes of the synthetic set (0.40) and the smallest at a cut between two of them (0.51).
DEFAULT_CUT_THRESHOLD = 0.45
