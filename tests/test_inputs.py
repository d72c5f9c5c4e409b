"""runtime.media.inputs: the predict input contract, stream/CLI option checks, frame limits in
preprocessing (checked before any pixel is resized), output and video path checks."""

from __future__ import annotations

import math
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from builders import write_video
from ffn_edge.runtime.media.inputs import (
    check_clip,
    check_finite,
    check_output_file,
    check_predict_args,
    check_stream_options,
    check_video_file,
    require_decisions,
)

from ffn_edge.bundle.manifest import InputSpec
from ffn_edge.bundle.preprocess import Preprocessor
from ffn_edge.core import validate as V
from ffn_edge.core.errors import ConfigError, FFNError, InputError, SourceError

SIZE = (32, 32)
U8 = np.zeros((24, 40, 3), np.uint8)
F32 = np.zeros((3, *SIZE), np.float32)

# (case, frames, expected text) -> InputError
BAD_CLIPS = [
    ("None", None, "frames must be a list"),
    ("a string", "clip.mp4", "frames must be a list"),
    ("a dict", {"a": U8}, "frames must be a list"),
    ("empty list", [], "at least one frame"),
    ("empty array", np.zeros((0, 24, 40, 3), np.uint8), "at least one frame"),
    ("list of lists", [[1, 2, 3]], "frames[0] is list"),
    ("None inside", [U8, None], "frames[1] is NoneType"),
    ("mixed uint8 then float32", [U8, F32], "frames[1] has dtype float32"),
    ("mixed float32 then uint8", [F32, U8], "frames[1] is uint8 but frames[0] is float32"),
    ("float64 frames", [U8.astype(np.float64)], "dtype float64"),
    ("uint16 frames", [U8.astype(np.uint16)], "dtype uint16"),
    ("bool frames", [U8.astype(bool)], "dtype bool"),
    ("object array", np.array([None, None], dtype=object).reshape(2, 1, 1), "dtype object"),
    ("1-D frame", [np.zeros(10, np.uint8)], "is not an image"),
    ("5 channels", [np.zeros((8, 8, 5), np.uint8)], "is not an image"),
    ("4-D frame in a list", [np.zeros((2, 8, 8, 3), np.uint8)], "is not an image"),
    ("empty frame", [np.zeros((0, 8, 3), np.uint8)], "frame is empty"),
    ("thin frame 1x10000", [np.zeros((1, 10_000, 3), np.uint8)], "aspect ratio"),
    ("wide frame 1x50000", [np.zeros((1, 50_000, 3), np.uint8)], "larger than the limit"),
    ("tall frame 100000x1", [np.zeros((100_000, 1), np.uint8)], "larger than the limit"),
    ("float32 wrong size", [np.zeros((3, 16, 16), np.float32)], "must be (3, 32, 32)"),
    ("float32 HWC", [np.zeros((32, 32, 3), np.float32)], "must be (3, 32, 32)"),
    ("float32 array wrong size", np.zeros((4, 3, 16, 16), np.float32), "must be (T, 3, 32, 32)"),
    ("2-D array", np.zeros((24, 40), np.uint8), "a frame array must be"),
    ("5-D uint8 array", np.zeros((2, 2, 8, 8, 3), np.uint8), "a frame array must be"),
    ("too many frames", [U8] * (V.MAX_CLIP_FRAMES + 1), "at most"),
]


@pytest.mark.parametrize("case,frames,text", BAD_CLIPS, ids=[c[0] for c in BAD_CLIPS])
def test_bad_clip_is_one_input_error(case, frames, text):
    with pytest.raises(InputError) as e:
        check_clip(frames, SIZE)
    assert "\n" not in str(e.value) and text in str(e.value), str(e.value)
    assert isinstance(e.value, ValueError) and isinstance(e.value, FFNError)  # documented: both


GOOD_CLIPS = [
    ("BGR list", [U8] * 5, "raw"),
    ("gray, BGRA and (h,w,1) of different sizes", [np.zeros((20, 30), np.uint8), np.zeros((24, 40, 4), np.uint8),
                                                   np.zeros((30, 20, 1), np.uint8)], "raw"),
    ("uint8 array", np.zeros((6, 24, 40, 3), np.uint8), "raw"),
    ("float32 list", [F32] * 3, "preprocessed"),
    ("float32 array", np.zeros((3, 3, *SIZE), np.float32), "preprocessed"),
    ("tuple", (U8, U8), "raw"),
]


