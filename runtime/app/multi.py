"""``ffn-run`` with several ``--video``: one session, one multi-stream, one budget per round.

``ffn-run --bundle m.ffn --video cam0 --video cam1 --video clip.mp4 --budget-ms 30`` opens every
source on one session (``FFNRuntime.streams``): each round (every ``--stride-ms``) the joint
allocator chooses every stream's frame count so that the round, all streams' runs together, fits
``--budget-ms``; streams with the same count run as one batch. Each stream's decision is one line
(or one JSON object with ``--json``) tagged with its source; at the end, one summary per stream and
one for the rounds. A single ``--video`` is the single-stream ``ffn-run``, unchanged.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

from ...core.errors import ConfigError
from ..media.inputs import check_video_file, require_decisions
from ..media.sources import parse_source
from ..results import MultiResult
from ..session import FFNRuntime
from ..streaming.multi_checks import check_sources
from ..streaming.options import StreamOptions
from .outputs import open_outputs
from .records import multi_record
from .summary import RunningSummary

SINGLE_ONLY = (("online", "--online"), ("output", "--output"), ("show", "--show"))


def add_multi_arguments(p: argparse.ArgumentParser) -> None:
    """The flags that only several ``--video`` use."""
    g = p.add_argument_group("several cameras (more than one --video; --budget-ms is then per round)")
    g.add_argument("--weight", type=float, action="append", default=None, metavar="W",
                   help="weight of each --video in the joint allocation, in order (default 1 each)")
    g.add_argument("--min-accuracy", type=float, default=None, metavar="SHARE",
                   help="per stream, the least frames whose predicted accuracy is >= SHARE of the best "
                        "(e.g. 0.97: save compute); the budget still applies")
    g.add_argument("--no-batching", dest="batching", action="store_false",
                   help="run every stream alone (default: streams with the same frame count run as one batch)")


def check_multi_args(args: argparse.Namespace) -> None:
    """Flags of the single-stream mode only, and multi-stream flags with one --video: one line each."""
    several = len(args.video) > 1
    if several:
        for dest, flag in SINGLE_ONLY:
            if getattr(args, dest, None):
                raise ConfigError(f"{flag} serves one --video; with {len(args.video)} sources it is not available")
    else:
        for dest, flag, off in (("weight", "--weight", None), ("min_accuracy", "--min-accuracy", None),
                                ("batching", "--no-batching", True)):
            if getattr(args, dest, off) is not off:
                raise ConfigError(f"{flag} applies to several --video sources")


def decision_line(m: MultiResult) -> str:
    r = m.result
    if r is None:
        return f"[{m.round:4d}] {m.source}: no frames this round"
    p = r.prediction
    top = ", ".join(f"{lbl} {s:.2f}" for lbl, s in p.topk)
    return (f"[{m.round:4d}] {m.source}  t={r.t:7.2f}s  {p.frames:2d} frames  batch {m.batch}  "
            f"run {p.latency_ms:7.2f} ms  round {m.round_latency_ms:7.2f} ms  {r.reason:<10s} {top}")


class MultiSummary:
    """Per-stream RunningSummary plus the rounds' share within the budget (constant memory)."""

    def __init__(self) -> None:
        self.streams: dict[str, RunningSummary] = {}
        self.rounds: dict[int, bool | None] = {}
        self.round_count = 0
        self.within = Counter[bool]()
        self._last_round = -1

    def add(self, m: MultiResult) -> None:
        if m.result is not None:
            self.streams.setdefault(m.source, RunningSummary()).add(m.result)
        if m.round != self._last_round:
            self._last_round = m.round
            self.round_count += 1
            if m.round_within_budget is not None:
                self.within[m.round_within_budget] += 1

    def report(self, budget_ms: float | None, backend: str) -> str:
        lines = []
        budgeted = self.within[True] + self.within[False]
        if budget_ms is not None and budgeted:
            lines.append(f"ffn-run: {self.round_count} rounds; within the {budget_ms:g} ms round budget: "
                         f"{self.within[True]}/{budgeted} ({100.0 * self.within[True] / budgeted:.1f} %)")
        for source, s in self.streams.items():
            lines.append(f"ffn-run: stream {source}")
            lines.append(s.report(None, backend))
        return "\n".join(lines)


def run_multi(args: argparse.Namespace, options: StreamOptions) -> int:
    """Several --video on one session; the caller has parsed and checked the flags."""
    check_sources(args.video, args.weight)  # before the bundle loads
    for video in args.video:
        spec = parse_source(video)
        if spec.kind == "file":
            check_video_file(spec.target)
    summary = MultiSummary()
    with FFNRuntime.open(args.bundle, backend=args.backend, device=args.device, threads=args.threads,
                         share_weights=not args.private_weights) as rt, open_outputs(args) as outputs:
        stream = rt.streams(args.video, options, weights=args.weight, min_accuracy=args.min_accuracy,
                            batching=args.batching)
        finished = False
        try:
            print(f"ffn-run: backend {rt.backend_name}; {len(args.video)} streams on one session; sub-networks "
                  f"{list(rt.manifest.subnet_frame_counts)}", file=sys.stderr)
            for m in stream:
                summary.add(m)
                rec = multi_record(m)
                outputs.write(rec, decision_line(m))
                if rec is None:
                    outputs.events(m.source, m.events)
                for e in m.events:
                    print(f"ffn-run: source {m.source}: {e}", file=sys.stderr)
            finished = True
            for video in args.video:
                done = summary.streams.get(video)
                require_decisions(done.decisions if done else 0, video)
        finally:
            stream.close()
            if finished or summary.streams:
                print(summary.report(stream.allocator.budget_ms, rt.backend_name), file=sys.stderr)
    return 0
