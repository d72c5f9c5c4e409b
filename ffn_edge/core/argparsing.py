"""The command-line parser of every ffn-edge CLI (ffn-run, ffn-export, ffn-train, ffn-eval, the demo).

argparse prints usage plus the error and exits 2 on a bad flag; the README promises one line. This
parser raises ``ConfigError`` instead, which ``run_cli`` prints as ``PROG: error: MESSAGE`` (exit 2).
Torch-free, so the edge runtime and the training side share it.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

from .errors import ConfigError


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one-line ConfigErrors (``--help`` is unchanged)."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(message)
