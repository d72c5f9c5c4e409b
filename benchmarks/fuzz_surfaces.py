"""More surfaces for ``fuzz.py``: every CLI's options, video sources with odd metadata, benchmark caches.

Each runner takes (case index, shared work folder, this case's own folder) and returns (outcome, detail)
like fuzz.py's; an FFNError it raises is counted there as documented. A case that leaves any file
changed outside its own folder (the shared fixtures, the work folder it runs in) is ``touched``.
"""

from __future__ import annotations

import math
import os
import stat
import sys
from pathlib import Path
from typing import Any

import numpy as np

# ---- values an attacker types where a number or a path goes --------------------------------------------
NUMBERS = ["nan", "inf", "-inf", "NaN", "+inf", "-1", "0", "-0", "1", "2", "3.5", "1e308", "1e-320", "1e400",
           "9" * 5000, "9" * 100_000, "", " ", "é", "٣", "1_000", "0x10", " 5", "5 ", "1,5", "--", "-", "4 8",
           "256", "257", "1000000", "-1e9", "0.0001", "1e3", "4"]


def _paths(work: Path, case: Path) -> list[str]:
    """A FIFO, a folder, a missing path, a read-only file, a device, a very long name, a NUL-free odd name."""
    fifo = case / "fifo"
    if not fifo.exists():
        os.mkfifo(fifo)
    ro = case / "ro.bin"
    if not ro.exists():
        ro.write_bytes(b"\0" * 16)
        ro.chmod(0o444)
    return [str(fifo), str(case), str(case / "missing"), str(ro), "/dev/null", str(case / ("x" * 300)),
            str(case / "ünï cödé"), "", "-"]


def _value(rng: np.random.Generator, work: Path, case: Path, path_like: bool) -> str:
    pool = _paths(work, case) if path_like and rng.random() < 0.7 else NUMBERS
    return pool[int(rng.integers(len(pool)))]


def _options(parser: Any) -> list[tuple[str, bool]]:
    """(flag, takes a path?) for every option of ``parser`` that takes a value."""
    out = []
    for a in parser._actions:
        if a.option_strings and a.nargs != 0 and a.dest != "help":
            flag = a.option_strings[-1]
            out.append((flag, any(w in flag for w in ("path", "dir", "out", "list", "root", "ckpt", "init",
                                                      "pretrained", "bundle", "video", "output", "data"))))
    return out


