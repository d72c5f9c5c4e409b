"""Console entries of the training-side CLIs: check the optional packages before importing the CLI.

``ffn_edge.train`` and ``ffn_edge.evaluate`` import torch (and the data side OpenCV) at load, so a
missing package would be a traceback; here it is one line naming what to install, exit code 2.
"""

from __future__ import annotations

from .core.deps import require

TRAIN_NEEDS = ("torch", "safetensors", "tqdm", "cv2")  # cv2: the synthetic set and the video / frame readers
EVAL_NEEDS = ("torch", "safetensors", "tqdm", "cv2")


def ffn_train() -> None:
    """``ffn-train``."""
    require("ffn-train", TRAIN_NEEDS)
    from .train import main

    main()


def ffn_eval() -> None:
    """``ffn-eval``."""
    require("ffn-eval", EVAL_NEEDS)
    from .evaluate import main

    main()


IMPORT_NEEDS = ("torch", "safetensors")


def ffn_import() -> None:
    """``ffn-import``."""
    require("ffn-import", IMPORT_NEEDS)
    from .importers.cli import main

    main()
