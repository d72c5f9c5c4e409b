"""Progress of a long, counted job (evaluation, INT8 calibration, writing the synthetic set), on stderr.

On a terminal a tqdm bar; otherwise (a log file, a pipe, CI) one plain line each time another
``every_pct`` % is done, so a log shows that the job moves without filling up with bar redraws.
tqdm is optional (the training extra brings it); without it a terminal gets the plain lines too.
Torch-free, so the runtime side can use it as well.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO, TypeVar

T = TypeVar("T")
EVERY_PCT = 10  # plain-line mode: a line per this many percent


class Progress:
    """``with Progress(total, "what") as p: ... p.update()``; ``total`` is the number of updates expected."""

    def __init__(self, total: int, desc: str, stream: TextIO | None = None, every_pct: int = EVERY_PCT,
                 enabled: bool = True) -> None:
        self.total, self.desc, self.every_pct = max(0, int(total)), desc, max(1, every_pct)
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled and self.total > 0
        self.done, self._next_pct, self._t0 = 0, self.every_pct, time.monotonic()
        self._bar: Any = None
        if self.enabled and _is_terminal(self.stream):
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self._bar = tqdm(total=self.total, desc=desc, file=self.stream, leave=False, dynamic_ncols=True)

    def update(self, n: int = 1) -> None:
        if not self.enabled:
            return
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            return
        pct = 100 * self.done // self.total
        if pct >= self._next_pct:
            elapsed = time.monotonic() - self._t0
            print(f"{self.desc}: {min(pct, 100)} % ({self.done}/{self.total}, {elapsed:.0f} s)", file=self.stream,
                  flush=True)
            self._next_pct = (pct // self.every_pct + 1) * self.every_pct

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(items: Iterable[T], total: int, desc: str, **kw: Any) -> Iterator[T]:
    """``items``, reporting one step each (``Progress`` keywords: stream, every_pct, enabled)."""
    with Progress(total, desc, **kw) as p:
        for item in items:
            yield item
            p.update()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream
        return False