# ---- files outside the case folder -------------------------------------------------------------------------
def snapshot(work: Path, case: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of everything under ``work`` except the case folders."""
    seen = {}
    for root, dirs, files in os.walk(work):
        dirs[:] = [d for d in dirs if not d.startswith("case-")]
        for name in files + dirs:
            p = os.path.join(root, name)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            seen[p] = (st.st_size if not stat.S_ISDIR(st.st_mode) else 0, st.st_mtime_ns)
    return seen


def touched(before: dict, after: dict) -> str:
    changed = sorted(set(before) ^ set(after)) + sorted(p for p in before if p in after and before[p] != after[p])
    return ", ".join(changed[:3])


def guarded(run):
    """``run`` with a check that nothing outside the case folder changed (also run from ``work`` as cwd)."""
    def wrapped(i: int, work: Path, case: Path) -> tuple[str, str]:
        before = snapshot(work, case)
        cwd = os.getcwd()
        os.chdir(work)
        try:
            result = run(i, work, case)
        finally:
            os.chdir(cwd)
            changed = touched(before, snapshot(work, case))
            if changed:
                return "touched", changed  # noqa: B012 - this outcome wins over any other
        return result
    return wrapped


# ---- CLI surfaces: one option given an attacker's value, the rest sane -----------------------------------
def run_cli_train(i: int, work: Path, case: Path) -> tuple[str, str]:
    from ffn_edge.train import TrainConfig, build_parser, resolve

    rng = np.random.default_rng(50_000 + i)
    parser = build_parser()
    flag, path_like = _options(parser)[int(rng.integers(len(_options(parser))))]
    argv = ["--width-mult", "0.0625", "--epochs", "1", flag, _value(rng, work, case, path_like),
            "--out", str(case / "run")]
    args = parser.parse_args(argv)
    cfg = resolve(TrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in vars(args).items()}))
    bad = [k for k, v in vars(cfg).items() if isinstance(v, float) and not math.isfinite(v)]
    return ("silent", f"{flag} accepted non-finite {bad}") if bad else ("ok", "")


def through_run_cli(prog: str, run, argv: list[str]) -> tuple[str, str] | None:
    """The command as its console script runs it (``run_cli``): exit 2 with one stderr line is documented;
    None when it returned normally (the caller judges that); anything else propagates (undocumented)."""
    import contextlib
    import io

    from ffn_edge.core.errors import run_cli

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            run_cli(prog, lambda: run(argv))
    except SystemExit as e:
        text = err.getvalue()
        if e.code == 0:
            return None
        if e.code == 2 and text.count("\n") == 1 and len(text) < 1000:
            return "documented", text.strip()[:150]
        return "undocumented", f"exit {e.code}, {text.count(chr(10))} stderr lines: {text[:120]}"
    return None


def run_cli_export(i: int, work: Path, case: Path) -> tuple[str, str]:
    from ffn_edge.export.cli import _export_parser as build_parser
    from ffn_edge.export.cli import run

    rng = np.random.default_rng(60_000 + i)
    options = [o for o in _options(build_parser()) if o[0] not in ("--ckpt",)]
    flag, path_like = options[int(rng.integers(len(options)))]
    argv = ["--ckpt", str(case / "missing.safetensors"), "--frames", "2", "--out", str(case / "b.ffn"), flag,
            _value(rng, work, case, path_like)]
    return through_run_cli("ffn-export", run, argv) or ("silent", f"{flag}: exported from a missing checkpoint")


def run_cli_run(i: int, work: Path, case: Path) -> tuple[str, str]:
    from ffn_edge.runtime.app.cli import build_parser, run

    rng = np.random.default_rng(70_000 + i)
    options = _options(build_parser())
    flag, path_like = options[int(rng.integers(len(options)))]
    value = _value(rng, work, case, path_like)
    if flag == "--output" and rng.random() < 0.3:
        value = str(case / "out.mp4")
    argv = ["--bundle", str(case / "missing.ffn"), "--video", str(work / "clip.avi"), flag, value]
    return through_run_cli("ffn-run", run, argv) or ("silent", f"{flag}: ran on a missing bundle")


def _init_paths(work: Path, case: Path, rng: np.random.Generator) -> tuple[str, bool]:
    """(an --init value, is it a checkpoint?): checkpoints of other models, bundles and their parts, media, junk."""
    junk = case / "junk.safetensors"
    blob = (work / "base.safetensors").read_bytes()
    junk.write_bytes([blob[: len(blob) // 2], b"", b"\0" * 64, rng.bytes(300)][int(rng.integers(4))])
    ffn = work / "base.ffn"
    pool = [(work / "base.safetensors", True), (work / "causal.safetensors", True), (ffn, False),
            (ffn / "manifest.json", False), (ffn / "weights.bin", False), (ffn / "f2.onnx", False),
            (work / "int8.ffn", False), (work / "clip.avi", False), (junk, False), (case / "missing", False),
            (case, False), (Path(_paths(work, case)[0]), False), (Path("/dev/null"), False)]
    path, is_ckpt = pool[int(rng.integers(len(pool)))]
    return str(path), is_ckpt


def run_cli_init(i: int, work: Path, case: Path) -> tuple[str, str]:
    """``ffn-train --init`` / ``--recipe`` / ``--partial-load`` as far as the models are built and loaded."""
    from ffn_edge.train import TrainConfig, build_models, build_parser, plan, resolve

    rng = np.random.default_rng(75_000 + i)
    init, is_ckpt = _init_paths(work, case, rng)
    method = ["ffn", "ffn", "st", "finetune", "mixed"][int(rng.integers(5))]
    argv = ["--width-mult", str(rng.choice(["0.0625", "0.125"])), "--method", method, "--init", init,
            "--recipe", str(rng.choice(["project", "paper"])), "--arch", str(rng.choice(["tsm_resnet18",
                                                                                         "tsm_mobilenetv2"])),
            "--shift", str(rng.choice(["bidirectional", "causal"])), "--frame-counts",
            *[str(n) for n in [(2, 4), (4, 8), (2, 4, 8)][int(rng.integers(3))]], "--out", str(case / "run")]
    if rng.random() < 0.3:
        argv.append("--partial-load")
    args = build_parser().parse_args(argv)
    cfg = resolve(TrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in vars(args).items()}))
    _, model_counts = plan(cfg)
    build_models(cfg, 3, model_counts)
    if not is_ckpt:
        return "silent", f"--init {Path(init).name}: not a checkpoint, loaded"
    return "ok", f"{method} {Path(init).name}"


# ---- sources with odd metadata ------------------------------------------------------------------------------
class OddCapture:
    """A capture whose frame rate, position and frames come from the fuzz case."""

    def __init__(self, rng: np.random.Generator) -> None:
        odd = [math.inf, -math.inf, math.nan, 0.0, -1.0, 1e-300, 1e300, 25.0, 1e9, 5000.0]
        self.fps = odd[int(rng.integers(len(odd)))]
        self.pos = odd[int(rng.integers(len(odd)))]
        self.pos_step = bool(rng.random() < 0.5)
        shapes = [(48, 64, 3), (48, 64), (48, 64, 4), (1, 64, 3), (48, 1, 3), (0, 64, 3), (48, 64, 2), (20000, 2, 3)]
        self.shape = shapes[int(rng.integers(len(shapes)))]
        dtypes = [np.uint8, np.uint8, np.uint8, np.float32, np.uint16]
        self.dtype = dtypes[int(rng.integers(len(dtypes)))]
        self.left = int(rng.integers(0, 40))
        self.read_count = 0
        self.opened = True

    def isOpened(self) -> bool:
        return self.opened

    def read(self):
        if self.left <= 0:
            return False, None
        self.left -= 1
        self.read_count += 1
        return True, np.full(self.shape, 100, self.dtype)

    def get(self, prop: int) -> float:
        import cv2

        if prop == cv2.CAP_PROP_FPS:
            return self.fps
        if prop == cv2.CAP_PROP_POS_MSEC:
            return self.pos * self.read_count if self.pos_step else self.pos
        return 0.0

    def release(self) -> None:
        self.opened = False


def run_sources(i: int, work: Path, case: Path) -> tuple[str, str]:
    from fuzz import _runtime

    rng = np.random.default_rng(80_000 + i)
    rt = _runtime(work)
    capture = OddCapture(rng)
    results = list(rt.stream(str(work / "clip.avi"), frames=int(rng.choice([2, 4])), window_s=0.5, stride_ms=100,
                             max_decisions=3, opener=lambda spec: capture))
    for r in results:
        if not all(math.isfinite(p) for _, p in r.prediction.topk) or not all(map(math.isfinite, r.window)):
            return "silent", f"non-finite score or window {r.window}"
    return "ok", ""


# ---- benchmark caches -----------------------------------------------------------------------------------------
def run_caches(i: int, work: Path, case: Path) -> tuple[str, str]:
    import reproduce

    rng = np.random.default_rng(90_000 + i)
    path = case / "eval.json"
    kind = int(rng.integers(8))
    if kind == 0:
        os.mkfifo(path)
    elif kind == 1:
        path.mkdir()
    elif kind == 2:
        path.symlink_to("/dev/zero")
    else:
        blobs = [b"{nope", b"[]", b'{"frames": 4}', b"1" * 100_000, b"", b"\xff\xfe", b"[" * 100_000,
                 b'{"frames": [4], "top1": "x"}', rng.bytes(int(rng.integers(1, 4096)))]
        path.write_bytes(blobs[int(rng.integers(len(blobs)))])
    got = reproduce.cached_eval(path, [4], lambda: {"frames": [4], "top1": [1.0]})
    if not isinstance(got, dict) or got.get("frames") != [4]:
        return "silent", f"returned {str(got)[:80]}"
    return "ok", ""


def _preload_reproduce() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import reproduce  # noqa: F401 - torch and friends, imported once before any case's alarm runs


# imports a surface needs, done by the child before its first case (an alarm must not cut an import short)
PRELOAD = {"caches": _preload_reproduce, "cli-train": lambda: __import__("ffn_edge.train"),
           "cli-export": lambda: __import__("ffn_edge.export.cli"),
           "cli-run": lambda: __import__("ffn_edge.runtime.app.cli"), "cli-init": lambda: __import__("ffn_edge.train")}

RUNNERS = {"cli-train": guarded(run_cli_train), "cli-export": guarded(run_cli_export),
           "cli-run": guarded(run_cli_run), "cli-init": guarded(run_cli_init),
           "sources": guarded(run_sources), "caches": guarded(run_caches)}
