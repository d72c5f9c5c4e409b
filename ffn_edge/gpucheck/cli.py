"""The GPU check's command line and the order of its checks.

Exit status: 0 when every check passed or was skipped (a CPU-only machine skips them all), 1 when
any failed, 2 on a bad argument. Each check is independent: one that fails is reported and the
next one runs.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..core.argparsing import Parser
from ..core.errors import ConfigError, run_cli
from . import engines, environment, steps, torch_speed, training
from .config import TINY, CheckConfig
from .report import Check, Report, Skip

CheckFn = Callable[[CheckConfig, Path, Report, dict[str, Any]], tuple[str, dict[str, Any]]]


def _first_checkpoint(state: dict[str, Any]) -> Path | None:
    return next((Path(state[k]["checkpoint"]) for k in ("train-bf16", "train-fp16", "train-ddp") if k in state), None)


CHECKS: dict[str, CheckFn] = {
    "train-bf16": lambda cfg, work, report, state: training.train(cfg, work, "bf16"),
    "train-fp16": lambda cfg, work, report, state: training.train(cfg, work, "fp16"),
    "train-ddp": lambda cfg, work, report, state: training.train(cfg, work, "bf16", ddp=True),
    "eval-cuda-vs-cpu": lambda cfg, work, report, state: training.evaluate_parity(cfg, _first_checkpoint(state)),
    "torch-eager": lambda cfg, work, report, state: torch_speed.eager_latency(cfg, report),
    "torch-cuda-graphs": lambda cfg, work, report, state: torch_speed.faster_paths(cfg, report, "cuda-graphs"),
    "torch-compile": lambda cfg, work, report, state: torch_speed.faster_paths(cfg, report, "compile"),
    "torch-memory": lambda cfg, work, report, state: torch_speed.memory(cfg, report),
    **{name: (lambda cfg, work, report, state, name=name: engines.check(cfg, work, report, name))
       for name in engines.BACKENDS},
    **{name: (lambda cfg, work, report, state, name=name: steps.check(cfg, work, report, name))
       for name in steps.BACKENDS},
}


def run_checks(cfg: CheckConfig, work: Path, report: Report, skip: Sequence[str] = ()) -> Report:
    """Every check in order; a check's exception is its failure (one line), never the end of the run."""
    state: dict[str, Any] = {}
    for name, fn in CHECKS.items():
        t0 = time.perf_counter()
        if name in skip:
            report.add(Check(name, "skipped", "skipped: --skip"))
            continue
        try:
            detail, data = fn(cfg, work, report, state)
            state[name] = data
            report.add(Check(name, "ok", detail, data, time.perf_counter() - t0))
        except Skip as e:
            report.add(Check(name, "skipped", str(e)))
        except Exception as e:  # a failed check is a result: recorded, and the next check runs
            msg = str(e).strip().splitlines()[-1] if str(e).strip() else ""
            report.add(Check(name, "failed", f"{type(e).__name__}: {msg}", {}, time.perf_counter() - t0))
    return report


def build_parser() -> Parser:
    p = Parser(prog="gpucheck", description="Train, evaluate and time ffn-edge on this machine's GPU, then each "
               "TensorRT / ONNX Runtime GPU backend whose library is installed; one line per check (ok, failed, "
               "skipped: why), OUT/gpucheck.json and OUT/gpucheck.md. Exit 0: nothing failed; 1: a check failed.")
    p.add_argument("--out", required=True, help="directory for gpucheck.json and gpucheck.md")
    p.add_argument("--device", choices=("auto", "cpu"), default="auto",
                   help="auto: CUDA where there is one, else every torch check is skipped; cpu: run the torch "
                        "checks on the CPU (tests the check itself)")
    p.add_argument("--tiny", action="store_true", help="tiny sizes (seconds on a CPU; for testing the check)")
    p.add_argument("--arch", help=f"backbone (default {CheckConfig.arch})")
    p.add_argument("--epochs", type=int, help=f"training epochs per run (default {CheckConfig.epochs}, "
                                              f"{CheckConfig().steps} steps)")
    p.add_argument("--size", type=int, help=f"input crop of the latency and memory checks (default {CheckConfig.size})")
    p.add_argument("--runs", type=int, help=f"timed runs per method and frame count (default {CheckConfig.runs})")
    p.add_argument("--no-compile", dest="compile", action="store_false", default=None, help="skip torch.compile")
    p.add_argument("--skip", nargs="+", default=[], choices=tuple(CHECKS), metavar="CHECK",
                   help=f"checks not to run: {', '.join(CHECKS)}")
    return p


def config_from(args: Any) -> CheckConfig:
    cfg = CheckConfig(device=args.device, **(TINY if args.tiny else {}))
    given = {k: getattr(args, k) for k in ("arch", "epochs", "size", "runs", "compile") if getattr(args, k) is not None}
    for k in ("epochs", "size", "runs"):
        if k in given and given[k] < 1:
            raise ConfigError(f"--{k} must be >= 1, got {given[k]}")
    return dataclasses.replace(cfg, **given)


def cli(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = config_from(args)
    out = Path(args.out)
    report = Report(environment.describe(cfg.device))
    print("gpucheck: " + ", ".join(f"{k} {v}" for k, v in report.environment.items()), flush=True)
    with tempfile.TemporaryDirectory(prefix="ffn-gpucheck-") as tmp:
        run_checks(cfg, Path(tmp), report, args.skip)
    js, md = report.write(out)
    failed = report.failed()
    print(f"gpucheck: {len(report.checks) - len(failed)} of {len(report.checks)} checks ok or skipped"
          f"{'; FAILED: ' + ', '.join(c.name for c in failed) if failed else ''}; wrote {js} and {md}", flush=True)
    return 1 if failed else 0


def main() -> None:
    """Console entry point: a bad argument is one line and exit 2 (``run_cli``), a failed check exit 1."""
    run_cli("gpucheck", cli)


if __name__ == "__main__":
    main()
