"""``FFNRuntime.streams``' construction: the joint allocator for the bundle, then the MultiStream."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ...core.errors import ConfigError
from ..control.accuracy import AccuracyCurve
from ..control.allocator import JointAllocator
from ..control.budgets import SchedulerError
from ..media.sources import FrameSource
from .multi import MultiStream
from .options import StreamOptions
from .session_api import Session


def accuracy_curve(session: Session) -> AccuracyCurve:
    """The bundle's measured accuracy per frame count (``manifest.accuracy``), else the default curve."""
    m = session.manifest
    points = m.accuracy.top1 if m.accuracy is not None else None
    return AccuracyCurve(max(m.subnet_frame_counts), points)


def open_multi_stream(session: Session, sources: list[str | FrameSource], options: StreamOptions,
                      weights: Sequence[float] | None, min_accuracy: float | None, batching: bool,
                      candidates: Sequence[int] | None, hooks: tuple[Callable[..., Any] | None, ...]) -> MultiStream:
    """The MultiStream ``rt.streams`` returns (``hooks``: signals, opener, on_event)."""
    signals, opener, on_event = hooks
    try:
        allocator = JointAllocator(session.manifest.subnet_frame_counts, options.budgets(), candidates, {},
                                   curve=accuracy_curve(session), min_accuracy=min_accuracy, batching=batching)
    except SchedulerError as e:
        raise ConfigError(str(e)) from None
    return MultiStream(session, sources, None if weights is None else list(weights), options, allocator,
                       signals=signals, opener=opener, on_event=on_event)
