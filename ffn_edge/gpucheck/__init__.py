"""The first thing to run on a new GPU box: ``python -m ffn_edge.gpucheck --out DIR`` (``tools/gpu_check.sh``).

Trains, evaluates and times the project on the GPU with the interpreter it is given (no network),
and runs each TensorRT / ONNX Runtime GPU check whose library is installed. Every check ends in one
line: ``ok``, ``failed`` (exit status 1) or ``skipped: <why>``. Results: ``DIR/gpucheck.json`` and
``DIR/gpucheck.md``. See ``cli.py`` for the checks and ``config.py`` for their sizes.
"""

from .cli import CHECKS, main, run_checks

__all__ = ["CHECKS", "main", "run_checks"]
