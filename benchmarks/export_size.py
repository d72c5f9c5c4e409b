"""Bytes on disk: one FFN bundle serving 4/8/16 frames vs what Separated Training ships.

Claim: an FFN bundle for frame counts 4/8/16 costs at most 1.05x one single-frame-count
export, where ST needs three separate models (3x). Rows:

* FFN bundle: one checkpoint with 3 sub-networks -> ``ffn-export --frames 4 8 16`` (``--shift causal``:
  a causal checkpoint, whose bundle also holds one step graph per sub-network);
* ST, 3 exports: three plain TSM checkpoints (one per frame count) -> one bundle each, summed;
* one single export: one plain TSM checkpoint, one frame count (the denominator);
* plain torch.onnx: the last ST model as one self-contained ONNX file, traced at batch 1 (BN folded
  into its convs; the static shapes also let the exporter store the shift's zero padding as
  constants): a sanity check that the bundle format itself adds nothing.

Untrained weights: sizes do not depend on the values (nothing is compressed). Parity checks are
off by default (``--verify`` turns them on; slow at 224 on a CPU).

    python benchmarks/export_size.py [--arch tsm_resnet50] [--size 224] [--classes 174] [--shift causal]
                                     [--json out.json]
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import warnings
from pathlib import Path

import torch
from ffn_edge.export import export_bundle

from ffn_edge.checkpoint import CheckpointMeta, save_checkpoint
from ffn_edge.core.validate import DEFAULT_SHIFT, SHIFT_MODES
from ffn_edge.models import ModelConfig, create_model


def _bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _checkpoint(path: Path, cfg: ModelConfig, size: int) -> torch.nn.Module:
    model = create_model(cfg).eval()
    save_checkpoint(path, model, CheckpointMeta(cfg, [f"c{i}" for i in range(cfg.num_classes)], input_size=size,
                                                resize_shorter=round(size * 8 / 7)))
    return model


def _plain_onnx(model: torch.nn.Module, frames: int, size: int, path: Path) -> int:
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, frames, 3, size, size),), buf, dynamo=False, opset_version=18)
    path.write_bytes(buf.getvalue())
    return path.stat().st_size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="tsm_resnet50")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--classes", type=int, default=174)
    ap.add_argument("--width-mult", type=float, default=1.0)
    ap.add_argument("--frames", type=int, nargs="+", default=[4, 8, 16])
    ap.add_argument("--shift", choices=SHIFT_MODES, default=DEFAULT_SHIFT,
                    help="temporal shift of the FFN checkpoint (causal bundles add one step graph per sub-network)")
    ap.add_argument("--verify", action="store_true", help="run the exporter's parity check too (slow)")
    ap.add_argument("--json", type=Path, help="also write the table as JSON here")
    a = ap.parse_args()
    frames = sorted(a.frames)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ffn_cfg = ModelConfig(a.arch, a.classes, frame_counts=tuple(frames), width_mult=a.width_mult, shift=a.shift)
        _checkpoint(root / "ffn.safetensors", ffn_cfg, a.size)
        bundle = export_bundle(root / "ffn.safetensors", frames, root / "ffn.ffn", verify=a.verify)
        ffn = _bytes(bundle)
        st = {}
        for n in frames:
            cfg = ModelConfig(a.arch, a.classes, frame_counts=(n,), specialised_norm=False, weight_alteration=False,
                              width_mult=a.width_mult)
            model = _checkpoint(root / f"st{n}.safetensors", cfg, a.size)
            st[n] = _bytes(export_bundle(root / f"st{n}.safetensors", [n], root / f"st{n}.ffn", verify=a.verify))
        single_n = frames[len(frames) // 2]
        single = st[single_n]
        plain = _plain_onnx(model, frames[-1], a.size, root / "plain.onnx")
    rows = [
        (f"FFN bundle, frames {'/'.join(map(str, frames))}, {a.shift}", ffn),
        (f"ST: {len(frames)} single-frame-count exports", sum(st.values())),
        (f"one single export ({single_n} frames)", single),
        (f"plain torch.onnx file ({frames[-1]} frames, batch 1)", plain),
    ]
    title = f"{a.arch} width {a.width_mult} @ {a.size}px, {a.classes} classes"
    print(title)
    print(f"{'what':<48} {'bytes':>12} {'MB':>8} {'x single':>9}")
    for what, b in rows:
        print(f"{what:<48} {b:>12,} {b / 1e6:>8.2f} {b / single:>9.3f}")
    ok = ffn <= 1.05 * single
    print(f"goal FFN bundle <= 1.05x one export: {'met' if ok else 'NOT met'} ({ffn / single:.3f}x)")
    if a.json:
        a.json.write_text(json.dumps({"config": title, "rows": dict(rows), "ratio": ffn / single}, indent=2))


if __name__ == "__main__":
    main()
