"""Stream: one video source classified continuously on a session, one ``StreamResult`` per decision.

The stream owns what a session does not: the capture thread and its ring of preprocessed frames,
the frame-count policy (and through it the scheduler and its ``Budgets``), the decision clock and
the source events. ``FFNRuntime.stream(source, StreamOptions(...))`` builds one (keyword shortcuts:
``rt.stream("cam0", budget_ms=30)``); iterate it (once), change its budgets from any thread with
``set_budget``, stop it with ``close`` (or a ``with`` block)::

    with rt.stream("cam0", budget_ms=30) as s:
        for r in s:
            ...                                  # s.set_budget(budget_ms=20) from anywhere

It is the capture/decision loop (``loop.py``) running the window mode (``window_mode.py``): what a
decision times, how files and cameras are paced. A live camera keeps being drained while a decision
runs; its capture is load on the machine like any other, which the scheduler sees as slowdown
(wall / CPU), not as the sub-network's own cost.
"""

from __future__ import annotations

from collections.abc import Callable

from ..control.budgets import KEEP, BatteryPolicy, ThermalPolicy, _Keep
from ..control.policy import FrameCountPolicy
from ..media.capture import SourceEvent
from ..media.sources import FrameSource, Opener
from ..results import StreamResult
from .loop import DecisionLoop, StreamBase
from .options import StreamOptions
from .session_api import Session
from .window_mode import WindowMode


class Stream(StreamBase[StreamResult]):
    """A source classified on ``session`` in window mode; see the module docstring. Iterable once."""

    def __init__(self, session: Session, source: str | FrameSource, policy: FrameCountPolicy,
                 options: StreamOptions, opener: Opener | None = None,
                 on_event: Callable[[SourceEvent], None] | None = None) -> None:
        self.session, self.options = session, options
        loop = DecisionLoop(session.preprocessor, source, options, opener=opener, on_event=on_event)
        super().__init__(loop, WindowMode(session, policy, options), policy)

    def set_budget(self, budget_ms: float | None | _Keep = KEEP, *, power_w: float | None | _Keep = KEEP,
                   battery_policy: BatteryPolicy | str | None | _Keep = KEEP,
                   thermal_policy: ThermalPolicy | str | None | _Keep = KEEP) -> None:
        """Change this stream's budgets from its next decision (thread-safe); ``None`` turns one off."""
        self.policy.set_budget(budget_ms, power_w=power_w, battery_policy=battery_policy,
                               thermal_policy=thermal_policy)
