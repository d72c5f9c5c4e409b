"""Stream options: every setting of a window stream and of an online stream, each default written once.

``rt.stream(source, StreamOptions(...))`` returns a ``Stream``, ``rt.online_stream(source,
OnlineOptions(...))`` an ``OnlineStream``. The keyword shortcuts (``rt.stream("cam0", budget_ms=30)``)
are these field names, folded into the options by ``build``; a field of the other mode is refused in
one line that says where it belongs. ``ffn-run`` takes its flags' defaults from here (``app/cli.py``;
a test compares the two). Every value is checked when the options are created, by
``media.inputs.check_stream_options`` (limits in ``ffn_edge.core.validate``) and, for the caps, by
``Budgets``; a bad one is a one-line ConfigError.

``topk`` defaults to 5, as ``FFNRuntime.predict`` does: a stream's ``Prediction`` is made like any
other, and top-5 is how action recognition reports its second number (Kinetics, Something-Something).
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from ...core.defaults import DEFAULT_CUT_THRESHOLD
from ...core.errors import ConfigError
from ..control.budgets import BatteryPolicy, Budgets, SchedulerError, ThermalPolicy
from ..media.inputs import check_stream_options

OptionsT = TypeVar("OptionsT", bound="LoopOptions")


@dataclasses.dataclass(frozen=True, kw_only=True)
class LoopOptions:
    """What both modes share: the window, the frame count, the label, the caps, the loop's limits and waits."""

    window_s: float = 1.0  # seconds of past video a decision looks at (online: n frames are spread over it)
    frames: int | None = None  # a fixed frame count (None: the scheduler's choice under the budgets, else the largest)
    topk: int = 5  # classes listed per label
    power_w: float | None = None  # board power cap (Jetson INA3221 rails)
    battery_policy: BatteryPolicy | str | None = None  # "PERCENT:FRAMES": at most FRAMES on a low battery
    thermal_policy: ThermalPolicy | str | None = None  # "CELSIUS:FRAMES": at most FRAMES while that hot
    max_decisions: int | None = None  # results before the stream ends (online: steps)
    duration_s: float | None = None  # wall-clock seconds before the stream ends
    realtime: bool | None = None  # files paced like a camera (None: files read offline, live sources live)
    capacity: int | None = None  # ring of preprocessed frames (None: a window at up to 60 fps, plus room)
    wait_timeout_s: float = 10.0  # longest wait for a frame before a stream gives up on its source
    backoff_s: float = 0.5  # first wait before reopening a lost live source (doubling, at most 8 s)

    def __post_init__(self) -> None:
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        policies = {k: values.pop(k) for k in ("battery_policy", "thermal_policy")}
        check_stream_options(**values)
        try:
            caps = Budgets(**policies)  # parses "PERCENT:FRAMES" / "CELSIUS:FRAMES" once
        except SchedulerError as e:
            raise ConfigError(str(e)) from None
        for name in policies:
            object.__setattr__(self, name, getattr(caps, name))

    def caps(self) -> Budgets:
        """The frame-count caps (power, battery, thermal) as ``Budgets`` with no latency budget."""
        return Budgets(power_w=self.power_w, battery_policy=self.battery_policy, thermal_policy=self.thermal_policy)

    @classmethod
    def build(cls: type[OptionsT], options: OptionsT | None = None, /, **shortcuts: Any) -> OptionsT:
        """``options`` (default: all defaults) with the keyword shortcuts replacing fields.

        ``budgets=Budgets(...)`` is short for its fields that are set. A field this mode does not have
        is a ConfigError that says which mode has it.
        """
        if options is not None and not isinstance(options, cls):
            raise ConfigError(f"expected {cls.__name__}, got {type(options).__name__}{_WRONG_OPTIONS.get(cls, '')}")
        given = shortcuts.pop("budgets", None)
        if given is not None:
            fields = {f.name: getattr(given, f.name) for f in dataclasses.fields(given)}
            shortcuts = {**{k: v for k, v in fields.items() if v is not None}, **shortcuts}
        names = {f.name for f in dataclasses.fields(cls)}
        for name in shortcuts:
            if name not in names:
                raise ConfigError(_MISPLACED.get((cls, name)) or f"{cls.__name__} has no option {name!r} "
                                  f"(it has {', '.join(sorted(names))})")
        return dataclasses.replace(options or cls(), **shortcuts)


@dataclasses.dataclass(frozen=True, kw_only=True)
class StreamOptions(LoopOptions):
    """A window stream: every ``stride_ms``, n frames sampled from the last ``window_s`` through a clip graph."""

    stride_ms: float = 500.0  # time between decisions
    budget_ms: float | None = None  # latency per decision (Prediction.latency_ms)

    def budgets(self) -> Budgets:
        """The budgets the stream starts with."""
        return self.caps().replace(budget_ms=self.budget_ms)


@dataclasses.dataclass(frozen=True, kw_only=True)
class OnlineOptions(LoopOptions):
    """An online stream (causal bundles): one frame per ``window_s / n`` through a step graph.

    Its budget is compute, not latency: ``cpu_share`` of the wall time for the steps, which the
    scheduler sees as ``cpu_share x window`` ms of step compute per window (n steps).

    ``reset_on_cut``: the state is carried from frame to frame, so after a camera cut the previous
    scene's buffers and logits shape the new scene's labels. With a threshold (``True``: the default,
    ``DEFAULT_CUT_THRESHOLD``), a frame whose colour histogram is that far (total variation distance,
    see ``media.scene_cut``) from the previous step's restarts the running sub-network from zero
    buffers and an empty logit ring, as a fresh stream would (``OnlineResult.cut``).
    """

    cpu_share: float | None = None  # share of wall time the steps may compute, in (0, 1]
    reset_on_cut: float | bool | None = None  # scene-cut threshold in (0, 1]; True: the default; None: no reset

    def __post_init__(self) -> None:
        if isinstance(self.reset_on_cut, bool):  # on / off: the default threshold / no reset
            object.__setattr__(self, "reset_on_cut", DEFAULT_CUT_THRESHOLD if self.reset_on_cut else None)
        super().__post_init__()

    @property
    def window_ms(self) -> float:
        return self.window_s * 1000.0

    def budgets(self) -> Budgets:
        """The budgets the stream starts with (the latency budget is the step compute per window)."""
        return self.caps().replace(budget_ms=None if self.cpu_share is None else self.cpu_share * self.window_ms)


_MISPLACED = {
    (StreamOptions, "cpu_share"): "cpu_share budgets online streams only (rt.online_stream); a window stream "
                                  "takes budget_ms",
    (StreamOptions, "online"): "online=True is gone: rt.online_stream(source, ...) opens an online stream "
                               "(an OnlineStream)",
    (StreamOptions, "reset_on_cut"): "reset_on_cut resets an online stream's shift buffers (rt.online_stream); "
                                     "a window stream carries no state between decisions",
    (OnlineOptions, "budget_ms"): "online streams are budgeted in compute (cpu_share), not in latency per "
                                  "decision (budget_ms)",
    (OnlineOptions, "stride_ms"): "an online stream's stride is window_s / n; stride_ms is the window mode's",
}
_WRONG_OPTIONS = {StreamOptions: " (online options go to rt.online_stream)",
                  OnlineOptions: " (window options go to rt.stream)"}
