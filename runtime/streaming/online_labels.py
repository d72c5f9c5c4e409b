"""OnlineLabels: an online stream's label state (pure; no clock, no graphs).

The label of sub-network k running at n frames per window is the mean of its last n per-frame logits
(what the clip graph averages for n frames, one frame at a time). The state is one sub-network's:
a switch (``start``) drops the logits of the previous one, and the new sub-network's buffers restart
from zeros, so it is *warming* until n frames of it have run. While warming, the label is the last
warm label of the previous sub-network, marked stale (``fresh=False``), or none at the start of a
stream: a mean never mixes sub-networks and never averages fewer than n frames.
"""

from __future__ import annotations

import collections
import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Label:
    """A warm label: the mean of n per-frame logits of one sub-network, and the frames they came from."""

    logits: np.ndarray  # (classes,) float32, the mean
    subnet: int
    frames: int  # n
    stamps: tuple[float, ...]  # of the n frames, oldest first


class OnlineLabels:
    """The logit ring of the running sub-network and the last warm label (see the module docstring)."""

    def __init__(self) -> None:
        self.subnet: int | None = None
        self.frames = 0
        self._logits: collections.deque[np.ndarray] = collections.deque()
        self._stamps: collections.deque[float] = collections.deque()
        self.last: Label | None = None  # the last warm label (of this or an earlier sub-network)

    def start(self, subnet: int, frames: int) -> None:
        """Sub-network ``subnet`` at ``frames`` per window runs from the next frame on, from zero buffers."""
        if frames < 1:
            raise ValueError(f"frames must be >= 1, got {frames}")
        self.subnet, self.frames = subnet, frames
        self._logits = collections.deque(maxlen=frames)
        self._stamps = collections.deque(maxlen=frames)

    @property
    def warm_steps(self) -> int:
        """Frames of the running sub-network in the ring (n once warm)."""
        return len(self._logits)

    @property
    def warm(self) -> bool:
        return self.subnet is not None and len(self._logits) == self.frames

    def add(self, logits: np.ndarray, stamp: float) -> Label | None:
        """One frame's logits on the running sub-network; the new warm label, or None while warming."""
        if self.subnet is None:
            raise RuntimeError("OnlineLabels.add before start")
        self._logits.append(logits)
        self._stamps.append(stamp)
        if not self.warm:
            return None
        mean = np.mean(np.stack(self._logits), axis=0, dtype=np.float64).astype(np.float32)
        self.last = Label(mean, self.subnet, self.frames, tuple(self._stamps))
        return self.last
