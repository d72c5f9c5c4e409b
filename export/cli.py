"""``ffn-export``: a checkpoint -> a bundle (``ffn-export --ckpt M --frames 4 8 16 --out B``), and
TensorRT engines for a bundle on the target device (``ffn-export engines --bundle B [--fp16]``).

Every bad input ends in one line on stderr and a non-zero exit (``run_cli``), never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..bundle.accuracy import AccuracySpec, accuracy_from_json
from ..core import defaults as D
from ..core.argparsing import Parser
from ..core.deps import require_modules
from ..core.errors import ConfigError, run_cli
from ..core.files import parse_json, read_regular
from ..core.validate import INT8_ACTIVATIONS, INT8_LAYOUTS, MAX_JSON_BYTES
from .calib import DEFAULT_CALIB, DEFAULT_CALIB_CLIPS, SYNTHETIC, parse_calib
from .int8_config import (
    DEFAULT_ACTIVATIONS,
    DEFAULT_LAYOUT,
    DEFAULT_MIN_AGREEMENT,
    DEFAULT_SCOPE,
    LAYOUT_RATIONALE,
    Int8Options,
    QuantConfig,
)
from .tensorrt import require as require_tensorrt
from .validate import (
    DEFAULT_FOLD_BUDGET,
    check_checkpoint_path,
    check_fold_budget,
    check_opset,
    check_out,
    check_verify_clips,
    parse_frames,
)

PROG = "ffn-export"
# what exporting imports (ffn-export engines needs none of it: TensorRT is checked when it starts)
EXPORT_NEEDS = ("torch", "safetensors", "onnx", "onnxscript", "onnxruntime", "cv2", "tqdm")


def _export_parser() -> argparse.ArgumentParser:
    p = Parser(prog=PROG, description="Export an FFN checkpoint to a bundle of per-frame-count ONNX graphs "
                "sharing one weight file. 'ffn-export engines --help' builds TensorRT engines for a bundle.")
    p.add_argument("--ckpt", required=True, help="checkpoint (.safetensors) written by ffn-train")
    p.add_argument("--frames", nargs="*", default=None, required=True,
                   help="frame counts to serve, e.g. 4 8 16 (untrained counts use the nearest sub-network)")
    p.add_argument("--out", required=True, help="bundle directory to create (e.g. model.ffn)")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    p.add_argument("--no-verify", dest="verify", action="store_false",
                   help="skip the ONNX Runtime vs PyTorch parity check (on by default)")
    p.add_argument("--verify-clips", type=int, default=2, help="clips used for the parity check (default 2)")
    p.add_argument("--verify-list", help="TSM-style data list: verify on its first clips instead of synthetic ones")
    p.add_argument("--verify-root", help="root directory of --verify-list")
    p.add_argument("--verify-kind", choices=("frames", "video"), default="frames", help="--verify-list entries")
    p.add_argument("--frame-dim", choices=("static", "dynamic", "auto"), default=None,
                   help="frame dimension of the graphs; auto measures ONNX Runtime latency both ways (default static)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default 18)")
    p.add_argument("--fold-budget", type=float, default=None, metavar="FRACTION",
                   help="extra weight bytes, as a fraction of the shared ones, for per-sub-network copies of "
                   "early convolutions with their norm folded in (faster where activations are large; "
                   f"0: every convolution shared; default {DEFAULT_FOLD_BUDGET:g})")
    p.add_argument("--accuracy", metavar="EVAL_JSON",
                   help="record the top-1 per frame count that `ffn-eval --json` wrote into the manifest (what the "
                        "multi-stream allocator maximises; without it a documented default curve)")
    p.add_argument("--trt", action="store_true", help="also build TensorRT engines (needs a GPU and TensorRT)")
    p.add_argument("--fp16", action="store_true", help="TensorRT engines in fp16")
    q = p.add_argument_group("INT8 (static QDQ quantization with ONNX Runtime's tools)")
    q.add_argument("--int8", action="store_true", help="quantize every graph to INT8 (per-channel symmetric "
                   "weights, stored once for all sub-networks), each sub-network calibrated on its own n-frame clips")
    q.add_argument("--calib", default=None, metavar="SRC",
                   help=f"calibration clips: '{SYNTHETIC}' (the built-in synthetic set), a TSM-style data list file, "
                   f"or a folder of video files (default {DEFAULT_CALIB})")
    q.add_argument("--calib-root", help="root directory of a --calib data list (default: the list's folder)")
    q.add_argument("--calib-kind", choices=("frames", "video"), default="frames", help="--calib data list entries")
    q.add_argument("--calib-clips", type=int, default=None,
                   help=f"calibration clips per sub-network (default {DEFAULT_CALIB_CLIPS})")
    q.add_argument("--calib-shared", action="store_true",
                   help="one activation-range table for all sub-networks (MinMax over every sub-network's clips) "
                   "instead of one per sub-network: for comparison")
    q.add_argument("--int8-layout", choices=INT8_LAYOUTS, default=None,
                   help=f"'shared': INT8 weights shared, per-sub-network norms kept as ops; 'folded': every norm "
                   f"folded into per-sub-network INT8 weights (more bytes, fewer ops). Default {DEFAULT_LAYOUT}: "
                   f"{LAYOUT_RATIONALE}")
    q.add_argument("--int8-activations", choices=INT8_ACTIVATIONS, default=None,
                   help=f"u8: asymmetric uint8 (ONNX Runtime on x86 without VNNI); s8: symmetric int8 (what "
                   f"TensorRT accepts). Default {DEFAULT_ACTIVATIONS}")
    q.add_argument("--int8-min-agreement", type=float, default=None, metavar="SHARE",
                   help="refuse the export when an INT8 graph's top-1 agrees with FP32 on fewer than this share "
                   f"of the verification clips (default {DEFAULT_MIN_AGREEMENT:g})")
    return p


def _int8_options(a: argparse.Namespace) -> Int8Options | None:
    """Int8Options from the arguments; INT8-only options without --int8 are refused."""
    given = [f for f, v in (("--calib", a.calib), ("--calib-root", a.calib_root), ("--calib-clips", a.calib_clips),
                             ("--int8-layout", a.int8_layout), ("--int8-activations", a.int8_activations),
                             ("--int8-min-agreement", a.int8_min_agreement)) if v is not None]
    given += ["--calib-shared"] if a.calib_shared else []
    if not a.int8:
        if given:
            raise ConfigError(f"{given[0]} applies to INT8 export: add --int8")
        return None
    cfg = QuantConfig(scope="shared" if a.calib_shared else DEFAULT_SCOPE,
                      activations=a.int8_activations or DEFAULT_ACTIVATIONS, layout=a.int8_layout or DEFAULT_LAYOUT)
    kw = {k: v for k, v in (("calib_clips", a.calib_clips), ("min_agreement", a.int8_min_agreement)) if v is not None}
    return Int8Options(calib=parse_calib(a.calib or DEFAULT_CALIB, a.calib_root, a.calib_kind), config=cfg, **kw)


def _engines_parser() -> argparse.ArgumentParser:
    p = Parser(prog=f"{PROG} engines", description="Build TensorRT engines for a bundle on this device "
                "(cached per GPU model, TensorRT version and precision).")
    p.add_argument("--bundle", required=True, help="bundle directory written by ffn-export")
    p.add_argument("--fp16", action="store_true", help="fp16 engines (default fp32)")
    p.add_argument("--max-batch", type=int, default=D.MAX_BATCH,
                   help=f"largest batch the engines accept (default {D.MAX_BATCH})")
    p.add_argument("--rebuild", action="store_true", help="rebuild even when cached engines match this device")
    p.add_argument("--device", type=int, default=0, help="CUDA device to build on (default 0)")
    return p


def _engines(argv: list[str]) -> int:
    a = _engines_parser().parse_args(argv)
    if a.max_batch < 1 or a.device < 0:
        raise ConfigError(f"--max-batch must be >= 1 and --device >= 0, got {a.max_batch} and {a.device}")
    from .tensorrt import build_engines

    entry = build_engines(a.bundle, fp16=a.fp16, max_batch=a.max_batch, rebuild=a.rebuild, device=a.device)
    for frames, e in sorted(entry["engines"].items(), key=lambda kv: int(kv[0])):
        print(f"{frames:>3} frames: {e['file']} (profile {e['profile']})")
    for subnet, e in sorted((entry.get("steps") or {}).items(), key=lambda kv: int(kv[0])):
        print(f"step graph of sub-network {subnet}: {e['file']}")
    return 0


def read_accuracy(path: Path) -> AccuracySpec:
    """The accuracy curve an ``ffn-eval --json`` file holds (ConfigError, one line, when it is not one)."""
    raw = read_regular(path, MAX_JSON_BYTES, ConfigError, follow_symlinks=True)
    return accuracy_from_json(parse_json(raw, str(path), ConfigError), path.name, ConfigError)


def _export(argv: list[str]) -> int:
    a = _export_parser().parse_args(argv)
    if (a.verify_list is None) != (a.verify_root is None):
        raise ConfigError("--verify-list and --verify-root go together")
    check_verify_clips(a.verify_clips)
    if a.opset is not None:
        check_opset(a.opset)
    if a.fp16 and not a.trt:
        raise ConfigError("--fp16 applies to TensorRT engines: add --trt")
    frames = parse_frames(a.frames)  # fail fast, before torch is imported
    int8 = _int8_options(a)
    if a.fold_budget is not None:
        check_fold_budget(a.fold_budget)
    check_out(Path(a.out), a.force)
    check_checkpoint_path(Path(a.ckpt))
    if a.trt:
        require_tensorrt()
    require_modules(EXPORT_NEEDS)  # one line naming the package, not a traceback from the import below
    from .bundle import VerifyData, export_bundle

    accuracy = read_accuracy(Path(a.accuracy)) if a.accuracy is not None else None
    kw = {k: v for k, v in (("opset", a.opset), ("frame_dim", a.frame_dim), ("fold_budget", a.fold_budget),
                            ("accuracy", accuracy)) if v is not None}
    data = VerifyData(a.verify_list, a.verify_root, a.verify_kind) if a.verify_list else None
    out = export_bundle(a.ckpt, frames, a.out, force=a.force, verify=a.verify, n_verify=a.verify_clips,
                        verify_data=data, trt=a.trt, fp16=a.fp16, int8=int8, **kw)
    from ..bundle.manifest import load_manifest

    m = load_manifest(out, verify=False)
    checks = m.extra["verification"].get("graphs", {})
    for g in m.graphs:
        c = checks.get(str(g.frames))
        parity = f", max |diff| {c['max_abs_diff']:.2g}, top-1 equal" if c else ""
        print(f"{g.frames:>3} frames -> sub-network {g.subnet} ({m.subnet_frame_counts[g.subnet]} frames): "
              f"{g.file}{parity}")
    size = sum(f["size"] for f in m.files.values())
    shared = m.extra["sharing"]["shared_tensors"]
    q = m.extra.get("quantization")
    if q:
        c = q["calibration"]
        agree = ", ".join(f"{n}: {v:.0%}" for n, v in sorted(q["agreement"].get("graphs", {}).items(),
                                                                  key=lambda kv: int(kv[0])))
        print(f"INT8 ({q['layout']} layout, {q['activations']} activations): calibrated {c['scope']} on {c['count']} "
              f"clips of {c['data']} ({c['method']})" + (f"; top-1 agreement with FP32 {agree}" if agree else ""))
    print(f"wrote {out} ({size / 1e6:.1f} MB; {shared} shared tensors in {m.weights_file}, each once)")
    return 0


def run(argv: list[str] | None = None) -> int:
    """``ffn-export [engines] ...`` with FFNErrors propagating (for callers that handle them)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["engines"]:
        return _engines(argv[1:])
    return _export(argv)


def main() -> None:
    """Console entry point: a bad input is one line on stderr and exit code 2 (``run_cli``)."""
    run_cli(PROG, run)


if __name__ == "__main__":
    main()
