"""StreamOptions / OnlineOptions: one default per setting, shared by ffn-run and the API; one loop, two modes.

Most tests need no model. The session tests use one tiny causal bundle (it has clip and step graphs,
so both stream types open on it) and a 2 s video.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from ffn_edge.export import export_bundle
from ffn_edge.runtime import Budgets, ConfigError, FFNRuntime, OnlineOptions, OnlineStream, Stream, StreamOptions
from ffn_edge.runtime.app.cli import API_ONLY_OPTIONS, OPTION_FLAGS, build_parser, stream_options
from ffn_edge.runtime.control.budgets import BatteryPolicy, ThermalPolicy
from ffn_edge.runtime.results import OnlineResult, StreamResult
from ffn_edge.runtime.streaming.loop import END, DecisionLoop, Run

from ffn_edge.checkpoint import CheckpointMeta, save_checkpoint
from ffn_edge.models import ModelConfig, create_model

MINIMAL = ["--bundle", "b.ffn", "--video", "clip.mp4"]


def _fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


# -- ffn-run and the options agree -----------------------------------------------------------------
@pytest.mark.parametrize(("argv", "cls"), [(MINIMAL, StreamOptions), ([*MINIMAL, "--online"], OnlineOptions)])
def test_cli_defaults_are_the_options_defaults(argv, cls) -> None:
    parser = build_parser()
    assert stream_options(parser.parse_args(argv)) == cls()
    for dest, name in OPTION_FLAGS.items():  # a flag with a default of its own must have the option's
        default = parser.get_default(dest)
        if default is not None and default is not False and name in _fields(cls):
            assert default == getattr(cls(), name), dest


def test_every_option_is_a_flag_or_named_api_only() -> None:
    parser_dests = {a.dest for a in build_parser()._actions}
    assert set(OPTION_FLAGS) <= parser_dests
    assert set(OPTION_FLAGS.values()) | API_ONLY_OPTIONS == _fields(StreamOptions) | _fields(OnlineOptions)


def test_predict_and_streams_list_the_same_topk() -> None:
    assert inspect.signature(FFNRuntime.predict).parameters["topk"].default == StreamOptions.topk
    assert OnlineOptions.topk == StreamOptions.topk


def test_flags_set_the_options() -> None:
    args = build_parser().parse_args([*MINIMAL, "--window-s", "2", "--stride-ms", "250", "--topk", "3",
                                      "--frames", "8", "--budget-ms", "30", "--power-w", "5", "--battery-policy",
                                      "20:4", "--thermal-c", "80:8", "--max-decisions", "7", "--duration", "9",
                                      "--realtime"])
    assert stream_options(args) == StreamOptions(
        window_s=2.0, stride_ms=250.0, topk=3, frames=8, budget_ms=30.0, power_w=5.0,
        battery_policy=BatteryPolicy(20.0, 4), thermal_policy=ThermalPolicy(80.0, 8), max_decisions=7,
        duration_s=9.0, realtime=True)
    online = stream_options(build_parser().parse_args([*MINIMAL, "--online", "--cpu-share", "0.25"]))
    assert online == OnlineOptions(cpu_share=0.25)


# -- checked once, on creation ---------------------------------------------------------------------
@pytest.mark.parametrize(("cls", "kw", "text"), [
    (StreamOptions, {"window_s": math.nan}, "window (s) must be finite"),
    (StreamOptions, {"stride_ms": 1.0}, "stride (ms) must be in"),
    (StreamOptions, {"topk": 0}, "topk must be in"),
    (StreamOptions, {"frames": 10**6}, "frames must be in"),
    (StreamOptions, {"budget_ms": 0}, "budget (ms) must be in"),
    (StreamOptions, {"realtime": "yes"}, "realtime must be true or false"),
    (StreamOptions, {"battery_policy": "low"}, "battery policy must look like"),
    (OnlineOptions, {"thermal_policy": "hot"}, "thermal policy must look like"),
    (OnlineOptions, {"cpu_share": 1.5}, "cpu share must be in (0, 1]"),
    (OnlineOptions, {"wait_timeout_s": math.inf}, "wait timeout (s) must be finite"),
    (OnlineOptions, {"capacity": 0}, "capacity must be in"),
])
def test_a_bad_option_is_one_config_error(cls, kw, text) -> None:
    with pytest.raises(ConfigError) as e:
        cls(**kw)
    assert text in str(e.value) and "\n" not in str(e.value)


def test_shortcuts_replace_fields_of_the_options() -> None:
    base = StreamOptions(window_s=2.0, topk=3)
    assert StreamOptions.build(base, budget_ms=30) == StreamOptions(window_s=2.0, topk=3, budget_ms=30.0)
    assert StreamOptions.build() == StreamOptions() and StreamOptions.build(base) == base
    caps = Budgets(power_w=5.0, battery_policy="20:4")
    assert StreamOptions.build(budgets=caps, budget_ms=10) == StreamOptions(power_w=5.0, battery_policy="20:4",
                                                                            budget_ms=10.0)
    assert StreamOptions(battery_policy="20:4").budgets() == Budgets(battery_policy=BatteryPolicy(20.0, 4))


@pytest.mark.parametrize(("cls", "kw", "text"), [
    (StreamOptions, {"cpu_share": 0.5}, "cpu_share budgets online streams only"),
    (StreamOptions, {"online": True}, "rt.online_stream(source"),
    (OnlineOptions, {"budget_ms": 30}, "online streams are budgeted in compute"),
    (OnlineOptions, {"stride_ms": 100}, "stride is window_s / n"),
    (OnlineOptions, {"budgets": Budgets(budget_ms=30)}, "online streams are budgeted in compute"),
    (StreamOptions, {"window": 1.0}, "StreamOptions has no option 'window'"),
])
def test_an_option_of_the_other_mode_says_where_it_belongs(cls, kw, text) -> None:
    with pytest.raises(ConfigError) as e:
        cls.build(**kw)
    assert text in str(e.value) and "\n" not in str(e.value)


def test_options_of_the_wrong_mode_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"expected StreamOptions, got OnlineOptions \(online options go to"):
        StreamOptions.build(OnlineOptions())


def test_online_budget_is_the_step_compute_per_window() -> None:
    o = OnlineOptions(cpu_share=0.25, window_s=2.0, power_w=4.0)
    assert o.budgets() == Budgets(budget_ms=500.0, power_w=4.0)
    assert OnlineOptions().budgets() == Budgets()


# -- the session: one type per method --------------------------------------------------------------
@pytest.fixture(scope="module")
def causal(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny causal bundle (sub-networks at 2 and 4 frames) and a 2 s, 30 fps video."""
    d = tmp_path_factory.mktemp("opts")
    cfg = ModelConfig("tsm_resnet18", 2, frame_counts=(2, 4), width_mult=0.125, shift="causal")
    save_checkpoint(d / "c.safetensors", create_model(cfg).eval(),
                    CheckpointMeta(cfg, ["a", "b"], input_size=32, resize_shorter=32))
    bundle = Path(export_bundle(d / "c.safetensors", (2, 4), d / "c.ffn", verify=False))
    video = d / "v.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (48, 48))
    for i in range(60):
        writer.write(np.full((48, 48, 3), i * 4, np.uint8))
    writer.release()
    return bundle, video


