"""Online mode's scene-cut reset (``reset_on_cut``, ``ffn-run --online --reset-on-cut``).

The causal test bundle (sub-networks at 2 and 4 frames, 32 px) on videos made of synthetic clips: the
session ``video`` (three 1 s clips of three classes, so cuts at 1 s and 2 s), the demo's sample video
(4 s clips, two of the same class) and one scene rendered as a single 3 s take (no cut).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from builders import FPS, decode_preprocessed, write_video
from ffn_edge.runtime import FFNRuntime
from ffn_edge.runtime.app.cli import build_parser, run, stream_options
from ffn_edge.runtime.streaming.options import OnlineOptions, StreamOptions

from ffn_edge.core.defaults import DEFAULT_CUT_THRESHOLD
from ffn_edge.core.errors import ConfigError
from ffn_edge.data.synthetic import render_clip
from ffn_edge.demo import CLIP_FRAMES, write_sample_video
from ffn_edge.demo import FPS as DEMO_FPS

torch.set_num_threads(1)
CLIP_STEPS = 4  # steps per 1 s clip of the session video at frames=4, window 1 s


@pytest.fixture(scope="module")
def rt(causal_bundle) -> FFNRuntime:
    with FFNRuntime.open(causal_bundle, threads=1) as runtime:
        yield runtime


def _decode(rt: FFNRuntime, path) -> list[np.ndarray]:
    return decode_preprocessed(path, rt.preprocessor)


@pytest.fixture(scope="module")
def one_take(tmp_path_factory):
    """One scene for 3 s at 30 fps: a single synthetic take (its object flashes once), no cut anywhere."""
    clip = render_clip(3, np.random.default_rng(11), 3 * int(FPS), 64)
    return write_video(tmp_path_factory.mktemp("take") / "take.mp4", clip)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z.astype(np.float64) - z.max())
    return e / e.sum()


def test_a_video_of_several_clips_resets_at_each_boundary(rt, video) -> None:
    results = list(rt.online_stream(str(video), frames=4, window_s=1.0, reset_on_cut=True))
    assert [r.step for r in results if r.cut] == [CLIP_STEPS, 2 * CLIP_STEPS]  # the first frames of clips 2, 3
    for k in (CLIP_STEPS, 2 * CLIP_STEPS):  # the ring restarted: 3 stale steps, then a warm label again
        assert [r.warm for r in results[k:k + 4]] == [False, False, False, True]
        assert [r.warm_steps for r in results[k:k + 4]] == [1, 2, 3, 4]
        assert results[k].prediction is results[k - 1].prediction  # the previous scene's label, marked stale
        assert not results[k].switched  # the same sub-network runs on: a cut is not a switch
    assert not any(r.cut for r in rt.online_stream(str(video), frames=4, window_s=1.0))  # off by default


def test_a_single_scene_does_not_reset(rt, one_take) -> None:
    for frames in (2, 4):
        results = list(rt.online_stream(str(one_take), frames=frames, window_s=0.4, reset_on_cut=True))
        assert len(results) > 10 and not any(r.cut for r in results)


def test_same_class_takes_reset_too(rt, tmp_path) -> None:
    """The demo's sample video: 4 s clips back to back; two of the same class are still two scenes."""
    path = tmp_path / "sample.mp4"
    write_sample_video(path, [0, 0, 2], seed=3)
    results = list(rt.online_stream(str(path), frames=4, window_s=1.0, reset_on_cut=True))
    clip_s = CLIP_FRAMES / DEMO_FPS
    assert [r.stamp for r in results if r.cut] == pytest.approx([clip_s, 2 * clip_s], abs=1 / DEMO_FPS)


