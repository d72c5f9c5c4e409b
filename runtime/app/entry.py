"""The ``ffn-run`` console entry: checks OpenCV before importing the CLI, whose modules import it at load."""

from __future__ import annotations

import sys

from ...core.deps import missing_message


def ffn_run() -> None:
    """``ffn-run``: one line and exit 2 when OpenCV is missing, else the CLI (ONNX Runtime is checked on open)."""
    message = missing_message("cv2")
    if message is not None:
        print(f"ffn-run: error: {message}", file=sys.stderr)
        sys.exit(2)
    from .cli import main

    main()
