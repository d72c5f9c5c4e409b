"""Runtime latency and memory on this CPU: torch eager vs ONNX Runtime on the FFN bundle vs ONNX
Runtime on a single-frame-count export (what Separated Training ships), per sub-network.

Measured side by side in one run (the methods take turns, run by run, so a load change on a
shared machine hits them alike):

* p50 / p95 latency of one clip (batch 1) per frame count for: torch eager; the FFN bundle with
  shared weights (the runtime's default: one weight copy and one arena for all sessions, and the ORT
  rewrites that would copy a shared weight turned off); the FFN bundle with private per-session
  copies (every ORT optimisation on); the ST export of a plain model at that frame count;
* RSS with all sub-networks ready vs one (fresh subprocesses; shared and private);
* the cost of switching sub-network (a run right after another sub-network vs after the same one)
  vs loading another model (open a single-frame-count export and run it once);
* achieved GFLOP/s (2 x multiply-adds / p50) vs this machine's SGEMM peak (numpy matmul).

    python benchmarks/runtime_latency.py                                   # TSM-ResNet-18, 112 px
    python benchmarks/runtime_latency.py --arch tsm_mobilenetv2 --width 1.0 --size 160 --runs 30

On a shared machine every number moves with the other processes' load (the methods alternate run
by run, so their ratios are steadier than their absolute values); rerun on an idle machine before
quoting absolute latencies.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GOALS = {"ort_vs_torch": 0.7, "ffn_vs_st": 1.03, "rss_ratio": 1.3, "switch_ms": 1.0}
PROBE_TIMEOUT_S = 300


# -- probes: run in a fresh process so that RSS and the BLAS thread count are this measurement's own --


def probe_rss(bundle: str, counts: list[int], share: bool, threads: int) -> dict[str, float]:
    """RSS growth from opening the graphs for ``counts`` (and one warm-up run each), in MiB."""
    import psutil
    from ffn_edge.runtime.backends import OrtBackend
    from ffn_edge.runtime.manifest import load_manifest

    m = load_manifest(bundle)
    proc = psutil.Process()
    import onnxruntime  # noqa: F401 - its import is not what is measured

    before = proc.memory_info().rss
    backend = OrtBackend(bundle, m, threads=threads, share_weights=share, frame_counts=counts)
    h, w = m.input.size
    for n in counts:
        backend.run(n, np.zeros((1, n, 3, h, w), np.float32))
    return {"rss_mib": (proc.memory_info().rss - before) / 2**20}


def probe_sgemm(size: int = 1024, repeats: int = 30) -> dict[str, float]:
    """Best-of SGEMM GFLOP/s with numpy (its BLAS, threads from OPENBLAS/OMP_NUM_THREADS)."""
    a = np.random.default_rng(0).standard_normal((size, size)).astype(np.float32)
    b = a.T.copy()
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return {"gflops": 2 * size**3 / best / 1e9}


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run_probe(args: list[str], threads: int) -> dict[str, float]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads)}
    out = subprocess.run([sys.executable, __file__, "--probe", *args], capture_output=True, text=True,
                         timeout=PROBE_TIMEOUT_S, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"probe {args} failed: {out.stderr.strip()[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- the benchmark ------------------------------------------------------------------------------------


def build_bundles(arch: str, width: float, size: int, counts: list[int], classes: int, work: Path):
    """The FFN model and bundle, plus one plain model + single-frame-count bundle per count (ST)."""
    import torch
    from ffn_edge.export import export_bundle

    from ffn_edge.checkpoint import CheckpointMeta, save_checkpoint
    from ffn_edge.models import ModelConfig, create_model

    names = [f"c{i}" for i in range(classes)]
    shorter = int(round(size * 8 / 7))

    def export(cfg: ModelConfig, frames: list[int], name: str) -> tuple[torch.nn.Module, Path]:
        torch.manual_seed(0)
        model = create_model(cfg).eval()
        ckpt = work / f"{name}.safetensors"
        save_checkpoint(ckpt, model, CheckpointMeta(cfg, names, input_size=size, resize_shorter=shorter))
        return model, Path(export_bundle(ckpt, frames, work / f"{name}.ffn"))

    ffn = export(ModelConfig(arch, classes, frame_counts=tuple(counts), width_mult=width), counts, "ffn")
    st = {n: export(ModelConfig(arch, classes, frame_counts=(n,), specialised_norm=False,
                                weight_alteration=False, width_mult=width), [n], f"st{n}")[1] for n in counts}
    return ffn[0], ffn[1], st


def percentiles(samples: list[float]) -> tuple[float, float]:
    return float(np.percentile(samples, 50)), float(np.percentile(samples, 95))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="tsm_resnet18")
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--frames", default="4,8,16")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--runs", type=int, default=20, help="timed runs per method and frame count")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None, help="also write the numbers here")
    ap.add_argument("--probe", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.probe is not None:
        kind, *rest = args.probe
        if kind == "rss":
            result = probe_rss(rest[0], [int(n) for n in rest[1].split(",")], rest[2] == "1", int(rest[3]))
        else:
            result = probe_sgemm()
        print(json.dumps(result))
        return

    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from ffn_edge.runtime import FFNRuntime
    from ffn_edge.runtime.backends import OrtBackend
    from ffn_edge.runtime.manifest import load_manifest
    from model_cost import count_macs

    torch.set_num_threads(args.threads)
    counts = sorted(int(n) for n in args.frames.split(","))
    t = args.threads
    with tempfile.TemporaryDirectory(prefix="ffn-bench-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        model, ffn_bundle, st_bundles = build_bundles(args.arch, args.width, args.size, counts, args.classes, work)
        print(f"exported FFN + {len(counts)} ST bundles in {time.perf_counter() - t0:.1f} s "
              f"({args.arch} x{args.width}, {args.size} px, {t} threads)", file=sys.stderr)
        shared = FFNRuntime(ffn_bundle, threads=t, share_weights=True)
        private = FFNRuntime(ffn_bundle, threads=t, share_weights=False)
        st = {n: FFNRuntime(b, threads=t, share_weights=False) for n, b in st_bundles.items()}
        rng = np.random.default_rng(0)
        methods = ["torch", "ffn_shared", "ffn_private", "st"]
        lat: dict[tuple[str, int], list[float]] = {(m, n): [] for m in methods for n in counts}
        for n in counts:
            clip = rng.standard_normal((1, n, 3, args.size, args.size)).astype(np.float32)
            tclip = torch.from_numpy(clip)
            subnet = counts.index(n)
            calls = {  # default arguments bind this iteration's clip and count
                "torch": lambda x=tclip, k=subnet: model(x, subnet=k),
                "ffn_shared": lambda n=n, x=clip: shared._backend.run(n, x),
                "ffn_private": lambda n=n, x=clip: private._backend.run(n, x),
                "st": lambda n=n, x=clip: st[n]._backend.run(n, x),
            }
            with torch.no_grad():
                for fn in calls.values():  # warm-up
                    fn()
                for _ in range(args.runs):
                    for name, fn in calls.items():
                        lat[(name, n)].append(1000 * _timed(fn))

        # switching sub-network vs loading another model. Dispatch: choosing the session for a new
        # frame count (route + lookup). Penalty: a run right after another sub-network minus a run
        # right after the same one, paired (both orders alternate) so load drift cancels.
        n0, n1 = counts[0], counts[-1]
        clip0 = np.zeros((1, n0, 3, args.size, args.size), np.float32)
        clip1 = np.zeros((1, n1, 3, args.size, args.size), np.float32)
        dispatch_us = 1e6 * min(_timed(lambda: [shared.route(k) for k in counts * 100]) for _ in range(5)) \
            / (100 * len(counts))
        pairs = []
        for _ in range(2 * args.runs):
            shared._backend.run(n0, clip0)
            same = _timed(lambda: shared._backend.run(n0, clip0))
            shared._backend.run(n1, clip1)
            switched = _timed(lambda: shared._backend.run(n0, clip0))
            pairs.append(1000 * (switched - same))
        switch_ms = float(np.median(pairs))
        load = []
        for _ in range(3):
            m = load_manifest(st_bundles[n0])
            t0 = time.perf_counter()
            backend = OrtBackend(st_bundles[n0], m, threads=t, share_weights=False)
            backend.run(n0, clip0)
            load.append(1000 * (time.perf_counter() - t0))
            backend.close()
        load_ms = float(np.median(load))
        macs = {n: count_macs(model, n, args.size) for n in counts}
        for rt in (shared, private, *st.values()):
            rt.close()

        rss = {}
        for mode, share in (("shared", "1"), ("private", "0")):
            for label, cs in (("all", counts), ("one", [counts[-1]])):
                probe = ["rss", str(ffn_bundle), ",".join(map(str, cs)), share, str(t)]
                rss[(mode, label)] = run_probe(probe, t)["rss_mib"]
        peak = run_probe(["sgemm"], t)["gflops"]

    # -- the table --------------------------------------------------------------------------------
    rows = []
    print(f"\nruntime latency, batch 1, ms (p50 / p95) - {args.arch} x{args.width}, {args.size} px, "
          f"{t} threads, {args.runs} runs")
    print(f"{'frames':>6} | {'torch eager':>15} | {'ORT FFN shared':>15} | {'ORT FFN private':>15} | "
          f"{'ORT ST export':>15} | {'ORT/torch':>9} | {'FFN/ST':>6} | {'FFNpriv/ST':>10} | {'GFLOP/s':>7}")
    for n in counts:
        p = {m: percentiles(lat[(m, n)]) for m in methods}
        r_torch = p["ffn_shared"][0] / p["torch"][0]
        r_st = p["ffn_shared"][0] / p["st"][0]
        r_priv = p["ffn_private"][0] / p["st"][0]
        gflops = 2 * macs[n] / (p["ffn_shared"][0] / 1000) / 1e9
        rows.append({"frames": n, **{f"{m}_p50": p[m][0] for m in methods}, **{f"{m}_p95": p[m][1] for m in methods},
                     "ort_vs_torch": r_torch, "ffn_vs_st": r_st, "ffn_private_vs_st": r_priv, "gflops": gflops,
                     "gmacs": macs[n] / 1e9})
        cells = " | ".join(f"{p[m][0]:6.2f} / {p[m][1]:6.2f}" for m in methods)
        print(f"{n:>6} | {cells} | {r_torch:9.2f} | {r_st:6.3f} | {r_priv:10.3f} | {gflops:7.1f}")
    ratio_shared = rss[("shared", "all")] / rss[("shared", "one")]
    ratio_private = rss[("private", "all")] / rss[("private", "one")]
    print(f"\nSGEMM peak (numpy, {t} threads): {peak:.1f} GFLOP/s; FFN shared achieves "
          f"{min(r['gflops'] for r in rows):.1f}-{max(r['gflops'] for r in rows):.1f} GFLOP/s "
          f"({100 * max(r['gflops'] for r in rows) / peak:.0f} % of peak at best)")
    print(f"RSS MiB, sessions for all {len(counts)} sub-networks / the largest one: shared weights+arena "
          f"{rss[('shared', 'all')]:.1f} / {rss[('shared', 'one')]:.1f} = {ratio_shared:.2f}; private copies "
          f"{rss[('private', 'all')]:.1f} / {rss[('private', 'one')]:.1f} = {ratio_private:.2f}")
    print(f"switch sub-network: dispatch {dispatch_us:.1f} us + first-run penalty {switch_ms:+.2f} ms (median of "
          f"{len(pairs)} paired runs after another sub-network minus after the same); load another model "
          f"(open a single-frame-count export + first run): {load_ms:.1f} ms")

    worst_torch = max(r["ort_vs_torch"] for r in rows)
    worst_st = max(r["ffn_vs_st"] for r in rows)
    worst_priv = max(r["ffn_private_vs_st"] for r in rows)
    checks = [
        ("ORT (FFN shared) / torch eager, worst", worst_torch, GOALS["ort_vs_torch"]),
        ("FFN shared / ST export, worst", worst_st, GOALS["ffn_vs_st"]),
        ("FFN private / ST export, worst", worst_priv, GOALS["ffn_vs_st"]),
        ("RSS all / one, shared weights", ratio_shared, GOALS["rss_ratio"]),
        ("RSS all / one, private copies", ratio_private, GOALS["rss_ratio"]),
        ("switch cost, ms", max(switch_ms, 0.0) + dispatch_us / 1000, GOALS["switch_ms"]),
    ]
    print(f"\n{'goal':<40} {'measured':>8}     goal")
    for name, value, goal in checks:
        print(f"{name:<40} {value:8.3f}  <= {goal:<5g} {'PASS' if value <= goal else 'MISS'}")
    print("(shared = the runtime's default: one weight copy, norms not fused into the shared convolutions; "
          "private = --private-weights: ORT fuses each sub-network's norm into its own weight copy)")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "config": vars(args), "rows": rows, "sgemm_gflops": peak,
            "rss_mib": {f"{a}_{b}": v for (a, b), v in rss.items()},
            "switch_ms": switch_ms, "dispatch_us": dispatch_us, "load_ms": load_ms, "checks": checks}, indent=2))


if __name__ == "__main__":
    main()