@pytest.fixture(scope="module")
def rt(causal) -> FFNRuntime:
    with FFNRuntime.open(causal[0], threads=1) as runtime:
        yield runtime


def test_stream_and_online_stream_return_one_type_each(rt, causal) -> None:
    video = str(causal[1])
    window = rt.stream(video, StreamOptions(frames=2, stride_ms=250), max_decisions=2)
    online = rt.online_stream(video, OnlineOptions(frames=4), max_decisions=5)
    assert type(window) is Stream and type(online) is OnlineStream and not isinstance(online, Stream)
    assert window.options == StreamOptions(frames=2, stride_ms=250, max_decisions=2)
    assert [type(r) for r in window] == [StreamResult] * 2
    assert [type(r) for r in online] == [OnlineResult] * 5
    with pytest.raises(ConfigError, match="online=True is gone"):
        rt.stream(video, online=True)


def test_online_set_budget_takes_a_share_and_says_so_for_ms(rt, causal) -> None:
    s = rt.online_stream(str(causal[1]), cpu_share=0.5, window_s=0.5)
    s.set_budget(cpu_share=0.2)
    assert s.cpu_share == pytest.approx(0.2) and s.budgets.budget_ms == pytest.approx(100.0)
    with pytest.raises(ConfigError) as e:
        s.set_budget(budget_ms=20)
    assert "set_budget(cpu_share=...)" in str(e.value) and "\n" not in str(e.value)
    assert s.budgets.budget_ms == pytest.approx(100.0)  # unchanged


# -- one loop, the mode a strategy on it -----------------------------------------------------------
class Scripted:
    """A mode that yields its turn number every other turn and ends after ``end_at`` turns."""

    def __init__(self, end_at: int) -> None:
        self.end_at, self.turns, self.begun = end_at, 0, False

    def begin(self, run: Run) -> None:
        self.begun = run.offline and not run.live

    def tick(self, run: Run) -> int | object | None:
        self.turns += 1
        if self.turns > self.end_at:
            return END
        return self.turns if self.turns % 2 else None


@pytest.mark.parametrize(("max_decisions", "end_at", "want"), [(2, 100, [1, 3]), (None, 6, [1, 3, 5])])
def test_the_loop_counts_results_and_ends_where_the_mode_says(rt, causal, max_decisions, end_at, want) -> None:
    loop = DecisionLoop(rt.preprocessor, str(causal[1]), StreamOptions(max_decisions=max_decisions))
    mode = Scripted(end_at)
    assert list(loop.iterate(mode)) == want and mode.begun
    with pytest.raises(ConfigError, match="iterated once"):
        loop.iterate(mode)
