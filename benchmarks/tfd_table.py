"""Temporal Frequency Deviation and FFN vs ST from finished ``ffn-train`` runs (their last epoch's validation).

Every ``ffn-train`` run validates at all of ``--frame-counts`` (an ST model too, by its one
sub-network), so the last line of each run's ``log.jsonl`` holds what the paper's Fig. 1/6 compare:

* TFD: the ST model trained at H, evaluated at L/M/H (vs the ST model trained at each count);
* FFN vs ST: the one FFN model at L/M/H vs the ST model trained at that count.

    python benchmarks/tfd_table.py --ffn runs/x3d/ffn --st runs/x3d/st4 runs/x3d/st8 runs/x3d/st16
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ffn_edge.checkpoint import read_meta


def last_record(run: Path) -> dict:
    """The last epoch's record of a run directory (its ``log.jsonl``)."""
    lines = (run / "log.jsonl").read_text().splitlines()
    if not lines:
        raise SystemExit(f"{run}: log.jsonl is empty (run not finished?)")
    return json.loads(lines[-1])


def trained_frames(run: Path) -> int:
    """The frame count an ST run was trained at: its checkpoint's one sub-network."""
    counts = read_meta(run / "last.safetensors").config.frame_counts
    if len(counts) != 1:
        raise SystemExit(f"{run}: not an ST run (sub-networks for {counts})")
    return counts[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ffn", type=Path, required=True, help="run directory of the FFN model")
    ap.add_argument("--st", type=Path, nargs="+", required=True, help="run directories of the ST models")
    a = ap.parse_args()
    ffn = last_record(a.ffn)
    st = {trained_frames(r): last_record(r) for r in a.st}
    counts = sorted(int(n) for n in ffn["val_top1"])
    high = max(st)
    head = "".join(f"{f'{n}F':>8}" for n in counts)
    print(f"top-1 (%), last epoch ({ffn['epoch']} epochs FFN; ST: {', '.join(str(r['epoch']) for r in st.values())})")
    print(f"{'model':<28}{head}")
    print(f"{f'ST trained at {high} (TFD)':<28}" + "".join(f"{st[high]['val_top1'][str(n)]:>8.1f}" for n in counts))
    print(f"{'ST trained at each count':<28}" + "".join(
        f"{st[n]['val_top1'][str(n)]:>8.1f}" if n in st else f"{'-':>8}" for n in counts))
    print(f"{'FFN (one model)':<28}" + "".join(f"{ffn['val_top1'][str(n)]:>8.1f}" for n in counts))
    print(f"{'FFN - ST':<28}" + "".join(
        f"{ffn['val_top1'][str(n)] - st[n]['val_top1'][str(n)]:>+8.1f}" if n in st else f"{'-':>8}" for n in counts))


if __name__ == "__main__":
    main()
