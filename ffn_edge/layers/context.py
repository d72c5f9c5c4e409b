"""FrameContext: which sub-network runs and how many frames a clip has, for one model call.

Why not a module attribute or a global: a model object may be shared by two threads (a server)
and two models may live in one process (ST ensembles). The context belongs to one model (each
model builds its own) and is thread-local, so neither leaks. The model's ``forward`` sets it for
the duration of the call; layers that need it (specialised norms, Weight Alteration, temporal
shift) read it. Outside a forward it is unset and reading it is an error, never a stale value.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class FrameContext:
    """Thread-local (sub-network index, frame count) of the model call in progress."""

    def __init__(self) -> None:
        self._local = threading.local()

    @property
    def subnet(self) -> int:
        return self._get("subnet")

    @property
    def n_frames(self) -> int:
        return self._get("n_frames")

    def _get(self, name: str) -> int:
        value = getattr(self._local, name, None)
        if value is None:
            raise RuntimeError(
                "FrameContext read outside a model forward: call the model as model(clip, subnet=k)"
            )
        return value

    @contextmanager
    def use(self, subnet: int, n_frames: int) -> Iterator[None]:
        """Set (subnet, n_frames) for this thread until the block exits; nests and restores."""
        prev = (getattr(self._local, "subnet", None), getattr(self._local, "n_frames", None))
        self._local.subnet, self._local.n_frames = subnet, n_frames
        try:
            yield
        finally:
            self._local.subnet, self._local.n_frames = prev

    # A copied or pickled model gets its own fresh context (thread-locals cannot be copied).
    def __deepcopy__(self, memo: dict) -> FrameContext:
        return FrameContext()

    def __reduce__(self) -> tuple:
        return (FrameContext, ())
