"""Long fuzz / attack run: >= 1,000 inputs per surface and a 10,000-call predict soak; prints counts.

Surfaces (each in its own child process, address space capped, so a crash or an unbounded allocation is
counted instead of taking the run down; every input has an alarm, and the parent a watchdog, so a hang is
counted too):

* ``checkpoint``  ``load_checkpoint`` on mutated checkpoints: metadata values (correctly sealed, so only the
  validation can refuse them), flipped data / header bytes, a changed dtype, a deleted checksum, truncation,
  bad header lengths, deep JSON, FIFOs, directories, random bytes.
* ``bundle``      ``FFNRuntime.open`` + one ``predict`` on mutated bundles: manifest values and keys, FIFO /
  directory / symlinked manifest, deep JSON, garbage, flipped or symlinked graphs, unlisted external data.
* ``predict``     the public ``FFNRuntime.predict`` on random inputs (types, dtypes, shapes, mixed lists,
  thin frames, NaN/inf, bad n / topk / timestamps).
* ``contract``    the same inputs through ``runtime.inputs`` (check_clip, check_predict_args, check_finite)
  before ``predict``: what the session does once the coordinator wires it in (new code only).
* ``options``     stream options (window, stride, duration, frames, budget, threads): ``check_stream_options``
  where it exists, then a real 2-decision ``stream`` on a small video file (threads: check only).
* ``cli-train``, ``cli-export``, ``cli-run``  one option of each command given an attacker's value
  (non-finite, huge, negative, empty, unicode; FIFO, folder, missing, read-only, device paths), the rest
  sane; parsing and every check before work starts (``fuzz_surfaces``).
* ``sources``     streams from a capture reporting odd frame rates, positions, frame shapes and dtypes.
* ``caches``      the benchmarks' evaluation cache as a FIFO, a folder, a symlink to a device, or corrupt.
* ``int8``        an INT8 bundle tampered with (``fuzz_bundles``): quantization section values, scales set to
  NaN / 0 / negative / inf / huge, INT8 weights retyped, weight bytes changed or truncated, precision
  swapped; each change bare, re-hashed, or re-hashed and re-sealed; then open and one prediction.
* ``causal``      a causal bundle's step section edited or removed, buffer shapes changed, step graphs
  swapped between sub-networks or replaced by a clip graph, bytes flipped, the shift made bidirectional;
  then open, every step graph once and six online steps.
* ``steps``       ``FFNRuntime.step_graphs()`` / ``StepGraphs.run`` on odd frames, sub-networks and buffer
  states (missing, extra, retyped, reshaped, NaN), and on a bundle without step graphs.
* ``readonly``    ``chmod -R a-w`` copies of the bundles: ffn-run (window and online), ffn-export over and
  into them, ``ffn-export engines``, run as a user without write access (root writes through modes).
* ``threads``     a window, online or multi-stream running while three threads call its live setters
  (budgets, caps, weights, add / remove, close) with good and bad values.
* ``frames``      sources whose frame size changes mid-file: an image folder of mixed sizes and kinds, an
  MJPEG file changing resolution, a capture changing shape; window and online streams.
* ``cli-init``    ``ffn-train --init`` given checkpoints of other models, bundles and their files, media,
  junk and special files, with random methods, recipes, shifts and ``--partial-load``.
* ``soak``        10,000 ``predict`` calls through the public API; RSS growth after a 500-call warm-up.

The CLI, source, cache and init surfaces also count ``touched``: a case that changed any file outside its
own folder (``readonly`` counts a change to its read-only copies).

Outcomes per input: ``ok`` (accepted), ``documented`` (an FFNError), ``undocumented`` (any other exception,
RecursionError and MemoryError included), ``hang``, ``crash``, and ``silent`` (accepted although it must not
be: a corrupted checkpoint that loads, a NaN score, a class-name list shorter than the logits, a nonsensical
stream option that runs). It runs against whichever ``ffn_edge`` the interpreter imports, so::

    cd /work/main && .venv/bin/python /work/wt/harden/benchmarks/fuzz.py      # the old code
    .venv/bin/python benchmarks/fuzz.py                                      # this tree
"""

