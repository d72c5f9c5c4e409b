"""A multi-stream's sources and weights, checked before any capture opens (one-line ConfigError each)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ...core import validate as V
from ...core.errors import ConfigError
from ..control.allocator import MAX_WEIGHT


def check_sources(names: Sequence[str], weights: Sequence[float] | None) -> list[float]:
    """The weights (default 1 each) for ``names``: 1..MAX_STREAMS distinct sources, weights in (0, MAX_WEIGHT]."""
    if isinstance(names, (str, bytes)):
        raise ConfigError("streams takes a list of sources (for one source use rt.stream)")
    if not names:
        raise ConfigError("streams needs at least one source, got an empty list")
    if len(names) > V.MAX_STREAMS:
        raise ConfigError(f"at most {V.MAX_STREAMS} streams per session, got {len(names)}")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ConfigError(f"source {name!r} is given twice (each source is one stream)")
        seen.add(name)
    if weights is None:
        return [1.0] * len(names)
    if isinstance(weights, (str, bytes)) or len(weights) != len(names):
        raise ConfigError(f"weights: one per source ({len(names)}), got {weights!r}")
    for name, w in zip(names, weights, strict=True):
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or not 0 < w <= MAX_WEIGHT:
            raise ConfigError(f"weight of {name!r} must be a number in (0, {MAX_WEIGHT:g}], got {w!r}")
    return [float(w) for w in weights]
