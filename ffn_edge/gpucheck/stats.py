"""Numbers the GPU check and the GPU benchmark share: latency percentiles and parity of two sets of logits."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def percentiles(samples_ms: Sequence[float]) -> tuple[float, float]:
    """(p50, p95) of latency samples in ms."""
    if not samples_ms:
        raise ValueError("no samples")
    return float(np.percentile(samples_ms, 50)), float(np.percentile(samples_ms, 95))


def parity(reference: Sequence[np.ndarray], got: Sequence[np.ndarray]) -> tuple[bool, float]:
    """(top-1 identical on every clip, max |delta logit|) of ``got`` against ``reference``."""
    if len(reference) != len(got) or not reference:
        raise ValueError("parity needs the same non-zero number of outputs on both sides")
    pairs = [(np.asarray(r, np.float64), np.asarray(g, np.float64)) for r, g in zip(reference, got, strict=True)]
    same = all(np.array_equal(r.argmax(-1), g.argmax(-1)) for r, g in pairs)
    return same, max(float(np.abs(r - g).max()) for r, g in pairs)
