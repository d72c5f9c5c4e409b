"""Runtime latency and memory on this CPU: torch eager vs ONNX Runtime on the FFN bundle vs ONNX
Runtime on a single-frame-count export (what Separated Training ships), per sub-network.

Measured side by side in one run (the methods take turns, run by run, so a load change on a
shared machine hits them alike):

* p50 / p95 latency of one clip (batch 1) per frame count for: torch eager; the FFN bundle with
  shared weights (the runtime's default: one weight copy and one arena for all sessions, and the ORT
  rewrites that would copy a shared weight turned off), once per export variant; the FFN bundle with
  private per-session copies (every ORT optimisation on); the ST export of a plain model at that
  frame count. Export variants: ``--fold-budgets 0,0.02,...`` (the exporter's ``--fold-budget``:
  per-sub-network conv copies with the norm folded in, other norms as Add then Mul) and
  ``--compare-old`` (the earlier export: every norm as Mul then Add, no copies). FFN/ST ratios are
  medians of per-round ratios (every round runs each method once, in random order), by wall time
  and by process CPU time (steadier when other processes compete for the cores);
* RSS with all sub-networks ready vs one (fresh subprocesses; shared per variant, and private), and
  each variant's bundle size on disk;
* the cost of switching sub-network (a run right after another sub-network vs after the same one)
  vs loading another model (open a single-frame-count export and run it once);
* achieved GFLOP/s (2 x multiply-adds / p50) vs this machine's SGEMM peak (numpy matmul).

    python benchmarks/runtime_latency.py                                   # TSM-ResNet-18, 112 px
    python benchmarks/runtime_latency.py --arch tsm_mobilenetv2 --width 1.0 --size 160 --runs 30
    python benchmarks/runtime_latency.py --compare-old --fold-budgets 0,0.02,0.05   # export variants

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
    from ffn_edge.runtime.backends.ort import OrtBackend

    from ffn_edge.bundle.manifest import load_manifest

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


def build_bundles(arch: str, width: float, size: int, counts: list[int], classes: int, work: Path,
                  variants: dict[str, dict], verify: bool = True):
    """The FFN model and one bundle per export variant (``export_bundle`` keywords), plus one plain
    model + single-frame-count bundle per count (ST)."""
    import torch
    from ffn_edge.export import export_bundle

    from ffn_edge.checkpoint import CheckpointMeta, save_checkpoint
    from ffn_edge.models import ModelConfig, create_model, perturb_like_trained

    names = [f"c{i}" for i in range(classes)]
    shorter = int(round(size * 8 / 7))

    def checkpoint(cfg: ModelConfig, name: str) -> tuple[torch.nn.Module, Path]:
        torch.manual_seed(0)
        model = create_model(cfg).eval()
        perturb_like_trained(model)  # so per-sub-network copies cost what they would after training
        ckpt = work / f"{name}.safetensors"
        save_checkpoint(ckpt, model, CheckpointMeta(cfg, names, input_size=size, resize_shorter=shorter))
        return model, ckpt

    model, ckpt = checkpoint(ModelConfig(arch, classes, frame_counts=tuple(counts), width_mult=width), "ffn")
    ffn = {v: Path(export_bundle(ckpt, counts, work / f"ffn-{v}.ffn", **kw)) for v, kw in variants.items()}
    st = {}
    for n in counts:
        _, st_ckpt = checkpoint(ModelConfig(arch, classes, frame_counts=(n,), specialised_norm=False,
                                            weight_alteration=False, width_mult=width), f"st{n}")
        st[n] = Path(export_bundle(st_ckpt, [n], work / f"st{n}.ffn", verify=verify))
    return model, ffn, st


def export_variants(budgets: str, compare_old: bool) -> dict[str, dict]:
    """Name -> ``export_bundle`` keywords: one per --fold-budgets value, and the old export."""
    from ffn_edge.export.validate import DEFAULT_FOLD_BUDGET

    variants = {"old": {"fold_budget": 0.0, "bias_first": False}} if compare_old else {}
    for b in budgets.split(",") if budgets else [str(DEFAULT_FOLD_BUDGET)]:
        variants[f"b{float(b):g}"] = {"fold_budget": float(b)}
    return variants


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
    ap.add_argument("--fold-budgets", default="", help="comma-separated export --fold-budget values to compare "
                    "(default: the exporter's default); the last one is the main FFN column")
    ap.add_argument("--compare-old", action="store_true",
                    help="also export and measure the old form (norm as Mul then Add, no conv copies)")
    ap.add_argument("--no-verify", action="store_true",
                    help="skip the exporter's parity check: an untrained, perturbed TEA x0.25 has logits ~800 and "
                         "torch's own fp32 result is 3e-3 from fp64, past the absolute 1e-4 (trained ones pass)")
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
    from ffn_edge.runtime.backends.ort import OrtBackend
    from model_cost import count_macs

    from ffn_edge.bundle.manifest import load_manifest

    torch.set_num_threads(args.threads)
    counts = sorted(int(n) for n in args.frames.split(","))
    t = args.threads
    variants = export_variants(args.fold_budgets, args.compare_old)
    if args.no_verify:
        for kw in variants.values():
            kw["verify"] = False
    main_v = list(variants)[-1]  # the last --fold-budgets value: the one private mode and torch are set against
    with tempfile.TemporaryDirectory(prefix="ffn-bench-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        model, ffn_bundles, st_bundles = build_bundles(args.arch, args.width, args.size, counts, args.classes, work,
                                                       variants, verify=not args.no_verify)
        print(f"exported {len(variants)} FFN + {len(counts)} ST bundles in {time.perf_counter() - t0:.1f} s "
              f"({args.arch} x{args.width}, {args.size} px, {t} threads)", file=sys.stderr)
        shared = {v: FFNRuntime(b, threads=t, share_weights=True) for v, b in ffn_bundles.items()}
        private = FFNRuntime(ffn_bundles[main_v], threads=t, share_weights=False)
        st = {n: FFNRuntime(b, threads=t, share_weights=False) for n, b in st_bundles.items()}
        rng = np.random.default_rng(0)
        methods = ["torch", *(f"shared:{v}" for v in variants), "ffn_private", "st"]
        lat: dict[tuple[str, int], list[float]] = {(m, n): [] for m in methods for n in counts}
        cpu: dict[tuple[str, int], list[float]] = {(m, n): [] for m in methods for n in counts}
        for n in counts:
            clip = rng.standard_normal((1, n, 3, args.size, args.size)).astype(np.float32)
            tclip = torch.from_numpy(clip)
            subnet = counts.index(n)
            calls = {  # default arguments bind this iteration's clip and count
                "torch": lambda x=tclip, k=subnet: model(x, subnet=k),
                **{f"shared:{v}": (lambda n=n, x=clip, r=r: r._backend.run(n, x)) for v, r in shared.items()},
                "ffn_private": lambda n=n, x=clip: private._backend.run(n, x),
                "st": lambda n=n, x=clip: st[n]._backend.run(n, x),
            }
            with torch.no_grad():
                for fn in calls.values():  # warm-up
                    fn()
                for _ in range(args.runs):  # one run of each method per round, in a fresh random order
                    for i in rng.permutation(len(methods)):
                        c0 = time.process_time()  # CPU time of all this process's threads
                        lat[(methods[i], n)].append(1000 * _timed(calls[methods[i]]))
                        cpu[(methods[i], n)].append(time.process_time() - c0)

        # switching sub-network vs loading another model. Dispatch: choosing the session for a new
        # frame count (route + lookup). Penalty: a run right after another sub-network minus a run
        # right after the same one, paired (both orders alternate) so load drift cancels.
        rt = shared[main_v]
        n0, n1 = counts[0], counts[-1]
        clip0 = np.zeros((1, n0, 3, args.size, args.size), np.float32)
        clip1 = np.zeros((1, n1, 3, args.size, args.size), np.float32)
        dispatch_us = 1e6 * min(_timed(lambda: [rt.route(k) for k in counts * 100]) for _ in range(5)) \
            / (100 * len(counts))
        pairs = []
        for _ in range(2 * args.runs):
            rt._backend.run(n0, clip0)
            same = _timed(lambda: rt._backend.run(n0, clip0))
            rt._backend.run(n1, clip1)
            switched = _timed(lambda: rt._backend.run(n0, clip0))
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
        for r in (*shared.values(), private, *st.values()):
            r.close()

        rss = {}
        modes = [(f"shared:{v}", b, "1") for v, b in ffn_bundles.items()] + [("private", ffn_bundles[main_v], "0")]
        for mode, bundle, share in modes:
            for label, cs in (("all", counts), ("one", [counts[-1]])):
                probe = ["rss", str(bundle), ",".join(map(str, cs)), share, str(t)]
                rss[(mode, label)] = run_probe(probe, t)["rss_mib"]
        bundle_mib = {v: sum(f.stat().st_size for f in b.iterdir()) / 2**20 for v, b in ffn_bundles.items()}
        st_mib = sum(f.stat().st_size for f in st_bundles[counts[-1]].iterdir()) / 2**20
        peak = run_probe(["sgemm"], t)["gflops"]

    # -- the table --------------------------------------------------------------------------------
    def paired(a: str, b: str, n: int, times: dict = lat) -> float:
        """Median over rounds of a/b: the two ran back to back, so a load change hits both."""
        return float(np.median(np.array(times[(a, n)]) / np.array(times[(b, n)])))

    rows = []
    names = {"torch": "torch eager", **{f"shared:{v}": f"FFN shared {v}" for v in variants},
             "ffn_private": f"FFN private {main_v}", "st": "ORT ST export"}
    print(f"\nruntime latency, batch 1, ms (p50 / p95) - {args.arch} x{args.width}, {args.size} px, "
          f"{t} threads, {args.runs} runs; FFN = ONNX Runtime on the bundle; variants: "
          + "; ".join(f"{v} = {kw}" for v, kw in variants.items()))
    print(f"{'frames':>6} | " + " | ".join(f"{names[m]:>17}" for m in methods) + " | "
          + " | ".join(f"{v + '/ST':>9}" for v in variants) + f" | {'priv/ST':>7} | {'ORT/torch':>9} | {'GFLOP/s':>7}")
    for n in counts:
        p = {m: percentiles(lat[(m, n)]) for m in methods}
        r_st = {v: paired(f"shared:{v}", "st", n) for v in variants}
        r_priv = paired("ffn_private", "st", n)
        r_torch = paired(f"shared:{main_v}", "torch", n)
        gflops = 2 * macs[n] / (p[f"shared:{main_v}"][0] / 1000) / 1e9
        rows.append({"frames": n, **{f"{m}_p50": p[m][0] for m in methods}, **{f"{m}_p95": p[m][1] for m in methods},
                     **{f"ffn_vs_st:{v}": r for v, r in r_st.items()}, "ffn_private_vs_st": r_priv,
                     "ort_vs_torch": r_torch, "gflops": gflops, "gmacs": macs[n] / 1e9})
        cells = " | ".join(f"{p[m][0]:7.2f} / {p[m][1]:7.2f}" for m in methods)
        print(f"{n:>6} | {cells} | " + " | ".join(f"{r_st[v]:9.3f}" for v in variants)
              + f" | {r_priv:7.3f} | {r_torch:9.2f} | {gflops:7.1f}")
    print("(ratios: median over rounds of the per-round ratio; each round runs every method once, in random order)")
    print("same ratios by process CPU time (all threads), which time spent waiting for a core does not inflate: "
          "steadier than wall time on a loaded machine, blind to lost parallelism")
    for n in counts:
        r_cpu = {v: paired(f"shared:{v}", "st", n, cpu) for v in variants}
        rows[counts.index(n)].update({f"ffn_vs_st_cpu:{v}": r for v, r in r_cpu.items()})
        print(f"{n:>6} | " + " | ".join(f"{v}/ST {r:.3f}" for v, r in r_cpu.items())
              + f" | priv/ST {paired('ffn_private', 'st', n, cpu):.3f}")
    ratio = {mode: rss[(mode, "all")] / rss[(mode, "one")] for mode, _, _ in modes}
    best = max(r["gflops"] for r in rows)
    print(f"\nSGEMM peak (numpy, {t} threads): {peak:.1f} GFLOP/s; FFN shared {main_v} achieves "
          f"{min(r['gflops'] for r in rows):.1f}-{best:.1f} GFLOP/s ({100 * best / peak:.0f} % of peak at best)")
    print(f"RSS MiB, sessions for all {len(counts)} sub-networks / the largest one (bundle on disk, "
          f"ST export {st_mib:.1f} MiB):")
    for mode, _, _ in modes:
        disk = f", bundle {bundle_mib[mode.split(':')[1]]:.1f} MiB" if mode.startswith("shared:") else ""
        print(f"  {names.get(mode, mode):<22} {rss[(mode, 'all')]:6.1f} / {rss[(mode, 'one')]:6.1f} = "
              f"{ratio[mode]:.2f}{disk}")
    print(f"switch sub-network: dispatch {dispatch_us:.1f} us + first-run penalty {switch_ms:+.2f} ms (median of "
          f"{len(pairs)} paired runs after another sub-network minus after the same); load another model "
          f"(open a single-frame-count export + first run): {load_ms:.1f} ms")

    checks = [("ORT (FFN shared) / torch eager, worst", max(r["ort_vs_torch"] for r in rows), GOALS["ort_vs_torch"])]
    for v in variants:
        checks += [(f"FFN shared {v} / ST export, worst", max(r[f"ffn_vs_st:{v}"] for r in rows), GOALS["ffn_vs_st"]),
                   (f"RSS all / one, shared {v}", ratio[f"shared:{v}"], GOALS["rss_ratio"])]
    checks += [("FFN private / ST export, worst", max(r["ffn_private_vs_st"] for r in rows), GOALS["ffn_vs_st"]),
               ("RSS all / one, private copies", ratio["private"], GOALS["rss_ratio"]),
               ("switch cost, ms", max(switch_ms, 0.0) + dispatch_us / 1000, GOALS["switch_ms"])]
    print(f"\n{'goal':<40} {'measured':>8}     goal")
    for name, value, goal in checks:
        print(f"{name:<40} {value:8.3f}  <= {goal:<5g} {'PASS' if value <= goal else 'MISS'}")
    print("(shared = the runtime's default: one copy of the shared weights, ORT's norm-into-conv fusions off; "
          "private = --private-weights: ORT fuses each sub-network's norm into its own weight copy. "
          "Variants: old = the norm as Mul then Add, no conv copies; bX = Add then Mul, per-sub-network conv "
          "copies within X x the shared weight bytes)")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "config": vars(args), "variants": variants, "rows": rows, "sgemm_gflops": peak,
            "rss_mib": {f"{a}_{b}": v for (a, b), v in rss.items()}, "rss_ratio": ratio, "bundle_mib": bundle_mib,
            "switch_ms": switch_ms, "dispatch_us": dispatch_us, "load_ms": load_ms, "checks": checks}, indent=2))


if __name__ == "__main__":
    main()
