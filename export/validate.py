"""Argument checks shared by ``export_bundle`` and the CLI, torch-free so bad input fails in milliseconds."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..core.files import check_regular
from ..core.sampling import frame_count_set
from ..core.validate import MAX_FRAME_COUNT
from .errors import ExportError

# Extra weight bytes, as a fraction of the shared ones, a bundle may spend on per-sub-network conv
# copies with the norm folded in (``fold.choose_conv_copies``); chosen with
# ``benchmarks/runtime_latency.py --compare-old --fold-budgets ...`` (see ``fold``'s module doc).
DEFAULT_FOLD_BUDGET = 0.02
MIN_OPSET, MAX_OPSET = 13, 21  # exported and parity-checked with torch 2.13 at 13, 17, 18, 20 and 21
MAX_VERIFY_CLIPS = 64  # clips of the parity check (each is a full clip at the largest frame count)
MAX_FOLD_BUDGET = 100.0


def parse_frames(frames: Sequence[int | str]) -> tuple[int, ...]:
    """Sorted unique positive frame counts, or an ExportError naming the bad value."""
    if not frames:
        raise ExportError("--frames is empty: give one or more positive frame counts, e.g. --frames 4 8 16")
    try:
        counts = frame_count_set(frames)
    except ValueError as e:
        raise ExportError(f"--frames: {e}") from None
    if counts[-1] > MAX_FRAME_COUNT:
        raise ExportError(f"--frames: {counts[-1]} is more than the {MAX_FRAME_COUNT} frames a graph may take")
    return counts


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
    if not 0 <= budget <= MAX_FOLD_BUDGET:  # also catches NaN
        raise ExportError(f"--fold-budget must be >= 0 and <= {MAX_FOLD_BUDGET:g} (a fraction of the shared weight "
                          f"bytes), got {budget}")


def check_opset(opset: int) -> None:
    """An ONNX opset the exporter was checked with (others fail deep inside torch.onnx)."""
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= MAX_OPSET:
        raise ExportError(f"--opset must be in [{MIN_OPSET}, {MAX_OPSET}], got {opset}")


def check_verify_clips(n: int) -> None:
    """Clips for the parity check: each is a full clip in memory, so the count is bounded."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_VERIFY_CLIPS:
        raise ExportError(f"--verify-clips must be in [1, {MAX_VERIFY_CLIPS}], got {n}")
