"""Reading files we did not write (torch-free): regular files only, bounded size, bounded JSON.

A FIFO, a device, a directory or (where refused) a symlink is rejected from ``lstat``/``stat`` before
it is opened, and the open itself uses ``O_NONBLOCK`` (and ``O_NOFOLLOW`` where symlinks are
refused) with an ``fstat`` after it, so a file swapped in between can neither block nor escape.
JSON is size-limited before parsing and depth-limited after (a too-deep document is refused with
one line, never a RecursionError).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from .errors import FFNError
from .validate import MAX_JSON_DEPTH, json_depth

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symlink"))


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def check_regular(path: Path, error: type[FFNError], follow_symlinks: bool = False) -> os.stat_result:
    """``path`` is an existing regular file (a symlink only with ``follow_symlinks``); else ``error``."""
    try:
        st = os.stat(path) if follow_symlinks else os.lstat(path)
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except OSError as e:
        raise error(f"{path}: cannot be read ({e.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{path}: is {_kind(st.st_mode)}, expected a regular file")
    return st


def open_regular(path: Path, error: type[FFNError], follow_symlinks: bool = False) -> int:
    """An fd opened read-only on the regular file ``path`` (never blocks on a FIFO)."""
    check_regular(path, error, follow_symlinks)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        raise error(f"{path}: cannot be opened ({e.strerror})") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise error(f"{path}: is {_kind(st.st_mode)}, expected a regular file")
    return fd


def read_regular(path: Path, max_bytes: int, error: type[FFNError], follow_symlinks: bool = False) -> bytes:
    """The whole regular file ``path``, refused when larger than ``max_bytes``."""
    fd = open_regular(path, error, follow_symlinks)
    try:
        size = os.fstat(fd).st_size
        if size > max_bytes:
            raise error(f"{path}: {size} bytes, larger than the {max_bytes}-byte limit")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(size + 1)  # a file that grew meanwhile is caught below
    except OSError as e:
        raise error(f"{path}: cannot be read ({e.strerror})") from None
    finally:
        os.close(fd)
    if len(data) > min(size, max_bytes):
        raise error(f"{path}: grew while it was read")
    return data


MAX_INT_DIGITS = 30  # any integer a manifest or checkpoint holds fits (sizes, counts, dims)


class _HugeInt(Exception):
    pass


def _bounded_int(text: str) -> int:
    """``json``'s integer parser, refusing what Python would refuse (over 4300 digits) or a count never needs."""
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _HugeInt(len(text.lstrip("-")))
    return int(text)


def parse_json(text: str | bytes, where: str, error: type[FFNError], max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` with a nesting limit; every failure is one line of ``error``."""
    try:
        value = json.loads(text, parse_int=_bounded_int)
    except _HugeInt as e:
        raise error(f"{where}: holds an integer of {e.args[0]} digits (at most {MAX_INT_DIGITS})") from None
    except RecursionError:
        raise error(f"{where}: JSON nested deeper than {max_depth} levels") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise error(f"{where}: not valid JSON ({str(e).splitlines()[0][:200]})") from None
    if json_depth(value) > max_depth:
        raise error(f"{where}: JSON nested deeper than {max_depth} levels")
    return value
