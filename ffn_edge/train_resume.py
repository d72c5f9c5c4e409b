"""``ffn-train --resume`` takes the run's saved options: only flags given on the command line override them.

The options a run was started with are in its checkpoints (``extra.train_config``); retyping every
flag to resume would be error-prone. Options that only concern this invocation (``RESUME_FREE``:
device, workers, --stop-after, ...) are never taken from the run. A flag given now that changes a
saved option (a different architecture, data set, ...) is refused by the trainer's resume check,
in one line naming it.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .checkpoint import read_meta


def given_flags(parser: argparse.ArgumentParser, argv: Sequence[str] | None, dests: Iterable[str]) -> dict[str, Any]:
    """The options present on the command line (parsed again with every default suppressed)."""
    wanted = set(dests)
    for action in parser._actions:  # set_defaults would put the SUPPRESS string through each flag's type
        if action.dest in wanted:
            action.default = argparse.SUPPRESS
    return vars(parser.parse_args(argv))


def saved_options(out: Path) -> dict[str, Any] | None:
    """The train_config of the run in ``out`` (its first ``last*.safetensors``), None when there is none yet."""
    found = sorted(out.glob("last*.safetensors"))
    if not found:
        return None
    saved = read_meta(found[0]).extra.get("train_config")
    return saved if isinstance(saved, dict) else None


def resume_values(values: dict[str, Any], given: dict[str, Any], saved: dict[str, Any] | None,
                  free: set[str]) -> dict[str, Any]:
    """``values`` (parsed, defaults filled) with every option not given now and not in ``free`` taken from ``saved``."""
    if saved is None:
        return values
    taken = {k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()
             if k in values and k not in free and k not in given}
    return {**values, **taken}
