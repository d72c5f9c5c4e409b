"""Frame sources and preprocessing: generated videos, scripted fake cameras, no real device needed."""

from __future__ import annotations

import time
from collections.abc import Callable

import cv2
import numpy as np
import pytest
from builders import write_video
from ffn_edge.runtime.media import sources
from ffn_edge.runtime.media.capture import CaptureThread, SourceEvent
from ffn_edge.runtime.media.ring import FrameBuffer
from ffn_edge.runtime.media.sources import FrameSource, parse_source

from ffn_edge.bundle.manifest import InputSpec
from ffn_edge.bundle.preprocess import Preprocessor
from ffn_edge.core.errors import SourceError

NUM_FRAMES, FPS, WIDTH, HEIGHT = 20, 10.0, 64, 48
# mean 0 / std 1: an output value times 255 is the pixel brightness, so frame indices can be decoded.
PLAIN = InputSpec("frames", "NTCHW", (32, 32), 40, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
IMAGENET = InputSpec("frames", "NTCHW", (32, 32), 40, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def uniform(index: int) -> np.ndarray:
    """A BGR frame whose brightness encodes its index."""
    return np.full((HEIGHT, WIDTH, 3), index * 8, dtype=np.uint8)


def decode(frames: np.ndarray) -> list[int]:
    """Frame indices back from preprocessed PLAIN frames (T, 3, H, W)."""
    return [int(round(float(f.mean()) * 255 / 8)) for f in frames]


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


@pytest.fixture
def video(tmp_path) -> str:
    return str(write_video(tmp_path / "clip.mp4", (uniform(i) for i in range(NUM_FRAMES)), FPS))


class FakeCapture:
    """A capture that yields its frames, then fails every read (a camera unplugged mid-stream)."""

    def __init__(self, frames: list[np.ndarray] | None) -> None:
        self.frames = list(frames or [])
        self.opened = frames is not None

    def isOpened(self) -> bool:
        return self.opened

    def read(self) -> tuple[bool, np.ndarray | None]:
        return (True, self.frames.pop(0)) if self.frames else (False, None)

    def get(self, prop_id: int) -> float:
        return 0.0

    def release(self) -> None:
        self.opened = False


class FakeCamera:
    """Opener: each open starts the next scripted session; when none are left, opening fails."""

    def __init__(self, sessions: list[list[np.ndarray]]) -> None:
        self.sessions = list(sessions)
        self.opens = 0

    def __call__(self, spec: sources.SourceSpec) -> FakeCapture:
        self.opens += 1
        return FakeCapture(self.sessions.pop(0) if self.sessions else None)


class FakeTime:
    """A clock that only moves when slept on; records every sleep."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        self.now += 1e-3  # strictly increasing, like a real clock
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        time.sleep(0.001)  # let the test thread run


# -- parse_source ----------------------------------------------------------------------------------
def test_parse_source_kinds(video, tmp_path, monkeypatch):
    assert parse_source("cam0") == sources.SourceSpec("camera", 0, "cam0")
    assert parse_source("cam12").target == 12
    for url in ("rtsp://host:8554/live", "http://host/x.mjpg", "HTTPS://host/stream.m3u8"):
        spec = parse_source(url)
        assert (spec.kind, spec.target, spec.live) == ("url", url, True)
    spec = parse_source(video)
    assert (spec.kind, spec.live) == ("file", False)
    pipeline = "nvarguscamerasrc ! video/x-raw(memory:NVMM) ! nvvidconv ! appsink"
    monkeypatch.setattr(sources, "opencv_has_gstreamer", lambda: True)
    assert parse_source(pipeline).kind == "gstreamer"
    monkeypatch.setattr(sources, "opencv_has_gstreamer", lambda: False)
    with pytest.raises(SourceError, match="without GStreamer"):
        parse_source(pipeline)
    with pytest.raises(SourceError, match="nope.mp4: no such file"):
        parse_source(str(tmp_path / "nope.mp4"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="a folder without images"):  # a folder is an image sequence
        parse_source(str(tmp_path / "empty"))
    with pytest.raises(SourceError, match="empty"):
        parse_source("  ")


def test_this_opencv_build_gstreamer_answer_is_clear():
    """pip's opencv-python has no GStreamer: a pipeline must fail with that reason, not a hang."""
    if sources.opencv_has_gstreamer():
        assert parse_source("videotestsrc ! appsink").kind == "gstreamer"
    else:
        with pytest.raises(SourceError, match="GStreamer"):
            parse_source("videotestsrc ! appsink")


# -- preprocessing -----------------------------------------------------------------------------------
def reference(frame: np.ndarray, spec: InputSpec) -> np.ndarray:
    """The documented steps, spelled out in float64."""
    h, w = frame.shape[:2]
    s = spec.resize_shorter
    new_h, new_w = (s, int(s * w / h)) if h <= w else (int(s * h / w), s)
    resized = cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    ch, cw = spec.size
    top, left = int(round((new_h - ch) / 2)), int(round((new_w - cw) / 2))
    rgb = resized[top : top + ch, left : left + cw, ::-1].astype(np.float64) / 255.0
    return ((rgb - np.array(spec.mean)) / np.array(spec.std)).transpose(2, 0, 1)


@pytest.mark.parametrize("shape", [(48, 64, 3), (64, 48, 3), (480, 640, 3), (40, 40, 3)])
def test_preprocess_matches_reference(shape):
    frame = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    out = Preprocessor(IMAGENET)(frame)
    assert out.shape == (3, 32, 32) and out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_allclose(out, reference(frame, IMAGENET), atol=1e-5)


def test_preprocess_centre_crop_and_channel_order():
    rows, cols = np.mgrid[0:48, 0:64]
    frame = np.stack([cols, rows, np.full_like(cols, 200)], axis=-1).astype(np.uint8)  # B=col, G=row, R=200
    spec = InputSpec("frames", "NTCHW", (32, 32), 48, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))  # no resize
    out = Preprocessor(spec)(frame) * 255
    np.testing.assert_allclose(out[0], 200, atol=1e-3)  # R first
    np.testing.assert_allclose(out[1], rows[8:40, 16:48], atol=1e-3)  # top = (48-32)/2, left = (64-32)/2
    np.testing.assert_allclose(out[2], cols[8:40, 16:48], atol=1e-3)
    imagenet = Preprocessor(IMAGENET)(np.full((48, 64, 3), (10, 100, 200), np.uint8))
    for c, value in enumerate((200, 100, 10)):
        np.testing.assert_allclose(imagenet[c], (value / 255 - IMAGENET.mean[c]) / IMAGENET.std[c], rtol=1e-5)


def test_gray_and_bgra_are_converted():
    pre = Preprocessor(IMAGENET)
    gray = np.random.default_rng(1).integers(0, 256, (48, 64), dtype=np.uint8)
    as_bgr = pre(np.repeat(gray[:, :, None], 3, axis=2))
    np.testing.assert_array_equal(pre(gray), as_bgr)
    np.testing.assert_array_equal(pre(gray[:, :, None]), as_bgr)
    bgr = np.random.default_rng(2).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    bgra = np.concatenate([bgr, np.full((48, 64, 1), 7, np.uint8)], axis=2)
    np.testing.assert_array_equal(pre(bgra), pre(bgr))


@pytest.mark.parametrize(
    "frame",
    [
        np.zeros((48, 64, 3), np.float32),
        np.zeros((48, 64, 2), np.uint8),
        np.zeros((48, 64, 3, 1), np.uint8),
        np.zeros(64, np.uint8),
        np.zeros((0, 64, 3), np.uint8),
        None,
    ],
)
def test_impossible_frames_are_rejected(frame):
    with pytest.raises(SourceError, match="frame"):
        Preprocessor(IMAGENET)(frame)


def test_spec_whose_crop_does_not_fit_is_refused():
    with pytest.raises(ValueError, match="resize_shorter"):
        Preprocessor(InputSpec("frames", "NTCHW", (32, 32), 24, (0, 0, 0), (1, 1, 1)))


# -- files ---------------------------------------------------------------------------------------------
class CountingPreprocessor(Preprocessor):
    calls = 0

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        self.calls += 1
        return super().__call__(frame)


def test_file_reads_every_frame_in_order_and_ends_cleanly(video):
    pre = CountingPreprocessor(PLAIN)
    events: list[SourceEvent] = []
    with CaptureThread(video, pre, capacity=64, on_event=events.append) as cap:
        assert not cap.realtime
        assert not cap.wait_for(1e9, timeout=5.0)  # False: the file ended before that time
        assert cap.finished and cap.error is None and not cap.running
        frames, stamps = cap.window(1e9)
        overlapping = [cap.window(0.5, end_t=t) for t in (1.0, 1.2, 1.4)]
    assert frames.shape == (NUM_FRAMES, 3, 32, 32) and frames.dtype == np.float32
    assert decode(frames) == list(range(NUM_FRAMES))
    np.testing.assert_allclose(stamps, np.arange(NUM_FRAMES) / FPS)
    assert np.all(np.diff(stamps) > 0)
    assert cap.latest_time() == pytest.approx((NUM_FRAMES - 1) / FPS)
    assert [len(w[1]) for w in overlapping] == [5, 5, 5]
    assert pre.calls == NUM_FRAMES  # each frame preprocessed once, however many windows hold it
    assert cap.frames_captured == NUM_FRAMES and cap.frames_dropped == 0 and cap.frames_rejected == 0
    assert [e.kind for e in events] == ["opened", "finished"] and "20 frames" in events[-1].message


def test_offline_file_applies_back_pressure_and_loses_nothing(video):
    seen: set[int] = set()
    with CaptureThread(video, Preprocessor(PLAIN), capacity=4, realtime=False) as cap:
        for k in range(NUM_FRAMES):
            t = k / FPS
            assert cap.wait_for(t, timeout=5.0)
            frames, stamps = cap.window(0.25, end_t=t)
            assert stamps[-1] == pytest.approx(t) and len(stamps) <= 3
            seen.update(decode(frames))
        assert not cap.wait_for(NUM_FRAMES / FPS, timeout=5.0)
        assert cap.finished
    assert seen == set(range(NUM_FRAMES)) and cap.frames_dropped == 0


def test_offline_ring_too_small_for_the_request_says_so(video):
    with CaptureThread(video, Preprocessor(PLAIN), capacity=4, realtime=False) as cap:
        started = time.monotonic()
        with pytest.raises(SourceError, match="capacity"):
            cap.wait_for(1.5, timeout=5.0)
        assert time.monotonic() - started < 2.0


def test_realtime_file_is_paced_and_drops_oldest(video):
    fake = FakeTime()
    source = FrameSource(video, clock=fake.clock)
    with CaptureThread(source, Preprocessor(PLAIN), capacity=4, realtime=True, sleep=fake.sleep) as cap:
        assert not cap.wait_for(1e9, timeout=5.0)
        frames, stamps = cap.window(1e9)
    assert decode(frames) == [16, 17, 18, 19] and cap.frames_dropped == NUM_FRAMES - 4
    assert fake.now == pytest.approx((NUM_FRAMES - 1) / FPS, abs=0.05)  # played at its own speed


def test_missing_and_unreadable_files_give_source_error(tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        CaptureThread(str(tmp_path / "missing.mp4"), Preprocessor(PLAIN))
    junk = tmp_path / "junk.mp4"
    junk.write_text("not a video")
    with pytest.raises(SourceError, match="junk.mp4: cannot open"), CaptureThread(str(junk), Preprocessor(PLAIN)):
        pass


# -- live sources ----------------------------------------------------------------------------------------
def test_lost_camera_is_reopened_with_backoff_and_reported():
    k = 5
    sessions = [[uniform(s * k + j) for j in range(k)] for s in range(3)]
    camera, fake = FakeCamera(sessions), FakeTime()
    events: list[SourceEvent] = []
    source = FrameSource("cam0", opener=camera, clock=fake.clock)
    cap = CaptureThread(
        source, Preprocessor(PLAIN), on_event=events.append, backoff_s=0.5, max_backoff_s=4.0, sleep=fake.sleep
    )
    with cap:
        assert cap.realtime
        wait_until(lambda: sum(e.kind == "retry" for e in events) >= 5)  # gone for good after 3 sessions
        frames, stamps = cap.window(1e9)
        assert cap.running  # a lost camera does not end the capture
    assert decode(frames) == list(range(3 * k))  # frames continue after each reopen
    assert np.all(np.diff(stamps) > 0)
    assert cap.reopens == 2 and cap.error is None and not cap.finished
    kinds = [e.kind for e in events]
    assert kinds[:6] == ["opened", "lost", "reopened", "lost", "reopened", "lost"]
    assert set(kinds[6:]) <= {"retry", "stuck"}
    assert "cam0" in events[1].message and "cam0: cannot open camera 0" in events[6].message
    assert fake.sleeps[:7] == [0.5, 0.5, 0.5, 1.0, 2.0, 4.0, 4.0]  # reset per loss, doubling, capped
    assert cap.events == events


def test_bad_frames_from_a_live_source_are_counted_not_fatal():
    frames = [uniform(1), np.zeros((48, 64, 2), np.uint8), uniform(2), np.zeros((48, 64), np.float64), uniform(3)]
    fake = FakeTime()
    source = FrameSource("cam1", opener=FakeCamera([frames]), clock=fake.clock)
    with CaptureThread(source, Preprocessor(PLAIN), sleep=fake.sleep) as cap:
        wait_until(lambda: cap.frames_captured == 3 and cap.frames_rejected == 2)
        assert decode(cap.window(1e9)[0]) == [1, 2, 3]
    rejected = [e for e in cap.events if e.kind == "rejected"]
    assert len(rejected) == 1 and "cam1: frame skipped" in rejected[0].message


def test_camera_that_never_opens_fails_fast_at_start():
    started = time.monotonic()
    cap = CaptureThread(FrameSource("cam3", opener=FakeCamera([])), Preprocessor(PLAIN))
    with pytest.raises(SourceError, match="cam3: cannot open camera 3"):
        cap.start()
    cap.close()
    with pytest.raises(SourceError, match="cam99: cannot open camera 99"), CaptureThread("cam99", Preprocessor(PLAIN)):
        pass  # the real OpenCV opener, on a device index that does not exist
    assert time.monotonic() - started < 5.0


def test_realtime_false_is_refused_for_live_sources():
    with pytest.raises(ValueError, match="files only"):
        CaptureThread(FrameSource("cam0", opener=FakeCamera([])), Preprocessor(PLAIN), realtime=False)


# -- the ring and shutdown -------------------------------------------------------------------------------
def test_window_selects_the_right_frames():
    ring = FrameBuffer(capacity=8, frame_shape=(3, 2, 2))
    for t in range(10):
        assert ring.put(np.full((3, 2, 2), t, np.float32), float(t), timeout=1.0)
    assert ring.dropped == 2 and ring.latest_time() == 9.0
    frames, stamps = ring.window(3, end_t=5)
    assert stamps.tolist() == [3.0, 4.0, 5.0] and frames[:, 0, 0, 0].tolist() == [3.0, 4.0, 5.0]
    assert ring.window(3)[1].tolist() == [7.0, 8.0, 9.0]
    assert ring.window(100)[1].tolist() == [float(t) for t in range(2, 10)]
    empty, no_stamps = ring.window(1, end_t=-5)
    assert empty.shape == (0, 3, 2, 2) and no_stamps.shape == (0,)
    assert ring.wait_for(9.0, timeout=0.01) and not ring.wait_for(10.0, timeout=0.01)


def test_close_never_hangs(video):
    # close before start, twice
    idle = CaptureThread(video, Preprocessor(PLAIN))
    idle.close()
    idle.close()
    # a producer blocked on a full offline ring
    blocked = CaptureThread(video, Preprocessor(PLAIN), capacity=2, realtime=False).start()
    wait_until(lambda: blocked.frames_captured == 2)
    # a live source waiting in a long back-off (the default sleep wakes on close)
    backing_off = CaptureThread(
        FrameSource("cam0", opener=FakeCamera([[uniform(0)]])), Preprocessor(PLAIN), backoff_s=30, max_backoff_s=30
    )
    backing_off.start()
    wait_until(lambda: any(e.kind == "lost" for e in backing_off.events))
    for cap in (blocked, backing_off):
        started = time.monotonic()
        cap.close(timeout=2.0)
        cap.close()
        assert time.monotonic() - started < 1.0
        assert not cap.running and not any(e.kind == "stuck" for e in cap.events)


def test_select_hands_out_the_rings_own_frames_without_stacking_the_window():
    ring = FrameBuffer(capacity=8, frame_shape=(3, 2, 2))
    frames = [np.full((3, 2, 2), t, np.float32) for t in range(6)]
    for t, f in enumerate(frames):
        ring.put(f, float(t), timeout=1.0)
    picked, stamps = ring.select(3, end_t=4)
    assert stamps.tolist() == [2.0, 3.0, 4.0]
    assert all(p is frames[t] for p, t in zip(picked, (2, 3, 4), strict=True))  # no copy: a decision gathers n
    assert not picked[0].flags.writeable  # shared with every other window that holds it
    stacked, same = ring.window(3, end_t=4)
    assert same.tolist() == stamps.tolist() and stacked.shape == (3, 3, 2, 2)
