"""Bundle surfaces for ``fuzz.py``: INT8 bundles, causal bundles and their step graphs, read-only bundles.

A tampered bundle is made three ways, so each layer of checks is attacked on its own: a file changed and
nothing else (the sha256 check must refuse it), a file changed and re-hashed in the manifest (the meaning
digest must refuse it), and a file or section changed, re-hashed and re-sealed (``manifest.seal``: what a
buggy exporter or a deliberate edit produces; only the checks of the values themselves can refuse it).
Every case opens the bundle with ``FFNRuntime`` and runs it (one prediction, or online steps); an accepted
bundle must give finite scores. Each runner returns (outcome, detail) like fuzz.py's.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

SIZE = 32  # the fuzz models' crop (fuzz.SIZE)
BAD = [0, -1, 1, 2, 10.5, 1e12, -1e9, "wide", "4", "", None, True, False, [], {}, [1, 2], [4, 8, 10**9],
       float("nan"), float("inf"), "x" * 10_000, {"a": {"b": 1}}, 3, 1e-9, "QDQ", "u8", "s8", "fp32", "int8"]
UNPRIVILEGED = 65534  # "nobody": read-only files are read-only to it (root writes through any mode)


# ---- fixtures: a causal bundle and an INT8 bundle of the fuzz model ---------------------------------------
def setup(work: Path) -> None:
    import torch
    from ffn_edge.export.bundle import export_bundle
    from ffn_edge.export.int8_config import Int8Options

    from ffn_edge.checkpoint import CheckpointMeta, save_checkpoint
    from ffn_edge.models import ModelConfig, create_model

    export_bundle(work / "base.safetensors", (2, 4), work / "int8.ffn", n_verify=1,
                  int8=Int8Options(calib_clips=2, min_agreement=0.0))
    torch.manual_seed(0)
    cfg = ModelConfig("tsm_resnet18", 3, frame_counts=(2, 4), width_mult=0.125, shift="causal")
    save_checkpoint(work / "causal.safetensors", create_model(cfg).eval(),
                    CheckpointMeta(cfg, ["a", "b", "c"], input_size=SIZE, resize_shorter=36))
    export_bundle(work / "causal.safetensors", (2, 4), work / "causal.ffn", n_verify=1)


# ---- tampering ---------------------------------------------------------------------------------------------
def _manifest(b: Path) -> dict[str, Any]:
    return json.loads((b / "manifest.json").read_text())


def _write(b: Path, m: dict[str, Any], rehash: tuple[str, ...] = (), seal: bool = True) -> None:
    """Write manifest ``m``, the entries of ``rehash`` re-hashed, sealed when ``seal``."""
    from ffn_edge.bundle.manifest import file_entry
    from ffn_edge.bundle.manifest import seal as seal_manifest

    for rel in rehash:
        m["files"][rel] = file_entry(b / rel)
    (b / "manifest.json").write_text(json.dumps(seal_manifest(m) if seal else m))


def _section_paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += _section_paths(v, (*prefix, k))
    elif isinstance(value, list):
        for j, v in enumerate(value[:4]):
            out += _section_paths(v, (*prefix, j))
    return out


def _edit_section(m: dict[str, Any], key: str, rng: np.random.Generator, delete: bool) -> str:
    """Set (or delete) one value at a random path under ``extra[key]``; returns the path."""
    paths = [p for p in _section_paths(m["extra"]) if p[0] == key]
    p = paths[int(rng.integers(len(paths)))]
    target = m["extra"]
    for k in p[:-1]:
        target = target[k]
    if delete:
        target.pop(p[-1])
    else:
        target[p[-1]] = copy.deepcopy(BAD[int(rng.integers(len(BAD)))])
    return ".".join(map(str, p))


def _initializers(graph: Path, want: str) -> tuple[Any, list[Any]]:
    """The graph's proto and its initializers of kind ``want``: "scale" (inline float scales of Q/DQ nodes)
    or "int8" (INT8 weights, stored in the weight file)."""
    import onnx

    proto = onnx.load(str(graph), load_external_data=False)
    scale_names = {n.input[1] for n in proto.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")}
    if want == "scale":
        return proto, [t for t in proto.graph.initializer if t.name in scale_names and not t.external_data]
    return proto, [t for t in proto.graph.initializer if t.data_type == onnx.TensorProto.INT8 and t.external_data]


def make_int8(i: int, work: Path, case: Path) -> tuple[Path, str, bool]:
    """(bundle, kind, must refuse) of INT8 case ``i``."""
    import onnx
    from onnx import numpy_helper

    rng = np.random.default_rng(100_000 + i)
    b = case / "int8.ffn"
    shutil.copytree(work / "int8.ffn", b)
    m = _manifest(b)
    graph = m["graphs"][int(rng.integers(len(m["graphs"])))]["file"]
    kind = ["quant", "quant", "quant_unsealed", "quant_delete", "scale", "scale", "dtype", "weights",
            "weights_rehashed", "truncate", "precision"][i % 11]
    if kind in ("quant", "quant_unsealed", "quant_delete"):
        where = _edit_section(m, "quantization", rng, delete=kind == "quant_delete")
        _write(b, m, seal=kind != "quant_unsealed")
        return b, f"{kind}:{where}", kind == "quant_unsealed"
    if kind == "precision":
        value = ["fp32", "int8", "fp16", None, 8][int(rng.integers(5))]
        if value is None:
            m["extra"].pop("precision")
        else:
            m["extra"]["precision"] = value
        _write(b, m)
        return b, f"precision:{value}", value not in ("int8",)
    if kind in ("scale", "dtype"):
        proto, tensors = _initializers(b / graph, "scale" if kind == "scale" else "int8")
        t = tensors[int(rng.integers(len(tensors)))]
        if kind == "scale":
            value = [math.nan, 0.0, -1.0, math.inf, -math.inf, 1e-45, 1e38][int(rng.integers(7))]
            arr = numpy_helper.to_array(t).copy()
            arr.flat[int(rng.integers(arr.size))] = value
            t.CopyFrom(numpy_helper.from_array(arr.astype(np.float32), t.name))
            detail = f"scale {t.name}={value}"
        else:
            t.data_type = [onnx.TensorProto.UINT8, onnx.TensorProto.FLOAT, onnx.TensorProto.INT32,
                           onnx.TensorProto.DOUBLE][int(rng.integers(4))]
            detail = f"dtype {t.name}={onnx.TensorProto.DataType.Name(t.data_type)}"
        onnx.save_model(proto, str(b / graph))
        _write(b, m, rehash=(graph,))
        bad_scale = kind == "scale" and not (math.isfinite(value) and value > 0)
        return b, f"{kind}:{detail}", kind == "dtype" or bad_scale
    weights = b / m["weights_file"]
    data = bytearray(weights.read_bytes())
    if kind == "truncate":
        data = data[: int(rng.integers(len(data)))]
    else:
        for _ in range(int(rng.integers(1, 64))):
            data[int(rng.integers(len(data)))] ^= int(rng.integers(1, 256))  # never the same byte
    weights.write_bytes(bytes(data))
    if kind == "weights":  # not re-hashed: the sha256 check refuses it
        return b, kind, True
    _write(b, m, rehash=(m["weights_file"],))
    return b, kind, kind == "truncate"


def _predict(b: Path) -> Any:
    from ffn_edge.runtime import FFNRuntime

    with FFNRuntime(b, threads=1, warmup=False) as rt:
        return rt.predict([np.full((40, 48, 3), 100, np.uint8)] * 4)


def run_int8(i: int, work: Path, case: Path) -> tuple[str, str]:
    b, kind, must_refuse = make_int8(i, work, case)
    p = _predict(b)
    if must_refuse:
        return "silent", f"{kind}: bundle opened"
    if not math.isfinite(p.score):
        return "silent", f"{kind}: score {p.score}"
    return "ok", kind


def make_causal(i: int, work: Path, case: Path) -> tuple[Path, str, bool]:
    """(bundle, kind, must refuse) of causal case ``i``."""
    rng = np.random.default_rng(110_000 + i)
    b = case / "causal.ffn"
    shutil.copytree(work / "causal.ffn", b)
    m = _manifest(b)
    step = m["extra"]["step"]
    kind = ["step", "step", "step_delete", "no_step", "shape", "swap", "clip_as_step", "corrupt", "shift",
            "unsealed"][i % 10]
    if kind in ("step", "step_delete"):
        where = _edit_section(m, "step", rng, delete=kind == "step_delete")
        _write(b, m)
        return b, f"{kind}:{where}", False
    if kind == "no_step":
        del m["extra"]["step"]
        _write(b, m)
        return b, kind, False  # a bundle without step graphs is valid: online mode refuses it in one line
    if kind == "shape":
        g = step["graphs"][int(rng.integers(len(step["graphs"])))]
        buf = g["buffers"][int(rng.integers(len(g["buffers"])))]
        axis = int(rng.integers(3))
        buf["shape"][axis] = buf["shape"][axis] + int(rng.choice([1, 7]))  # never the same shape
        _write(b, m)
        return b, f"shape {buf['input']} -> {buf['shape']}", True
    files = [g["file"] for g in step["graphs"]]
    if kind == "swap":  # the step graphs of two sub-networks exchanged, re-hashed and re-sealed
        a, c = b / files[0], b / files[1]
        tmp = case / "swap.onnx"
        shutil.move(a, tmp)
        shutil.move(c, a)
        shutil.move(tmp, c)
        _write(b, m, rehash=tuple(files))
        return b, kind, True
    target = files[int(rng.integers(len(files)))]
    if kind == "clip_as_step":
        shutil.copy(b / m["graphs"][0]["file"], b / target)
        _write(b, m, rehash=(target,))
        return b, kind, True
    if kind == "corrupt":
        data = bytearray((b / target).read_bytes())
        data[int(rng.integers(len(data)))] ^= 0xFF
        (b / target).write_bytes(bytes(data))
        if rng.random() < 0.5:  # re-hashed and re-sealed: a changed number in a graph is a valid graph
            _write(b, m, rehash=(target,))
            return b, "corrupt_resealed", False
        return b, kind, True
    if kind == "shift":
        m["model_config"]["shift"] = "bidirectional"
        _write(b, m)
        return b, kind, True
    step["graphs"][0]["buffers"].reverse()  # unsealed: the meaning digest refuses it
    _write(b, m, seal=False)
    return b, kind, True


def _online_labels(rt: Any, video: Path, steps: int) -> list[Any]:
    return [r.prediction for r in rt.online_stream(str(video), max_decisions=steps)]


def run_causal(i: int, work: Path, case: Path) -> tuple[str, str]:
    from ffn_edge.runtime import FFNRuntime

    b, kind, must_refuse = make_causal(i, work, case)
    with FFNRuntime(b, threads=1, warmup=False) as rt:
        graphs = rt.step_graphs()
        for k in graphs.subnets:
            graphs.run(np.zeros((3, SIZE, SIZE), np.float32), k, graphs.zero_state(k))
        labels = _online_labels(rt, work / "clip.avi", 6)
    if must_refuse:
        return "silent", f"{kind}: bundle opened and ran"
    if any(p is not None and not math.isfinite(p.score) for p in labels):
        return "silent", f"{kind}: a non-finite label"
    return "ok", kind


# ---- the step-graph API on random arguments --------------------------------------------------------------
_RT: dict[str, Any] = {}


def _session(work: Path, name: str) -> Any:
    if name not in _RT:
        from ffn_edge.runtime import FFNRuntime

        _RT[name] = FFNRuntime(work / name, threads=1)
    return _RT[name]


def _state(rng: np.random.Generator, zero: dict[str, np.ndarray]) -> Any:
    r = rng.random()
    if r < 0.1:
        return [None, [], "state", 3, {}][int(rng.integers(5))]
    state = {k: v.copy() for k, v in zero.items()}
    key = list(state)[int(rng.integers(len(state)))]
    what = int(rng.integers(9))
    if what == 0:
        del state[key]
    elif what == 1:
        state["extra"] = state[key]
    elif what == 2:
        state[key] = state[key].astype([np.float64, np.float16, np.int32, np.uint8][int(rng.integers(4))])
    elif what == 3:
        shape = list(state[key].shape)
        shape[int(rng.integers(4))] += int(rng.choice([-1, 1, 5]))
        state[key] = np.zeros([max(0, s) for s in shape], np.float32)
    elif what == 4:
        state[key] = state[key].reshape(state[key].shape[1:])
    elif what == 5:
        state[key].flat[int(rng.integers(state[key].size))] = [np.nan, np.inf, -np.inf][int(rng.integers(3))]
    elif what == 6:
        state[key] = [None, "x", 3, [[1.0]]][int(rng.integers(4))]
    elif what == 7:
        state[key] = np.asfortranarray(rng.standard_normal(state[key].shape).astype(np.float32))
    return state


def run_steps(i: int, work: Path, case: Path) -> tuple[str, str]:
    rng = np.random.default_rng(120_000 + i)
    which = int(rng.integers(10))
    if which == 0:  # the step-graph API on a bundle that has none
        _session(work, "base.ffn").step_graphs()
        return "silent", "step graphs of a bundle without them"
    graphs = _session(work, "causal.ffn").step_graphs()
    subnet = [0, 1, 1, 0, 2, -1, 1.0, "0", None, True][int(rng.integers(10))] if rng.random() < 0.3 else 0
    frame: Any = np.zeros((3, SIZE, SIZE), np.float32)
    if rng.random() < 0.3:
        frame = [np.zeros((SIZE, SIZE, 3), np.uint8), np.zeros((1, 3, SIZE, SIZE), np.float32),
                 np.full((3, SIZE, SIZE), np.nan, np.float32), None, np.zeros((3, SIZE, SIZE), np.float64),
                 np.zeros((3, SIZE + 1, SIZE), np.float32)][int(rng.integers(6))]
    zero = graphs.zero_state(subnet if subnet in graphs.subnets and type(subnet) is int else 0)
    state = _state(rng, zero) if rng.random() < 0.8 else zero
    step = graphs.run(frame, subnet, state)
    if not np.isfinite(step.logits).all() or not all(np.isfinite(v).all() for v in step.state.values()):
        return "silent", "non-finite logits or buffers accepted"
    return "ok", ""


# ---- read-only bundles: run, verify and export into and over them as a user who cannot write ------------
READ_ONLY_COMMANDS = [
    ("ffn-run", ["--bundle", "{ro}/int8.ffn", "--video", "{work}/clip.avi", "--max-decisions", "2"], 0),
    ("ffn-run", ["--bundle", "{ro}/causal.ffn", "--video", "{work}/clip.avi", "--online", "--max-decisions", "3"], 0),
    ("ffn-run", ["--bundle", "{ro}/base.ffn", "--video", "{work}/clip.avi", "--max-decisions", "1", "--output",
                 "{ro}/base.ffn/out.avi"], 2),
    ("ffn-export", ["--ckpt", "{work}/base.safetensors", "--frames", "2", "4", "--out", "{ro}/base.ffn", "--force",
                    "--verify-clips", "1"], 2),
    ("ffn-export", ["--ckpt", "{work}/base.safetensors", "--frames", "2", "--out", "{ro}/new.ffn", "--no-verify"], 2),
    ("ffn-export", ["--ckpt", "{work}/base.safetensors", "--frames", "2", "4", "--out", "{ro}/int8.ffn", "--force",
                    "--int8", "--calib-clips", "1", "--int8-min-agreement", "0"], 2),
    ("ffn-export", ["engines", "--bundle", "{ro}/base.ffn"], 2),
]
ENTRIES = {"ffn-run": "ffn_edge.runtime.app.entry:ffn_run", "ffn-export": "ffn_edge.export.cli:main"}


def _tree(root: Path) -> dict[str, tuple[int, int, str]]:
    """(mode, size, sha256) of every path under ``root``."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        digest = hashlib.sha256(p.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else ""
        out[str(p.relative_to(root))] = (st.st_mode, st.st_size, digest)
    return out