from __future__ import annotations

import argparse
import collections
import copy
import hashlib
import json
import math
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

SURFACES = ("checkpoint", "bundle", "predict", "contract", "options", "cli-train", "cli-export", "cli-run", "sources",
            "caches", "int8", "causal", "steps", "readonly", "threads", "frames", "cli-init", "soak")
CASE_ALARM_S = 8
WATCHDOG_S = 90
MEM_LIMIT = 8 << 30
SIZE = 32  # crop of the fuzz model
BAD = [0, -1, 1, 2, 10.5, 1e12, 10**12, -1e9, "wide", "4", "", None, True, False, [], {}, [1, 2], [4, 8, 10**9],
       float("nan"), float("inf"), "x" * 10_000, [[[[[]]]]], {"a": {"b": 1}}, 3, 1e-9, 0.5, 5, 224, 100_000]


class Hang(Exception):
    pass


def _alarm(*_: Any) -> None:
    raise Hang()


# ---- shared fixtures (built once per run, by the code under test) ----------------------------------------
def setup(work: Path) -> None:
    import cv2
    import torch
    from ffn_edge.export.bundle import export_bundle

    from ffn_edge.checkpoint import CheckpointMeta, save_checkpoint
    from ffn_edge.models import ModelConfig, create_model

    torch.manual_seed(0)
    cfg = ModelConfig("tsm_resnet18", 3, frame_counts=(2, 4), width_mult=0.0625)
    save_checkpoint(work / "base.safetensors", create_model(cfg).eval(),
                    CheckpointMeta(cfg, ["a", "b", "c"], input_size=SIZE, resize_shorter=36))
    export_bundle(work / "base.safetensors", (2, 4), work / "base.ffn", n_verify=1)
    writer = cv2.VideoWriter(str(work / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    rng = np.random.default_rng(0)
    for _ in range(20):
        writer.write(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    writer.release()
    try:  # the INT8 and causal bundles (absent from older trees)
        import fuzz_bundles
    except ImportError:
        return
    fuzz_bundles.setup(work)


# ---- checkpoint ------------------------------------------------------------------------------------------
def _split(blob: bytes) -> tuple[int, dict, bytes]:
    n = int.from_bytes(blob[:8], "little")
    return n, json.loads(blob[8 : 8 + n]), blob[8 + n :]


def _seal(tensors: dict, meta_text: str) -> bytes:
    """Sealed the way the code under test seals (format 2: header+data hash; format 1: data hash)."""
    from safetensors.torch import save as st_save

    from ffn_edge import checkpoint as C

    if hasattr(C, "_sealed"):
        return C._sealed(tensors, {C.META_KEY: meta_text})
    blob = st_save(tensors)
    digest = hashlib.sha256(_split(blob)[2]).hexdigest()
    return st_save(tensors, metadata={C.META_KEY: meta_text, C.HASH_KEY: digest})


def _deep(n: int) -> str:
    return "[" * n + "]" * n


def make_checkpoint(i: int, work: Path, case: Path) -> tuple[Path, bool, str]:
    """(path, must_refuse, kind) of checkpoint input ``i``."""
    from safetensors.torch import load_file

    from ffn_edge import checkpoint as C

    rng = np.random.default_rng(i)
    base = (work / "base.safetensors").read_bytes()
    n, header, data = _split(base)
    meta = json.loads(header["__metadata__"][C.META_KEY])
    path = case / f"c{i}.safetensors"
    kind = ["meta_value", "meta_value", "meta_value", "meta_delete", "flip_data", "flip_header", "dtype", "nohash",
            "truncate", "hdr_len", "deep", "garbage", "special"][i % 13]
    if kind in ("meta_value", "meta_delete"):
        fields = [("config", "num_classes"), ("config", "width_mult"), ("config", "dropout"), ("config", "shift_div"),
                  ("config", "frame_counts"), ("config", "arch"), ("config", "specialised_norm"), ("class_names",),
                  ("input_size",), ("resize_shorter",), ("mean",), ("std",), ("extra",), ("format_version",),
                  ("config",), ("format",)]
        keys = fields[int(rng.integers(len(fields)))]
        target = meta
        for k in keys[:-1]:
            target = target[k]
        if kind == "meta_delete":
            target.pop(keys[-1], None)
        else:
            target[keys[-1]] = copy.deepcopy(BAD[int(rng.integers(len(BAD)))])
        path.write_bytes(_seal(load_file(str(work / "base.safetensors")), json.dumps(meta)))
        return path, False, kind
    blob = bytearray(base)
    if kind == "flip_data":
        pos = 8 + n + int(rng.integers(len(data)))
        blob[pos] ^= 1 << int(rng.integers(8))
    elif kind == "flip_header":
        text = bytes(blob[8 : 8 + n]).rstrip()
        pos = 8 + int(rng.integers(len(text)))
        blob[pos] ^= 1 << int(rng.integers(7))
    elif kind == "dtype":
        blob[8 : 8 + n] = bytes(blob[8 : 8 + n]).replace(b'"F32"', b'"I32"', 1)
    elif kind == "nohash":
        from safetensors.torch import save as st_save

        blob = bytearray(st_save(load_file(str(work / "base.safetensors")), metadata={C.META_KEY: json.dumps(meta)}))
    elif kind == "truncate":
        blob = blob[: int(rng.integers(len(blob)))]
    elif kind == "hdr_len":
        blob[:8] = int(rng.choice([0, 1, n - 1, n + 1, len(blob), 2**40, 2**63])).to_bytes(8, "little")
    elif kind == "deep":
        text = _deep(int(rng.choice([100, 10_000, 200_000])))
        if rng.random() < 0.5:
            blob = bytearray(len(text).to_bytes(8, "little") + text.encode())
        else:
            path.write_bytes(_seal(load_file(str(work / "base.safetensors")), text))
            return path, True, kind
    elif kind == "garbage":
        blob = bytearray(rng.integers(0, 256, int(rng.integers(0, 5000)), dtype=np.uint8).tobytes())
    elif kind == "special":
        which = i % 3
        if which == 0:
            os.mkfifo(path)
        elif which == 1:
            path.mkdir()
        else:
            path.symlink_to(case / "missing")
        return path, True, f"special{which}"
    path.write_bytes(bytes(blob))
    return path, True, kind


def run_checkpoint(i: int, work: Path, case: Path) -> tuple[str, str]:
    from ffn_edge.checkpoint import load_checkpoint

    path, must_refuse, kind = make_checkpoint(i, work, case)
    model, meta = load_checkpoint(path)
    if must_refuse:
        return "silent", f"{kind}: corrupted checkpoint loaded"
    if model.num_classes_out() != len(meta.class_names):
        return "silent", f"{kind}: {len(meta.class_names)} class names for {model.num_classes_out()} outputs"
    return "ok", kind


# ---- bundle ----------------------------------------------------------------------------------------------
def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            if k != "extra":
                out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for j, v in enumerate(value[:4]):
            out += _paths(v, (*prefix, j))
    return out


def make_bundle(i: int, work: Path, case: Path) -> tuple[Path, str]:
    rng = np.random.default_rng(10_000 + i)
    b = case / f"b{i}.ffn"
    shutil.copytree(work / "base.ffn", b)
    m = json.loads((b / "manifest.json").read_text())
    kind = ["value", "value", "value", "value", "delete", "special", "graph"][i % 7]
    if kind in ("value", "delete"):
        paths = _paths(m)
        p = paths[int(rng.integers(len(paths)))]
        target = m
        for k in p[:-1]:
            target = target[k]
        if kind == "delete":
            target.pop(p[-1]) if isinstance(target, dict) else target.pop(p[-1])
        else:
            target[p[-1]] = copy.deepcopy(BAD[int(rng.integers(len(BAD)))])
        (b / "manifest.json").write_text(json.dumps(m))
        return b, f"{kind}:{'.'.join(map(str, p))}"
    if kind == "special":
        which = i % 6
        mp = b / "manifest.json"
        if which == 0:
            mp.unlink()
            os.mkfifo(mp)
        elif which == 1:
            mp.unlink()
            mp.mkdir()
        elif which == 2:
            shutil.move(mp, case / f"outside{i}.json")
            mp.symlink_to(case / f"outside{i}.json")
        elif which == 3:
            mp.write_text(_deep(200_000))
        elif which == 4:
            text = mp.read_text()
            mp.write_text(text[: int(rng.integers(len(text)))])
        else:
            mp.write_bytes(rng.integers(0, 256, 500, dtype=np.uint8).tobytes())
        return b, f"special{which}"
    which = i % 3
    g = b / m["graphs"][0]["file"]
    if which == 0:
        data = bytearray(g.read_bytes())
        data[int(rng.integers(len(data)))] ^= 0xFF
        g.write_bytes(bytes(data))
    elif which == 1:
        shutil.move(g, case / f"g{i}.onnx")
        g.symlink_to(case / f"g{i}.onnx")
    else:  # the graph reads external data from a file the manifest does not list (graph entry re-hashed)
        import onnx

        shutil.copy(b / "weights.bin", b / "extra.bin")
        proto = onnx.load(str(g), load_external_data=False)
        for t in proto.graph.initializer:
            for e in t.external_data:
                if e.key == "location":
                    e.value = "extra.bin"
        onnx.save_model(proto, str(g))
        m["files"][g.name] = {"size": g.stat().st_size, "sha256": hashlib.sha256(g.read_bytes()).hexdigest()}
        (b / "manifest.json").write_text(json.dumps(m))
        return b, "graph:unlisted-external"
    return b, f"graph{which}"


def run_bundle(i: int, work: Path, case: Path) -> tuple[str, str]:
    from ffn_edge.runtime import FFNRuntime

    b, kind = make_bundle(i, work, case)
    rt = FFNRuntime(b, threads=1, warmup=False)
    try:
        p = rt.predict([np.full((40, 48, 3), 100, np.uint8)] * 4)
    finally:
        rt.close()
    if kind.startswith(("graph", "special")):
        return "silent", f"{kind}: bundle opened"
    if not math.isfinite(p.score) or p.label not in rt.class_names:
        return "silent", f"{kind}: score {p.score} label {p.label!r}"
    return "ok", kind


# ---- predict / contract ----------------------------------------------------------------------------------
def _frame(rng: np.random.Generator) -> Any:
    r = rng.random()
    if r < 0.05:
        return [None, "frame", 3, [1, 2], {"a": 1}][int(rng.integers(5))]
    dtype = [np.uint8] * 6 + [np.float32] * 2 + [np.float64, np.int16, np.bool_]
    dt = dtype[int(rng.integers(len(dtype)))]
    if r < 0.15:
        shape: tuple[int, ...] = (1, int(rng.integers(2000, 50_001)), 3)[: int(rng.integers(2, 4))]
        if rng.random() < 0.5:
            shape = shape[::-1] if len(shape) == 2 else (shape[1], 1, 3)
    elif dt == np.float32 and rng.random() < 0.7:
        shape = (3, SIZE, SIZE)
    else:
        nd = int(rng.integers(0, 6))
        sizes = [0, 1, 2, 3, 4, 8, 16, 33, 48, 64, 100]
        shape = tuple(int(rng.choice(sizes)) for _ in range(nd))
        if nd == 3 and rng.random() < 0.6:
            shape = (shape[0] or 24, shape[1] or 32, 3)
    arr = np.zeros(shape, dtype=dt)
    if arr.size and arr.size < 1 << 22 and dt in (np.uint8, np.int16):
        arr[...] = rng.integers(0, 255, arr.shape)
    elif arr.size and arr.size < 1 << 22 and dt in (np.float32, np.float64):
        arr[...] = rng.standard_normal(arr.shape)
        if rng.random() < 0.3:
            arr.flat[int(rng.integers(arr.size))] = [np.nan, np.inf, -np.inf][int(rng.integers(3))]
    return arr


def make_predict_input(i: int) -> tuple[Any, dict[str, Any]]:
    rng = np.random.default_rng(20_000 + i)
    r = rng.random()
    if r < 0.1:
        frames: Any = [None, "clip.mp4", 7, {}, [], (), [[1, 2, 3]]][int(rng.integers(7))]
    elif r < 0.25:  # one array
        if rng.random() < 0.5:
            frames = rng.integers(0, 256, (int(rng.integers(0, 9)), 24, 32, 3), dtype=np.uint8)
        else:
            frames = rng.standard_normal((int(rng.integers(0, 9)), 3, SIZE, SIZE)).astype(np.float32)
            if rng.random() < 0.5 and frames.size:
                frames.flat[int(rng.integers(frames.size))] = np.nan
    elif r < 0.4:  # mixed valid uint8 and float32 frames
        frames = [np.zeros((24, 32, 3), np.uint8) if rng.random() < 0.5 else np.zeros((3, SIZE, SIZE), np.float32)
                  for _ in range(int(rng.integers(2, 8)))]
    else:
        first = _frame(rng)
        frames = [first if rng.random() < 0.6 else _frame(rng) for _ in range(int(rng.integers(0, 10)))]
    kw: dict[str, Any] = {}
    if rng.random() < 0.3:
        kw["n"] = [0, -1, 1, 2, 3, 4, 7, 10**9, 4.0, "4", True][int(rng.integers(11))]
    if rng.random() < 0.15:
        kw["topk"] = [0, -1, 1, 10**6, None, 2.5][int(rng.integers(6))]
    if rng.random() < 0.1:
        total = len(frames) if hasattr(frames, "__len__") else 1
        kw["timestamps"] = [list(range(total + 1)), [float("nan")] * total, ["a"] * total][int(rng.integers(3))]
    return frames, kw


_RT: dict[str, Any] = {}


def _runtime(work: Path) -> Any:
    if "rt" not in _RT:
        from ffn_edge.runtime import FFNRuntime

        _RT["rt"] = FFNRuntime(work / "base.ffn", threads=1)
    return _RT["rt"]


def run_predict(i: int, work: Path, case: Path, gate: bool = False) -> tuple[str, str]:
    rt = _runtime(work)
    frames, kw = make_predict_input(i)
    if gate:
        from ffn_edge.runtime.media.inputs import check_clip, check_finite, check_predict_args

        kind = check_clip(frames, rt.manifest.input.size)
        check_predict_args(len(frames), kw.get("n"), kw.get("topk", 5), kw.get("timestamps"))
        if kind == "preprocessed":
            check_finite(np.asarray(frames))
    p = rt.predict(frames, **kw)
    if not math.isfinite(p.score):
        return "silent", f"score {p.score}"
    return "ok", ""


# ---- options ---------------------------------------------------------------------------------------------
def make_options(i: int) -> tuple[dict[str, Any], bool]:
    """(stream keyword options, invalid?) — invalid: non-finite, <= 0, or absurd (over the limits)."""
    rng = np.random.default_rng(30_000 + i)
    pools = {
        "window_s": [1.0, 0.5, 2.0, 0.0, -1.0, float("nan"), float("inf"), 1e9, 1e-9],
        "stride_ms": [500.0, 200.0, 0.0, -5.0, float("nan"), float("inf"), 1e12],
        "duration_s": [None, 5.0, -1.0, 0.0, float("nan"), float("inf")],
        "frames": [None, 2, 4, 0, -1, 10**6],
        "budget_ms": [None, 30.0, 0.0, -1.0, float("nan"), float("inf")],
        "threads": [None, 1, 2, 0, -1, 2000, 100_000],
    }
    opts = {k: v[int(rng.integers(len(v)))] if rng.random() < 0.5 else v[0] for k, v in pools.items()}
    limits = {"window_s": (0.1, 60.0), "stride_ms": (10.0, 3.6e6), "duration_s": (0, 3.2e8), "frames": (1, 256),
              "budget_ms": (0, 3.6e6), "threads": (1, 256)}  # runtime.validate's, written out for the old code
    invalid = any(v is not None and (not math.isfinite(v) or v <= 0 or not limits[k][0] <= v <= limits[k][1])
                  for k, v in opts.items())
    return opts, invalid


def run_options(i: int, work: Path, case: Path) -> tuple[str, str]:
    opts, invalid = make_options(i)
    try:
        from ffn_edge.runtime.media.inputs import check_stream_options
    except ImportError:
        check_stream_options = None
    if check_stream_options is not None:
        check_stream_options(window_s=opts["window_s"], stride_ms=opts["stride_ms"], duration_s=opts["duration_s"],
                             threads=opts["threads"], frames=opts["frames"], budget_ms=opts["budget_ms"])
    rt = _runtime(work)
    kw = {k: v for k, v in opts.items() if k != "threads"}
    results = list(rt.stream(str(work / "clip.avi"), max_decisions=2, **kw))
    if check_stream_options is not None:  # what ffn-run does after its loop once wired (new code only)
        from ffn_edge.runtime.media.inputs import require_decisions

        require_decisions(len(results), "clip.avi")
    if invalid or not results:
        return "silent", f"{opts} -> {len(results)} decisions"
    return "ok", ""


RUNNERS = {"checkpoint": run_checkpoint, "bundle": run_bundle, "predict": run_predict,
           "contract": lambda i, w, c: run_predict(i, w, c, gate=True), "options": run_options}
try:  # the CLI, source and cache surfaces (absent from older trees)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from fuzz_surfaces import PRELOAD
    from fuzz_surfaces import RUNNERS as MORE_RUNNERS

    RUNNERS.update(MORE_RUNNERS)
    from fuzz_bundles import PRELOAD as BUNDLE_PRELOAD
    from fuzz_bundles import RUNNERS as BUNDLE_RUNNERS
    from fuzz_live import PRELOAD as LIVE_PRELOAD
    from fuzz_live import RUNNERS as LIVE_RUNNERS

    RUNNERS.update(BUNDLE_RUNNERS)
    RUNNERS.update(LIVE_RUNNERS)
    PRELOAD = {**PRELOAD, **BUNDLE_PRELOAD, **LIVE_PRELOAD}
except ImportError:
    PRELOAD = {}


# ---- child: run cases [start, n) of one surface, one line per case ---------------------------------------
def child(surface: str, start: int, n: int, work: Path) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEM_LIMIT, MEM_LIMIT))
    from ffn_edge.core.errors import FFNError

    signal.signal(signal.SIGALRM, _alarm)
    if surface == "soak":
        return soak(work, n)
    if surface == "contract":
        try:
            import ffn_edge.runtime.media.inputs  # noqa: F401
        except ImportError:
            print("NA", flush=True)
            return
    if surface in PRELOAD:
        PRELOAD[surface]()
    for i in range(start, n):
        case = Path(tempfile.mkdtemp(dir=work, prefix="case-"))
        signal.alarm(CASE_ALARM_S)
        try:
            outcome, detail = RUNNERS[surface](i, work, case)
        except Hang:
            outcome, detail = "hang", "alarm"
        except FFNError as e:
            outcome, detail = ("documented", str(e)[:150]) if "\n" not in str(e) else \
                ("undocumented", f"multi-line {type(e).__name__}: {str(e)[:150]}")
        except BaseException as e:  # noqa: BLE001 - counting exactly these is the point
            outcome, detail = "undocumented", f"{type(e).__name__}: {str(e)[:150]}"
        finally:
            signal.alarm(0)
        shutil.rmtree(case, ignore_errors=True)
        print(f"R {i} {outcome} {detail}".replace("\n", " ")[:300], flush=True)
    print("DONE", flush=True)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def soak(work: Path, n: int) -> None:
    rt = _runtime(work)
    rng = np.random.default_rng(1)
    clips = [[rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(4)] for _ in range(16)]
    warm = 500
    t0 = time.perf_counter()
    for i in range(n + warm):
        if i == warm:
            rss0 = _rss_mb()
        rt.predict(clips[i % len(clips)], n=[2, 4][i % 2])
    rss1 = _rss_mb()
    print(f"SOAK {n} {rss0:.1f} {rss1:.1f} {time.perf_counter() - t0:.1f}", flush=True)
    print("DONE", flush=True)


# ---- parent ----------------------------------------------------------------------------------------------
def run_surface(surface: str, n: int, work: Path) -> dict[str, Any]:
    counts: collections.Counter[str] = collections.Counter()
    examples: dict[str, list[str]] = collections.defaultdict(list)
    start, soak_line = 0, None
    t0 = time.perf_counter()
    while start < n:
        proc = subprocess.Popen([sys.executable, __file__, "--child", surface, "--start", str(start), "--n", str(n),
                                 "--work", str(work)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        last, done, watchdog = start - 1, False, False
        while True:
            ready, _, _ = select.select([proc.stdout], [], [], WATCHDOG_S)
            if not ready:  # no case finished for WATCHDOG_S: a hang the alarm could not break
                proc.kill()
                counts["hang"] += 1
                examples["hang"].append(f"case {last + 1}: watchdog")
                watchdog = True
                break
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith("NA"):
                proc.wait()
                return {"na": True}
            if line.startswith("SOAK"):
                soak_line = line.split()
            if line.startswith("DONE"):
                done = True
            if line.startswith("R "):
                _, idx, outcome, *rest = line.rstrip("\n").split(" ")
                last = int(idx)
                counts[outcome] += 1
                if outcome not in ("ok", "documented") and len(examples[outcome]) < 4:
                    examples[outcome].append(" ".join(rest)[:160])
        proc.wait()
        if done:
            break
        if surface == "soak":
            counts["crash"] += 1
            break
        if not watchdog:
            counts["crash"] += 1
            examples["crash"].append(f"case {last + 1}: exit {proc.returncode}")
        start = last + 2
    return {"counts": counts, "examples": examples, "soak": soak_line, "wall_s": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="inputs per surface (default 1000)")
    ap.add_argument("--soak", type=int, default=10_000, help="predict calls of the soak (default 10000)")
    ap.add_argument("--surfaces", nargs="+", default=list(SURFACES), choices=SURFACES)
    ap.add_argument("--child", choices=SURFACES, help=argparse.SUPPRESS)
    ap.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(a.child, a.start, a.n, Path(a.work))
    import ffn_edge

    work = Path(tempfile.mkdtemp(prefix="ffn-fuzz-"))
    work.chmod(0o755)  # the read-only surface runs its commands as a user without write access
    try:
        t0 = time.perf_counter()
        setup(work)
        load = Path("/proc/loadavg").read_text().split()[0]
        print(f"code under test: {Path(ffn_edge.__file__).resolve().parent.parent}; "
              f"setup {time.perf_counter() - t0:.0f} s; load {load}")
        print(f"{'surface':<11} {'inputs':>6} {'ok':>5} {'documented':>10} {'undocumented':>12} {'hang':>4} "
              f"{'crash':>5} {'silent':>6} {'touched':>7} {'wall s':>6}")
        notes = []
        for surface in a.surfaces:
            r = run_surface(surface, a.soak if surface == "soak" else a.n, work)
            if r.get("na"):
                print(f"{surface:<11} n/a (no runtime.inputs in this code)", flush=True)
                continue
            c = r["counts"]
            if surface == "soak":
                s = r["soak"]
                growth = f"RSS {s[2]} -> {s[3]} MB ({(float(s[3]) / float(s[2]) - 1) * 100:+.1f} %), {s[4]} s" if s \
                    else "did not finish"
                print(f"{'soak':<11} {a.soak:>6} calls; crash {c['crash']}; {growth}", flush=True)
                continue
            total = sum(c.values())
            print(f"{surface:<11} {total:>6} {c['ok']:>5} {c['documented']:>10} {c['undocumented']:>12} {c['hang']:>4} "
                  f"{c['crash']:>5} {c['silent']:>6} {c['touched']:>7} {r['wall_s']:>6.0f}")
            for outcome, ex in r["examples"].items():
                notes += [f"  {surface} {outcome}: {e}" for e in ex]
        print("examples (up to 4 per surface and outcome):", flush=True)
        print("\n".join(notes) or "  none", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
