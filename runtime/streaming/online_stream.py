"""OnlineStream: a source classified online, one frame at a time through a causal bundle's step graphs.

``FFNRuntime.online_stream(source, OnlineOptions(...))`` builds one (``ffn-run --online``; keyword
shortcuts: ``rt.online_stream("cam0", cpu_share=0.25)``). It is the capture/decision loop
(``loop.py``) running the online mode (``online_mode.py``: windows, steps, labels, switching).

The budget is compute, not latency: every sub-network's step costs about the same (shared
convolutions), so what n changes is how many steps run per second. The scheduler therefore sees one
run per window, the n steps of it, and its latency budget is the step compute allowed per window:
``cpu_share x window``. A share at most 1 also keeps every step, on average, within its stride.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...core.errors import ConfigError
from ...core.sampling import nearest_subnet
from ..backends.steps import StepGraphs
from ..control.budgets import KEEP, BatteryPolicy, ThermalPolicy, _Keep
from ..control.policy import FrameCountPolicy, SchedulerLike
from ..media.capture import SourceEvent
from ..media.inputs import check_stream_options
from ..media.sources import FrameSource, Opener
from ..results import OnlineResult
from .loop import DecisionLoop, StreamBase
from .online_mode import OnlineMode
from .options import OnlineOptions
from .session_api import Session


class OnlineStream(StreamBase[OnlineResult]):
    """A source classified online on ``session``'s step graphs; see the module docstring. Iterable once."""

    def __init__(self, session: Session, source: str | FrameSource, policy: FrameCountPolicy,
                 options: OnlineOptions, graphs: StepGraphs, opener: Opener | None = None,
                 on_event: Callable[[SourceEvent], None] | None = None) -> None:
        self.session, self.options, self.graphs = session, options, graphs
        loop = DecisionLoop(session.preprocessor, source, options, opener=opener, on_event=on_event)
        super().__init__(loop, OnlineMode(session, policy, options, graphs), policy)

    @property
    def window_ms(self) -> float:
        return self.options.window_ms

    @property
    def cpu_share(self) -> float | None:
        """The compute share in force (budget per window / window), None without a budget."""
        b = self.policy.budget_ms
        return None if b is None else b / self.window_ms

    def set_budget(self, cpu_share: float | None | _Keep = KEEP, *, power_w: float | None | _Keep = KEEP,
                   battery_policy: BatteryPolicy | str | None | _Keep = KEEP,
                   thermal_policy: ThermalPolicy | str | None | _Keep = KEEP, budget_ms: Any = KEEP) -> None:
        """Change budgets from the next window on (thread-safe): the compute share, caps; ``None`` turns one off."""
        if budget_ms is not KEEP:
            raise ConfigError("an online stream is budgeted in compute: set_budget(cpu_share=...) (a share of wall "
                              "time in (0, 1]); budget_ms is the window mode's latency per decision")
        share: float | None | _Keep = cpu_share
        if cpu_share is not KEEP and cpu_share is not None:
            check_stream_options(cpu_share=cpu_share)
            share = cpu_share * self.window_ms
        self.policy.set_budget(share, power_w=power_w, battery_policy=battery_policy, thermal_policy=thermal_policy)


def open_online_stream(session: Session, source: str | FrameSource, options: OnlineOptions,
                       scheduler: SchedulerLike | None = None, signals: Callable[[float], Any] | None = None,
                       opener: Opener | None = None,
                       on_event: Callable[[SourceEvent], None] | None = None) -> OnlineStream:
    """The OnlineStream ``FFNRuntime.online_stream`` returns (BundleError without step graphs).

    A fixed ``frames`` is served by the nearest sub-network with a step graph (tie -> higher).
    """
    graphs = session.step_graphs()
    counts = session.manifest.subnet_frame_counts
    served = tuple(counts[k] for k in graphs.subnets)
    frames = None if options.frames is None else served[nearest_subnet(options.frames, served)]
    policy = FrameCountPolicy(counts, frames, options.budgets(), scheduler, signals, candidates=served)
    return OnlineStream(session, source, policy, options, graphs, opener=opener, on_event=on_event)