def as_unprivileged(argv: list[str]) -> list[str]:
    """``argv`` run by a user without write access to the read-only copies: root writes through any mode."""
    if os.geteuid() != 0:
        return argv
    if shutil.which("setpriv") is None:
        raise RuntimeError("running as root without setpriv (util-linux): cannot drop write access")
    return ["setpriv", f"--reuid={UNPRIVILEGED}", f"--regid={UNPRIVILEGED}", "--clear-groups", *argv]


def run_readonly(i: int, work: Path, case: Path) -> tuple[str, str]:
    """One command of READ_ONLY_COMMANDS on read-only copies of the bundles (chmod -R a-w), run as a user
    without write access: the expected exit code, at most one stderr line, and nothing changed."""
    prog, argv, want = READ_ONLY_COMMANDS[i % len(READ_ONLY_COMMANDS)]
    ro = case / "ro"
    ro.mkdir()
    for name in ("base.ffn", "int8.ffn", "causal.ffn"):
        shutil.copytree(work / name, ro / name)
    subprocess.run(["chmod", "-R", "a-w", str(ro)], check=True)
    case.chmod(0o755)
    before = _tree(ro)
    module, func = ENTRIES[prog].split(":")
    args = [a.format(ro=ro, work=work) for a in argv]
    code = f"import sys; sys.argv = [{prog!r}] + {args!r}; from {module} import {func}; {func}()"
    r = subprocess.run(as_unprivileged([sys.executable, "-c", code]), capture_output=True, text=True, timeout=60,
                       cwd=ro, env={**os.environ, "OMP_NUM_THREADS": "1", "HOME": str(case)})
    after = _tree(ro)
    subprocess.run(["chmod", "-R", "u+w", str(ro)], check=True)
    errors = [line for line in r.stderr.splitlines() if line.startswith(f"{prog}: error")]
    other = [line for line in r.stderr.splitlines() if "Traceback" in line or line.startswith("  File ")]
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    if changed:
        return "touched", f"{prog} {argv[0]}: {', '.join(changed[:3])}"
    if other:
        return "undocumented", f"{prog} {argv[0]}: traceback: {r.stderr.strip().splitlines()[-1][:120]}"
    if r.returncode != want:
        return "undocumented", f"{prog} {' '.join(argv[:2])}: exit {r.returncode}, want {want}: {r.stderr[-150:]}"
    if r.returncode:
        return "documented", errors[0][:150] if errors else r.stderr.strip()[:150]
    return "ok", ""


def _preload() -> None:
    import ffn_edge.export.bundle  # noqa: F401 - imported before any case's alarm
    import ffn_edge.runtime  # noqa: F401


PRELOAD = {"int8": _preload, "causal": _preload, "steps": _preload, "readonly": _preload}
RUNNERS = {"int8": run_int8, "causal": run_causal, "steps": run_steps, "readonly": run_readonly}