@pytest.mark.parametrize("case,frames,kind", GOOD_CLIPS, ids=[c[0] for c in GOOD_CLIPS])
def test_good_clips_pass(case, frames, kind):
    assert check_clip(frames, SIZE) == kind


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_model_input_is_refused(value):
    clip = np.zeros((1, 2, 3, *SIZE), np.float32)
    check_finite(clip)
    clip[0, 1, 2, 3, 4] = value
    with pytest.raises(InputError, match="NaN or infinite"):
        check_finite(clip)


BAD_ARGS = [
    ("n 0", dict(n=0), "n must be in"),
    ("n -3", dict(n=-3), "n must be in"),
    ("n 1e9", dict(n=10**9), "n must be in"),
    ("n 4.0", dict(n=4.0), "n must be an integer"),
    ("n True", dict(n=True), "n must be an integer"),
    ("n '4'", dict(n="4"), "n must be an integer"),
    ("topk 0", dict(topk=0), "topk must be in"),
    ("topk None", dict(topk=None), "topk must be an integer"),
    ("timestamps short", dict(timestamps=[0.0, 1.0]), "timestamps must be 4 numbers"),
    ("timestamps NaN", dict(timestamps=[0.0, 1.0, math.nan, 3.0]), "timestamps must be finite"),
    ("timestamps text", dict(timestamps=["a", "b", "c", "d"]), "timestamps must be numbers"),
]


@pytest.mark.parametrize("case,kw,text", BAD_ARGS, ids=[c[0] for c in BAD_ARGS])
def test_bad_predict_args_are_one_input_error(case, kw, text):
    with pytest.raises(InputError) as e:
        check_predict_args(4, **kw)
    assert text in str(e.value), str(e.value)


BAD_OPTIONS = [
    ("window nan", dict(window_s=math.nan), "window (s) must be finite"),
    ("window inf", dict(window_s=math.inf), "window (s) must be finite"),
    ("window 0", dict(window_s=0), "window (s) must be in [0.1"),
    ("window 1e-9", dict(window_s=1e-9), "window (s) must be in [0.1"),
    ("stride 1e-9", dict(stride_ms=1e-9), "stride (ms) must be in [10"),
    ("window 1e9", dict(window_s=1e9), "window (s) must be in"),
    ("stride nan", dict(stride_ms=math.nan), "stride (ms) must be finite"),
    ("stride inf", dict(stride_ms=math.inf), "stride (ms) must be finite"),
    ("stride -5", dict(stride_ms=-5), "stride (ms) must be in"),
    ("duration -1", dict(duration_s=-1), "duration (s) must be in"),
    ("duration 0", dict(duration_s=0), "duration (s) must be in"),
    ("duration nan", dict(duration_s=math.nan), "duration (s) must be finite"),
    ("threads 0", dict(threads=0), "threads must be in"),
    ("threads 2000", dict(threads=2000), "threads must be in"),
    ("threads 100000", dict(threads=100_000), "threads must be in"),
    ("threads 2.5", dict(threads=2.5), "threads must be an integer"),
    ("frames 0", dict(frames=0), "frames must be in"),
    ("frames 1e6", dict(frames=10**6), "frames must be in"),
    ("budget nan", dict(budget_ms=math.nan), "budget (ms) must be finite"),
    ("budget -1", dict(budget_ms=-1), "budget (ms) must be in"),
    ("power 0", dict(power_w=0), "power (W) must be in"),
    ("max decisions 0", dict(max_decisions=0), "max decisions must be in"),
    ("topk 0", dict(topk=0), "topk must be in"),
    ("wait timeout inf", dict(wait_timeout_s=math.inf), "wait timeout (s) must be finite"),
    ("backoff 0", dict(backoff_s=0), "backoff (s) must be in"),
    ("capacity 0", dict(capacity=0), "capacity must be in"),
    ("window str", dict(window_s="1"), "window (s) must be a number"),
]


