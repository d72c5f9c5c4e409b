"""Re-seal a checkpoint trained on the synthetic set so that it records no path of the machine that trained it.

Older checkpoints recorded the absolute folder their synthetic set was written to (``extra.data``);
``ffn-eval`` on another machine could not find it. This rewrites that record as the set's parameters
(what ``ffn-train`` records now), through the checkpoint API: the source's checksum is verified on
load, the tensors are written back unchanged, and the new file gets its own checksum.

    python tools/portable_checkpoint.py IN.safetensors OUT.safetensors   (OUT may be IN)

Refuses (exit 2, one line) a checkpoint not trained on the synthetic set, and one with an absolute
path anywhere else in its notes, rather than guessing.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

from ffn_edge.checkpoint import load_checkpoint, save_checkpoint
from ffn_edge.core.errors import ConfigError, run_cli
from ffn_edge.data.synthetic_record import val_spec


def absolute_paths(value: Any, where: str = "") -> list[str]:
    """``where: value`` of every string in ``value`` (nested dicts / lists) that is an absolute path."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in absolute_paths(v, f"{where}.{k}" if where else str(k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in absolute_paths(v, f"{where}[{i}]")]
    if isinstance(value, str) and (value.startswith(("/", "\\\\", "~")) or value[1:3] in (":\\", ":/")):
        return [f"{where}: {value}"]
    return []


def make_portable(src: Path, dst: Path) -> None:
    model, meta, extra_tensors = load_checkpoint(src, with_extra=True)
    cfg = meta.extra.get("train_config", {})
    if cfg.get("dataset") != "synthetic":
        raise ConfigError(f"{src}: not trained on the synthetic set (train_config.dataset={cfg.get('dataset')!r})")
    meta.extra["data"] = {"kind": "frames", "synthetic": val_spec(
        cfg["synth_classes"], cfg["synth_val_per_class"], cfg["synth_frames"], cfg["synth_size"], cfg["seed"])}
    left = absolute_paths(meta.extra)
    if left:
        raise ConfigError(f"{src}: other absolute paths in its notes, not rewritten: {'; '.join(left)}")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    save_checkpoint(dst, model, meta, extra_tensors)
    again, _ = load_checkpoint(dst)  # checksum verified again
    for k, v in again.state_dict().items():
        if not torch.equal(v, before[k]):
            raise RuntimeError(f"{dst}: tensor {k} changed")


def main() -> int:
    if len(sys.argv) != 3:
        raise ConfigError("usage: python tools/portable_checkpoint.py IN.safetensors OUT.safetensors")
    make_portable(Path(sys.argv[1]), Path(sys.argv[2]))
    print(f"wrote {sys.argv[2]}")
    return 0


if __name__ == "__main__":
    run_cli("portable_checkpoint", main)
