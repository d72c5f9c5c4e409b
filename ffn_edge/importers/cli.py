"""ffn-import: turn a released checkpoint (the FFN authors', TSM's, PySlowFast's, UniFormer's,
torchvision's or timm's) into an ffn-edge checkpoint that ffn-eval, ffn-export and ffn-train --init take.

Reads .pth / .pth.tar / .pyth files with torch.load(weights_only=True): no code from the file runs.
Every tensor is placed by an explicit table per source (docs/import.md); a tensor that no rule uses
or a model tensor that nothing fills refuses the import with one line naming the first few.

  ffn-import --from authors-2d --arch tsm_resnet50 --ckpt TSM_FFN_sthv1.pth.tar \\
      --classes category.txt --out tsm_ffn_sthv1.safetensors
  ffn-import --from tsm --arch tsm_resnet50 --ckpt TSM_kinetics_RGB_resnet50_shift8_blockres_avg_segment8_e50.pth \\
      --classes kinetics400 --as ffn-init --frames 4 8 16 --out tsm_k400_init.safetensors
"""

from __future__ import annotations

import argparse

from ..core.argparsing import Parser
from ..core.errors import ConfigError, run_cli
from .build import CHANNEL_ORDERS, MODES, import_checkpoint
from .sources import SOURCES, SPECS


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="ffn-import", description=__doc__.split("\n\n")[0],
               formatter_class=argparse.RawDescriptionHelpFormatter, epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("--from", dest="source", required=True, choices=SOURCES, help="where the checkpoint comes from")
    p.add_argument("--arch", required=True, choices=sorted({s.arch for s in SPECS}), help="ffn-edge architecture")
    p.add_argument("--ckpt", required=True, help="the released .pth / .pth.tar / .pyth file")
    p.add_argument("--classes", required=True,
                   help="class-name file (one per line, label order) or kinetics400 / kinetics400-pyslowfast")
    p.add_argument("--out", required=True, help="the ffn-edge checkpoint to write (.safetensors)")
    p.add_argument("--as", dest="as_", choices=MODES,
                   help="plain sources: st (one frame count, default) or ffn-init; FFN sources: ffn (default)")
    p.add_argument("--frames", type=int, nargs="+", help="sub-network frame counts (default: the source's)")
    p.add_argument("--channels", choices=CHANNEL_ORDERS,
                   help="channel order the source was trained on (default: the table's; BGR is folded into the model)")
    p.add_argument("--width-mult", type=float, default=1.0, help=argparse.SUPPRESS)  # tests: small models
    p.add_argument("--seed", type=int, default=0, help="seed of a new head / modules the source lacks")
    return p


def cli(argv: list[str] | None = None) -> int:
    from ..checkpoint import save_checkpoint

    a = build_parser().parse_args(argv)
    if a.frames is not None and any(f < 1 for f in a.frames):
        raise ConfigError(f"--frames must be positive, got {a.frames}")
    try:
        r = import_checkpoint(a.source, a.arch, a.ckpt, a.classes, as_=a.as_, frames=a.frames,
                              width_mult=a.width_mult, channels=a.channels, seed=a.seed)
    except ValueError as e:  # a ModelConfig field out of range (e.g. --frames)
        raise ConfigError(str(e).splitlines()[0]) from None
    save_checkpoint(a.out, r.model, r.meta)
    rec = r.meta.extra["import"]
    print(f"ffn-import: {a.out}: {a.arch} {rec['as']} frames {list(r.meta.config.frame_counts)}, "
          f"{len(r.meta.class_names)} classes; {rec['tensors_mapped']} tensors mapped, {rec['ignored']} ignored, "
          f"{len(rec['left_at_init'])} left at init, {rec['identity_weight_alterations']} identity WA, "
          f"new head: {'yes' if rec['new_head'] else 'no'}; sha256 {rec['sha256'][:16]}...")
    return 0


def main() -> None:
    """Console entry point: a bad input is one line on stderr and exit code 2 (``run_cli``)."""
    run_cli("ffn-import", cli)
