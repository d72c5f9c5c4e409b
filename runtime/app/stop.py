"""Stopping ``ffn-run`` from outside: SIGTERM (systemd, ``docker stop``, Kubernetes) ends a run like Ctrl-C.

Both raise ``KeyboardInterrupt`` in the main thread, so the same ``finally`` blocks run: the stream
is closed, an ``--output`` video is finalised (a readable file, not one without its index), and the
summary is printed. The exit code says which signal it was: 130 for SIGINT, 143 for SIGTERM
(128 + the signal number, the shell's convention).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType


class Terminated(KeyboardInterrupt):
    """SIGTERM, delivered like Ctrl-C; ``exit_code`` is what ``run_cli`` exits with."""

    exit_code = 128 + signal.SIGTERM
    message = "stopped by SIGTERM"


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises ``Terminated`` in the main thread (elsewhere: nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
