"""Shift buffers that live on a device: two sets per stream, swapped each step, never copied to the host.

A step reads the buffers of set A and writes the next ones into set B; the next step reads B and
writes A. ``DeviceState`` is the handle a stream holds (opaque to it): ``run`` takes it once and
returns the next handle for the same two sets, so an old handle, whose set the following step
overwrites, is refused instead of silently reading the wrong buffers. The device memory is freed
when the last handle of a stream is dropped, or when the step graphs close.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from ...core.errors import InputError


class BufferPair:
    """One stream's two sets of device buffers for one sub-network; ``sets[0]`` holds the next step's inputs."""

    def __init__(self, owner: object, subnet: int, sets: list[Any], free: Callable[[], None] | None = None) -> None:
        self.owner, self.subnet, self.sets = owner, subnet, sets
        self.live: DeviceState | None = None
        self.release = weakref.finalize(self, free) if free is not None else None

    def swap(self) -> DeviceState:
        """After a step wrote ``sets[1]``: it becomes the next inputs; the handle for it."""
        self.sets.reverse()
        return DeviceState(self)


class DeviceState:
    """A stream's shift buffers on the device (opaque): pass it to the next ``run``, once."""

    __slots__ = ("_pair",)

    def __init__(self, pair: BufferPair) -> None:
        self._pair = pair
        pair.live = self

    def claim(self, owner: object, subnet: int) -> BufferPair:
        """The buffers behind this handle, if it is the latest one of its stream and fits ``owner``/``subnet``."""
        p = self._pair
        if p.owner is not owner:
            raise InputError("this step state belongs to other step graphs (zero_state of these graphs starts one)")
        if p.subnet != subnet:
            raise InputError(f"this step state holds sub-network {p.subnet}'s buffers, not {subnet}'s "
                             "(a switch starts from zero_state)")
        if p.live is not self:
            raise InputError("this step state was already used: pass the state the last run returned")
        return p


def as_device_state(state: object) -> DeviceState:
    """``state`` if it is a ``DeviceState``; InputError otherwise (a host state given to GPU step graphs)."""
    if not isinstance(state, DeviceState):
        raise InputError(f"this state ({type(state).__name__}) is not from these step graphs' zero_state")
    return state
