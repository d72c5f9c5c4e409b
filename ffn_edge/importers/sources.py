"""Every importer source x architecture, by ``--from`` name (one table file per source)."""

from __future__ import annotations

from ..core.errors import ConfigError
from . import authors_2d, authors_slowfast, authors_uniformer, pyslowfast, timm, torchvision, tsm, uniformer
from .spec import SourceSpec

SPECS: tuple[SourceSpec, ...] = (*authors_2d.SPECS, *authors_slowfast.SPECS, *authors_uniformer.SPECS,
                                 *tsm.SPECS, *pyslowfast.SPECS, *uniformer.SPECS, *torchvision.SPECS, *timm.SPECS)
SOURCES: tuple[str, ...] = tuple(dict.fromkeys(s.source for s in SPECS))


def find_spec(source: str, arch: str) -> SourceSpec:
    """The table for ``source`` x ``arch``, or a one-line ConfigError listing what exists."""
    if source not in SOURCES:
        raise ConfigError(f"unknown source {source!r}; known: {', '.join(SOURCES)}")
    for s in SPECS:
        if s.source == source and s.arch == arch:
            return s
    archs = [s.arch for s in SPECS if s.source == source]
    raise ConfigError(f"source {source} has no table for {arch}; it fills: {', '.join(archs)}")