def test_a_cut_zeroes_the_buffers_and_restarts_the_ring(rt, video) -> None:
    """Replayed through the step graphs with zero buffers AND an empty ring from each cut on, every label
    matches; the first warm label after a cut is the causal clip graph on the new scene's four frames. A
    reset of only the ring leaves old buffers in those logits; a reset of only the buffers gives a warm
    label right after the cut, from logits of both scenes."""
    decoded = _decode(rt, video)
    results = list(rt.online_stream(str(video), frames=4, window_s=1.0, reset_on_cut=DEFAULT_CUT_THRESHOLD))
    steps = rt.step_graphs()
    state, ring = steps.zero_state(1), []
    for r in results:
        if r.cut:
            state, ring = steps.zero_state(r.subnet), []
        step = steps.run(decoded[round(r.stamp * FPS)], r.subnet, state)
        state = step.state
        ring.append(step.logits)
        assert r.warm == (len(ring) >= 4)
        if r.warm:
            want = _softmax(np.mean(ring[-4:], axis=0))
            assert np.abs(np.array([p for _, p in sorted(r.prediction.topk)]) - want).max() < 1e-5
    after = results[2 * CLIP_STEPS:3 * CLIP_STEPS]
    clip = np.stack([decoded[round(r.stamp * FPS)] for r in after])[None]
    want = _softmax(rt.run(4, clip).logits[0])
    got = np.array([p for _, p in sorted(after[-1].prediction.topk)])
    assert np.abs(got - want).max() < 1e-5
    # without the reset the carried buffers change that label: the check above can tell the two apart
    carried = list(rt.online_stream(str(video), frames=4, window_s=1.0))[3 * CLIP_STEPS - 1]
    assert np.abs(np.array([p for _, p in sorted(carried.prediction.topk)]) - want).max() > 1e-4


def test_options_take_a_threshold_or_on_off() -> None:
    assert OnlineOptions().reset_on_cut is None
    assert OnlineOptions(reset_on_cut=True).reset_on_cut == DEFAULT_CUT_THRESHOLD
    assert OnlineOptions(reset_on_cut=False).reset_on_cut is None
    assert OnlineOptions(reset_on_cut=0.3).reset_on_cut == 0.3
    for bad, text in ((0, r"reset-on-cut threshold must be in \(0, 1\]"), (1.5, "must be in"),
                      (float("nan"), "must be finite"), ("high", "must be a number")):
        with pytest.raises(ConfigError, match=text):
            OnlineOptions(reset_on_cut=bad)
    with pytest.raises(ConfigError, match="a window stream carries no state"):
        StreamOptions.build(reset_on_cut=0.4)


def test_cli_flag_default_threshold_and_value() -> None:
    minimal = ["--bundle", "b.ffn", "--video", "clip.mp4", "--online"]
    parser = build_parser()
    assert stream_options(parser.parse_args(minimal)).reset_on_cut is None  # off, as OnlineOptions()
    assert stream_options(parser.parse_args([*minimal, "--reset-on-cut"])) == OnlineOptions(reset_on_cut=True)
    assert stream_options(parser.parse_args([*minimal, "--reset-on-cut", "0.3"])) == OnlineOptions(reset_on_cut=0.3)
    assert "--reset-on-cut" in parser.format_help()
    with pytest.raises(ConfigError, match="--reset-on-cut: reset-on-cut threshold must be in"):
        stream_options(parser.parse_args([*minimal, "--reset-on-cut", "2"]))
    with pytest.raises(ConfigError, match="--reset-on-cut resets the shift buffers of --online streams"):
        stream_options(parser.parse_args(["--bundle", "b.ffn", "--video", "clip.mp4", "--reset-on-cut"]))


def test_ffn_run_reports_cuts(causal_bundle, video, capsys) -> None:
    assert run(["--bundle", str(causal_bundle), "--video", str(video), "--online", "--frames", "4", "--json",
                "--threads", "1", "--reset-on-cut"]) == 0
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert [r["seq"] for r in rows if r["online_cut"]] == [CLIP_STEPS, 2 * CLIP_STEPS]
    assert "2 scene-cut resets" in captured.err
    assert run(["--bundle", str(causal_bundle), "--video", str(video), "--online", "--frames", "4",
                "--threads", "1", "--reset-on-cut", "0.4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [i for i, line in enumerate(lines) if " CUT " in line] == [CLIP_STEPS, 2 * CLIP_STEPS]
