"""RunningSummary: ffn-run's end-of-run report in constant memory (a camera may run for months).

Counts, sums and histograms only grow with the number of distinct frame counts and reasons (a
handful); latency percentiles are over the last ``RECENT`` decisions (a bounded ring). Decisions
made during the scheduler's warm-up are counted, and left out of the "after warm-up" share. Online
results (one per step) count as decisions; their warm labels, sub-network switches and scene-cut resets
are counted too.
"""

from __future__ import annotations

from collections import Counter, deque

import numpy as np

from ..results import OnlineResult, StreamResult

RECENT = 1000  # decisions the latency percentile looks back over


class RunningSummary:
    """Fed one StreamResult at a time (``add``); ``report`` is the text ffn-run prints at the end."""

    def __init__(self, recent: int = RECENT) -> None:
        self.decisions = 0
        self.latency_sum = 0.0
        self.latency_max = 0.0
        self.recent: deque[float] = deque(maxlen=recent)
        self.frames: Counter[int] = Counter()
        self.reasons: Counter[str] = Counter()
        self.budgeted = self.within = 0  # decisions with a latency budget / within it
        self.budgeted_settled = self.within_settled = 0  # the same, after the warm-up
        self.online = self.warm = self.switches = 0  # online steps, those with a warm label, switches
        self.cuts = 0  # online steps that reset the state at a scene cut (reset_on_cut)

    def add(self, r: StreamResult | OnlineResult) -> None:
        latency = r.latency_ms
        self.decisions += 1
        self.latency_sum += latency
        self.latency_max = max(self.latency_max, latency)
        self.recent.append(latency)
        self.frames[r.frames] += 1
        if not isinstance(r, StreamResult):
            self.online += 1
            self.warm += r.warm
            self.switches += r.switched and self.online > 1
            self.cuts += r.cut
        self.reasons[r.reason] += 1
        if r.within_budget is not None:
            settled = "warmup" not in r.reasons
            self.budgeted += 1
            self.within += r.within_budget
            self.budgeted_settled += settled
            self.within_settled += settled and r.within_budget

    def report(self, budget_ms: float | None, backend: str, budget_name: str | None = None) -> str:
        """Decisions, latency, frame-count histogram, share within budget (all / after warm-up), reasons.

        ``budget_name`` names the budget in the report (default: "<budget_ms> ms budget").
        """
        if not self.decisions:
            return f"ffn-run: 0 decisions (backend {backend})"
        recent = f"p95 of the last {len(self.recent)}" if self.decisions > len(self.recent) else "p95"
        lines = [
            f"ffn-run: {self.decisions} decisions on {backend}",
            f"  latency ms: mean {self.latency_sum / self.decisions:.2f}  "
            f"{recent} {np.percentile(np.fromiter(self.recent, float), 95):.2f}  max {self.latency_max:.2f}",
            "  frames used: " + "  ".join(f"{n}:{self.frames[n]}" for n in sorted(self.frames)),
        ]
        if budget_ms is not None and self.budgeted:
            lines.append(f"  within {budget_name or f'{budget_ms:g} ms budget'}: {self.within}/{self.budgeted} "
                         f"({100.0 * self.within / self.budgeted:.1f} %); after warm-up: "
                         f"{self.within_settled}/{self.budgeted_settled} "
                         f"({100.0 * self.within_settled / max(1, self.budgeted_settled):.1f} %)")
        if self.online:
            lines.append(f"  online: {self.warm}/{self.online} steps gave a warm label; "
                         f"{self.switches} sub-network switches; {self.cuts} scene-cut resets")
        lines.append("  reasons: " + "  ".join(f"{k}:{v}" for k, v in sorted(self.reasons.items())))
        return "\n".join(lines)
