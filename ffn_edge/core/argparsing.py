"""The command-line parser of every ffn-edge CLI (ffn-run, ffn-export, ffn-train, ffn-eval, the demo).

argparse prints usage plus the error and exits 2 on a bad flag; the README promises one line. This
parser raises ``ConfigError`` instead, which ``run_cli`` prints as ``PROG: error: MESSAGE`` (exit 2).
Every parser built from it answers ``--version`` the same way (``PROG ffn-edge X.Y.Z``).
Torch-free, so the edge runtime and the training side share it.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import Any, NoReturn

from . import validate as V
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
        raise ConfigError(_LONG_QUOTED.sub(lambda m: shown(m.group(1)), message))


_LONG_QUOTED = re.compile(r"'([^'\n]{41,})'")  # argparse quotes a rejected value whole


MAX_SHOWN = 40  # characters of a rejected value an error repeats


def shown(text: str) -> str:
    """``text`` quoted for an error message, cut to MAX_SHOWN characters (a 100,000-digit value stays one line)."""
    if len(text) <= MAX_SHOWN:
        return repr(text)
    return f"{text[:MAX_SHOWN]!r}... ({len(text)} characters)"


def range_text(lo: float, hi: float, lo_open: bool = False) -> str:
    """``[lo, hi]`` or ``(lo, hi]`` as --help and errors state it."""
    return f"{'(' if lo_open else '['}{lo:g}, {hi:g}]"


def number(kind: type, lo: float, hi: float, lo_open: bool = False) -> Callable[[str], Any]:
    """An argparse ``type=``: parse ``int``/``float`` text, refuse non-finite or out-of-range values.

    argparse turns the ArgumentTypeError into ``argument --OPT: MESSAGE`` (one line, via ``Parser``)."""
    what = "an integer" if kind is int else "a finite number"
    want = f"must be {what} in {range_text(lo, hi, lo_open)}"

    def parse(text: str) -> Any:
        try:
            value = V.check_int("value", int(text), int(lo), int(hi)) if kind is int \
                else V.check_float("value", float(text), lo, hi, lo_open=lo_open)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{want}, got {shown(text)}") from None
        return value

    parse.__name__ = kind.__name__  # argparse names the type in some messages
    return parse


def with_range(help_text: str, lo: float, hi: float, lo_open: bool = False) -> str:
    """``help_text`` with its allowed range appended (what ``number`` enforces)."""
    return f"{help_text}; range {range_text(lo, hi, lo_open)}"
