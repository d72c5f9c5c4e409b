"""The command-line parser of every ffn-edge CLI (ffn-run, ffn-export, ffn-train, ffn-eval, the demo).

argparse prints usage plus the error and exits 2 on a bad flag; the README promises one line. This
parser raises ``ConfigError`` instead, which ``run_cli`` prints as ``PROG: error: MESSAGE`` (exit 2).
Every parser built from it answers ``--version`` the same way (``PROG ffn-edge X.Y.Z``).
Torch-free, so the edge runtime and the training side share it.
"""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

from .errors import ConfigError
from .version import version_line


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one-line ConfigErrors (``--help`` is unchanged), with ``--version``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.add_help:  # parents / sub-parsers built with add_help=False leave the flag to their host
            self.add_argument("--version", action="version", version=version_line("%(prog)s"),
                              help="print the ffn-edge version and exit")

    def error(self, message: str) -> NoReturn:
        raise ConfigError(message)
