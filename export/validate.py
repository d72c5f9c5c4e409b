"""Argument checks shared by ``export_bundle`` and the CLI, torch-free so bad input fails in milliseconds."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..runtime.files import check_regular
from ..sampling import frame_count_set
from .errors import ExportError

# Extra weight bytes, as a fraction of the shared ones, a bundle may spend on per-sub-network conv
# copies with the norm folded in (``fold.choose_conv_copies``); chosen with
# ``benchmarks/runtime_latency.py --compare-old --fold-budgets ...`` (see ``fold``'s module doc).
DEFAULT_FOLD_BUDGET = 0.02


def parse_frames(frames: Sequence[int | str]) -> tuple[int, ...]:
    """Sorted unique positive frame counts, or an ExportError naming the bad value."""
    if not frames:
        raise ExportError("--frames is empty: give one or more positive frame counts, e.g. --frames 4 8 16")
    try:
        return frame_count_set(frames)
    except ValueError as e:
        raise ExportError(f"--frames: {e}") from None


def check_out(out: Path, force: bool) -> None:
    """Refuse an existing output unless ``force``; never replace something that is not a directory."""
    if out.exists() and not force:
        raise ExportError(f"{out}: output already exists (use --force to replace it)")
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out}: exists and is not a directory; refusing to replace it")


def check_checkpoint_path(path: Path) -> None:
    """The checkpoint must be a regular file, not a FIFO or device (its contents: ``load_checkpoint``)."""
    if not path.exists() and not path.is_symlink():
        raise ExportError(f"{path}: checkpoint file not found")
    check_regular(path, ExportError, follow_symlinks=True)


def check_fold_budget(budget: float) -> None:
    """The conv-copy budget is a non-negative fraction of the shared weight bytes (0: no copies)."""
    if not budget >= 0:  # also catches NaN
        raise ExportError(f"--fold-budget must be >= 0 (a fraction of the shared weight bytes), got {budget}")