@pytest.mark.parametrize("case,kw,text", BAD_OPTIONS, ids=[c[0] for c in BAD_OPTIONS])
def test_bad_stream_option_is_one_config_error(case, kw, text):
    with pytest.raises(ConfigError) as e:
        check_stream_options(**kw)
    assert "\n" not in str(e.value) and text in str(e.value), str(e.value)


def test_default_stream_options_pass():
    check_stream_options()
    check_stream_options(window_s=2.0, stride_ms=250, duration_s=10, threads=4, frames=8, budget_ms=30, power_w=5,
                         max_decisions=3, topk=3, capacity=64)


def test_thin_frame_is_refused_before_the_resize_allocates():
    """1 x 50000 pixels used to be resized to 64 x 3.2M (911 MB peak); now refused with almost no allocation."""
    pre = Preprocessor(InputSpec("clip", "NTCHW", (56, 56), 64, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)))
    thin = np.zeros((1, 50_000, 3), np.uint8)
    tracemalloc.start()
    try:
        with pytest.raises(SourceError, match="larger than the limit"):
            pre(thin)
        with pytest.raises(SourceError, match="aspect ratio"):
            pre(thin[:, :10_000])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, peak
    assert pre(np.zeros((40, 640, 3), np.uint8)).shape == (3, 56, 56)  # 16:1 is still served


def test_frame_limits_boundaries():
    V.check_frame_shape(1, 16)
    V.check_frame_shape(8192, 8192)
    for h, w in [(1, 17), (0, 5), (V.MAX_FRAME_SIDE + 1, V.MAX_FRAME_SIDE), (9000, 9000)]:
        with pytest.raises(ValueError):
            V.check_frame_shape(h, w)


def test_output_file_checks(tmp_path):
    check_output_file(tmp_path / "out.jsonl")
    for path, text in [(tmp_path, "is a directory"), (tmp_path / "no" / "out.jsonl", "does not exist")]:
        with pytest.raises(ConfigError, match=text):
            check_output_file(path)


def test_video_file_checks(tmp_path: Path):
    (tmp_path / "notes.txt").write_text("this is not a video\n" * 50)
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "clip.mp4").write_bytes(b"\x00\x00\x00\x20ftypisom" + bytes(range(256)) * 4)
    check_video_file(tmp_path / "clip.mp4")
    for name, text in [("notes.txt", "is a text file"), ("empty.mp4", "empty file"), ("nope.mp4", "not found"),
                       (".", "is a directory")]:
        with pytest.raises(SourceError, match=text):
            check_video_file(tmp_path / name)


def test_no_decision_is_an_error():
    require_decisions(1, "clip.mp4")
    with pytest.raises(SourceError, match="clip.mp4: no decodable frame"):
        require_decisions(0, "clip.mp4")


def test_third_party_log_lines_are_silenced_unless_verbose(tmp_path):
    """A damaged mp4 makes FFmpeg print its own lines; quiet_third_party_logs() removes them (not with -v)."""
    import subprocess
    import sys

    rng = np.random.default_rng(0)
    write_video(tmp_path / "v.mp4", (rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(30)), fps=10)
    data = bytearray((tmp_path / "v.mp4").read_bytes())
    for i in range(len(data) // 3, 2 * len(data) // 3, 7):
        data[i] ^= 0x55
    (tmp_path / "bad.mp4").write_bytes(bytes(data))
    code = ("import sys, cv2\nfrom ffn_edge.runtime.app.quiet import quiet_third_party_logs\n"
            "quiet_third_party_logs(verbose=sys.argv[2] == 'v')\n"
            "c = cv2.VideoCapture(sys.argv[1])\nwhile c.read()[0]:\n    pass\n")
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("OPENCV_")}
    lines = {mode: subprocess.run([sys.executable, "-c", code, str(tmp_path / "bad.mp4"), mode], env=env,
                                  capture_output=True, text=True, timeout=60).stderr.count("\n")
             for mode in ("q", "v")}
    assert lines["v"] >= 1 and lines["q"] == 0, lines
