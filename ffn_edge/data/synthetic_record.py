"""The synthetic set as a checkpoint records it: its parameters, not where it was written.

A checkpoint trained on the synthetic set records the parameters of its validation split (every
clip is a function of them and the seed), so ``ffn-eval`` re-creates that split on any machine, once,
under ``$XDG_CACHE_HOME/ffn-edge/synthetic/<hash>/``, instead of following a path of the machine that
trained it. The values come from a file, so each is checked and bounded before anything is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .errors import DatasetError

# key -> (lowest, highest) accepted from a recorded spec (highest: bounds the disk and time it may take)
LIMITS = {"num_classes": (1, 64), "val_per_class": (1, 1000), "frames": (8, 512), "size": (16, 512),
          "seed": (0, 2**63 - 1)}


def val_spec(num_classes: int, val_per_class: int, frames: int, size: int, seed: int) -> dict[str, int]:
    """What a checkpoint records about the synthetic set it was validated on."""
    return check_spec({"num_classes": num_classes, "val_per_class": val_per_class, "frames": frames, "size": size,
                       "seed": seed})


def check_spec(spec: Any) -> dict[str, int]:
    """The spec with every value checked (DatasetError names the first bad one)."""
    if not isinstance(spec, dict) or set(spec) != set(LIMITS):
        raise DatasetError(f"recorded synthetic set: want exactly the keys {sorted(LIMITS)}, got {spec!r:.200}")
    for key, (lo, hi) in LIMITS.items():
        v = spec[key]
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise DatasetError(f"recorded synthetic set: {key} must be an integer in [{lo}, {hi}], got {v!r:.50}")
    return {k: spec[k] for k in LIMITS}


def read_synthetic_record(record: Path, params: dict[str, int]) -> dict[str, Any]:
    """The train/val lists of the synthetic set ``ffn-train`` wrote beside ``record`` for ``params``.

    A folder holding a set made with other parameters (another size, seed, class count...) is refused:
    training on it would silently use data other than the options say. A record from before the
    parameters were written down is taken as it is.
    """
    try:
        s = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DatasetError(f"{record}: cannot read the synthetic set's record ({e})") from None
    if not isinstance(s, dict) or not all(isinstance(s.get(k), str) for k in ("root", "train_list", "val_list")):
        raise DatasetError(f"{record}: not a synthetic set's record (delete it to make the set again)")
    old = s.get("params")
    if old is not None and old != params:
        diff = ", ".join(f"{k} {old.get(k)!r} (now {v!r})" for k, v in params.items() if old.get(k) != v)
        raise DatasetError(f"{record.parent}: holds a synthetic set made with other parameters: {diff}; "
                           "give another --data-dir, or delete that folder to make it again")
    return s


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ffn-edge" / "synthetic"


def synthetic_val_set(spec: Any, cache: Path | None = None) -> tuple[Path, Path]:
    """(val list, root) of the recorded synthetic validation split, generated on first use.

    Written to a temporary sibling and renamed into place, so an interrupted run leaves no half set.
    """
    from .synthetic import make_synthetic

    spec = check_spec(spec)
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    root = (cache or cache_root()) / key
    if not (root / "val.txt").is_file():
        root.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=root.parent))
        try:
            make_synthetic(tmp, num_classes=spec["num_classes"], train_per_class=0,
                           val_per_class=spec["val_per_class"], frames=spec["frames"], size=spec["size"],
                           seed=spec["seed"])
            try:
                tmp.rename(root)
            except OSError:  # another process finished first: use its copy
                if not (root / "val.txt").is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return root / "val.txt", root
