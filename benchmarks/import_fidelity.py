"""Import fidelity per source x architecture: tensors mapped / ignored / left at init, import time,
max |logit difference| of the imported model vs a model with the same weights placed by hand (the
test suite's hand placement) at every sub-network, and — with ``--authors-code DIR`` (the FFN
authors' ``2D_Network/ops/backbone`` files copied into ``DIR/authors_backbone/``, not part of
ffn-edge) — vs the authors' own TSM-FFN / TEA-FFN forward at 2-20 frames (nearest sub-network,
their eval branch), full-width ResNet-50 / Res2Net-50 with random synthetic weights.

  python benchmarks/import_fidelity.py [--authors-code /tmp/authors_ffn] [--size 112]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import import_sources as S  # noqa: E402
import test_import as T  # noqa: E402

from ffn_edge.importers import import_checkpoint  # noqa: E402

CASES = [  # (label, source, arch, generator, kwargs, frames, hand placement)
    ("authors TSM-FFN", "authors-2d", "tsm_resnet50", lambda: S.authors_tsm_ffn(16, 5), {}, (4, 8, 16), None),
    ("authors TEA-FFN", "authors-2d", "tea_resnet50", lambda: S.authors_tea_ffn(16, 5), {}, (4, 8, 16), None),
    ("authors SlowFast-FFN", "authors-slowfast", "slowfast_r50", lambda: S.slowfast(16, 5, True), {},
     (16, 32, 64), None),
    ("authors UniFormer-FFN", "authors-uniformer", "uniformer_s", lambda: S.uniformer(T.UNI_DIMS, 5, True), {},
     (4, 8, 16), None),
    ("TSM repo (ffn-init)", "tsm", "tsm_resnet50", lambda: S.tsm_repo(16, 5), {"as_": "ffn-init"}, (4, 8, 16), None),
    ("PySlowFast (ffn-init)", "pyslowfast", "slowfast_r50", lambda: S.slowfast(16, 5, False), {"as_": "ffn-init"},
     (16, 32, 64), None),
    ("UniFormer (st 8)", "uniformer", "uniformer_s", lambda: S.uniformer(T.UNI_DIMS, 5, False),
     {"as_": "st", "frames": [8]}, (8,), None),
    ("torchvision R50 (st 8)", "torchvision", "tsm_resnet50", lambda: S.torchvision_resnet50(16), {"as_": "st"},
     (8,), None),
    ("timm Res2Net (ffn-init)", "timm", "tea_resnet50", lambda: S.timm_res2net50(16), {"as_": "ffn-init"},
     (4, 8, 16), None),
]


def _hand(label: str, sd, frames):
    """The test suite's independent hand placement, where it has one (else None)."""
    if label == "authors SlowFast-FFN":
        return T._slowfast_hand(sd, ffn=True, frames=frames), True
    if label == "PySlowFast (ffn-init)":
        return T._slowfast_hand(sd, ffn=False, frames=frames), False
    if label == "authors UniFormer-FFN":
        return T._uniformer_hand(sd, ffn=True, frames=frames), False
    if label == "UniFormer (st 8)":
        return T._uniformer_hand(sd, ffn=False, frames=frames, wa=False), False
    return None, False


def table(tmp: Path) -> None:
    (tmp / "c.txt").write_text("a\nb\nc\nd\ne\n")
    print("| source x arch | mapped | ignored | left at init | new head | import s | max |dlogit| vs hand |")
    print("|---|---|---|---|---|---|---|")
    for label, source, arch, gen, kw, frames, _ in CASES:
        obj = gen()
        path = tmp / "src.pth"
        torch.save(obj, path)
        r = import_checkpoint(source, arch, path, str(tmp / "c.txt"), width_mult=0.25, **kw)
        hand, bgr = _hand(label, T._sd(obj), frames)
        diff = "-"
        if hand is not None:
            worst = 0.0
            with torch.no_grad():
                for k, n in enumerate(frames):
                    x = T._clip(n, k)
                    worst = max(worst, float((r.model(x, subnet=k) - hand(x.flip(2) if bgr else x, subnet=k))
                                             .abs().max()))
            diff = f"{worst:.1e}"
        p = r.placement
        print(f"| {label} -> {arch} | {len(p.mapped)} | {len(p.ignored)} | {len(p.left_at_init)} | "
              f"{'yes' if p.new_head else 'no'} | {r.seconds:.2f} | {diff} |")


def authors(code: Path, tmp: Path, size: int) -> None:
    """Imported model vs the authors' backbone (+ TSN's new_fc and average consensus), eval branch."""
    sys.path.insert(0, str(code))
    import authors_backbone.resnet_TEA_FFN as tea  # noqa: PLC0415
    import authors_backbone.resnet_TSM_FFN as tsm  # noqa: PLC0415

    (tmp / "c.txt").write_text("a\nb\nc\nd\ne\n")
    print("\n| authors' code | frames (sub-network) | max |dlogit| | max |logit| |")
    print("|---|---|---|---|")
    for label, arch, gen, build in (("TSM-FFN", "tsm_resnet50", S.authors_tsm_ffn, tsm.resnet50),
                                    ("TEA-FFN", "tea_resnet50", S.authors_tea_ffn, tea.resnet50)):
        obj = gen(64, 5, seed=1)
        torch.save(obj, tmp / "a.pth")
        r = import_checkpoint("authors-2d", arch, tmp / "a.pth", str(tmp / "c.txt"))
        sd = T._sd(obj)
        backbone_sd = {k.removeprefix("base_model."): v for k, v in sd.items() if k.startswith("base_model.")}
        for n in (2, 4, 6, 8, 12, 16, 20):
            k = r.model.subnet_for(n)
            theirs = build(False, num_segments_H=n, num_segments_M=n, num_segments_L=n).eval()
            theirs.fc = torch.nn.Identity()  # TSN: fc -> Dropout, new_fc applied after the backbone
            theirs.avgpool = torch.nn.AdaptiveAvgPool2d(1)  # TEA's AvgPool2d(7) is this at 224 px
            missing, unexpected = theirs.load_state_dict(backbone_sd, strict=False)
            assert not unexpected and all(m.startswith("fc.") for m in missing), (missing, unexpected)
            x = torch.randn(1, n, 3, size, size, generator=torch.Generator().manual_seed(n))
            args = [None, None, None]
            args[k] = x.view(-1, 3, size, size)
            with torch.no_grad():
                feats = theirs(*args, False)
                ref = torch.nn.functional.linear(feats, sd["new_fc.weight"], sd["new_fc.bias"]).view(1, n, -1).mean(1)
                ours = r.model(x)
            print(f"| {label} | {n} ({r.meta.config.frame_counts[k]}) | {float((ours - ref).abs().max()):.1e} | "
                  f"{float(ref.abs().max()):.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--authors-code", type=Path, help="dir holding authors_backbone/ (the authors' 2D backbones)")
    ap.add_argument("--size", type=int, default=112, help="input side for the authors' comparison")
    ap.add_argument("--authors-only", action="store_true", help="skip the per-source table")
    a = ap.parse_args()
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        if not a.authors_only:
            table(Path(d))
        if a.authors_code:
            authors(a.authors_code, Path(d), a.size)
    print(f"\n({time.perf_counter() - t0:.0f} s, torch {torch.__version__})")


if __name__ == "__main__":
    main()
