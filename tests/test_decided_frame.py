"""``keep_frame=True``: each result hands the app the frame it was decided on, as read (BGR, full size).

The source is an image sequence whose frames write their own index into their pixels (lossless PNG),
so a result's frame says which frame it is: the window's newest in window mode (also for each camera
of a multi-stream), the step's frame online. The store behind it stays bounded.
"""

from __future__ import annotations

import math
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
from ffn_edge.runtime import FFNRuntime
from ffn_edge.runtime.media.images import IMAGES_FPS
from ffn_edge.runtime.media.raw_frames import RawFrames

H, W = 40, 56  # not the bundle's input size: the frame handed over is the raw one, not the preprocessed one
COUNT = 45


def _index(frame: np.ndarray) -> int:
    """The index a frame of ``indexed`` carries (the same in every pixel)."""
    assert frame.shape == (H, W, 3) and frame.dtype == np.uint8
    b, g = frame[..., 0], frame[..., 1]
    assert (b == b.flat[0]).all() and (g == g.flat[0]).all()
    return int(g.flat[0]) * 256 + int(b.flat[0])


def _indexed(folder: Path, count: int = COUNT) -> Path:
    folder.mkdir()
    for i in range(count):
        image = np.zeros((H, W, 3), np.uint8)
        image[..., 0], image[..., 1], image[..., 2] = i % 256, i // 256, 7 * i % 256
        assert cv2.imwrite(str(folder / f"{i}.png"), image)
    return folder


@pytest.fixture(scope="module")
def frames_dir(tmp_path_factory) -> Path:
    return _indexed(tmp_path_factory.mktemp("indexed") / "seq")


@pytest.fixture(scope="module")
def rt(causal_bundle):
    with FFNRuntime.open(causal_bundle, threads=1) as runtime:
        yield runtime


def test_window_results_carry_the_windows_newest_frame(rt, frames_dir) -> None:
    with rt.stream(str(frames_dir), frames=2, window_s=0.5, stride_ms=200, keep_frame=True) as s:
        results = list(s)
    assert len(results) >= 4
    for r in results:
        newest = math.floor(r.window[1] * IMAGES_FPS + 1e-6)  # the last frame stamped <= the window's end
        assert _index(r.frame) == newest == round(r.stamp * IMAGES_FPS), (r.decision, r.window)
        assert r.t == pytest.approx(newest / IMAGES_FPS)
        assert round(r.prediction.timestamps[-1] * IMAGES_FPS) <= newest


def test_online_results_carry_the_steps_frame(rt, frames_dir) -> None:
    with rt.online_stream(str(frames_dir), frames=4, window_s=0.4, max_decisions=10, keep_frame=True) as s:
        results = list(s)
    assert len(results) == 10
    indices = [_index(r.frame) for r in results]
    assert indices == [round(r.stamp * IMAGES_FPS) for r in results]
    assert indices == sorted(set(indices)) and indices[1] == 3  # one step every 0.1 s: frames 0, 3, 6, ...


def test_each_camera_of_a_multi_stream_gets_its_own_frame(rt, frames_dir, tmp_path) -> None:
    other = _indexed(tmp_path / "other", 30)
    with rt.streams([str(frames_dir), str(other)], frames=2, window_s=0.5, stride_ms=250, max_decisions=2,
                    keep_frame=True) as ms:
        results = [m for m in ms if m.result is not None]
    assert {m.source for m in results} == {str(frames_dir), str(other)} and len(results) == 4
    for m in results:
        assert _index(m.result.frame) == math.floor(m.result.window[1] * IMAGES_FPS + 1e-6)


def test_without_keep_frame_no_frame_is_kept(rt, frames_dir) -> None:
    with rt.stream(str(frames_dir), frames=2, window_s=0.5, max_decisions=2) as s:
        assert all(r.frame is None for r in s)
    assert rt.stream(str(frames_dir)).options.keep_frame is False


def test_the_raw_store_is_bounded_and_drops_what_was_passed() -> None:
    store = RawFrames(capacity=8)
    frames = [np.full((2, 2, 3), i, np.uint8) for i in range(100)]
    for i, f in enumerate(frames):
        store.add(i / 30, f)
    assert len(store) == 8  # the ring's bound, however long the source runs
    assert store.take(95 / 30) is frames[95] and len(store) == 4  # older frames dropped, newer ones kept
    assert store.take(95 / 30) is frames[95]  # decided on again: the same frame
    assert store.take(10 / 30) is None  # long gone


class IndexedCamera:
    """A live camera stand-in (~100 fps) whose frames carry their index; it is unplugged after 15 frames
    and comes back at the next open: a reconnect."""

    def __init__(self) -> None:
        self.opens, self.index = 0, 0

    def __call__(self, spec):  # the FrameSource opener
        self.opens += 1
        return _Capture(self, 15 if self.opens == 1 else 10**9)


class _Capture:
    def __init__(self, camera: IndexedCamera, frames: int) -> None:
        self.camera, self.left = camera, frames

    def isOpened(self) -> bool:  # noqa: N802 - cv2's name
        return True

    def read(self):
        time.sleep(0.01)
        if self.left <= 0:
            return False, None
        self.left -= 1
        i = self.camera.index
        self.camera.index += 1
        image = np.zeros((H, W, 3), np.uint8)
        image[..., 0], image[..., 1] = i % 256, i // 256
        return True, image

    def get(self, prop_id: int) -> float:
        return 0.0

    def release(self) -> None:
        pass


def test_a_live_source_counts_t_from_its_start_and_its_reconnects_reach_the_metrics(rt) -> None:
    pytest.importorskip("prometheus_client")
    from ffn_edge.runtime.app.metrics import Metrics
    from ffn_edge.runtime.app.records import record
    from ffn_edge.runtime.media.sources import FrameSource

    source = FrameSource("cam0", opener=IndexedCamera())
    with rt.stream(source, frames=2, window_s=0.1, stride_ms=50, max_decisions=10, backoff_s=0.05, duration_s=20,
                   keep_frame=True) as s:
        results = list(s)
    assert len(results) == 10
    for r in results:
        assert r.origin > 0 and r.t == pytest.approx(r.stamp - r.origin)  # since its capture began, not boot
        assert 0 <= r.t < 20
    indices = [_index(r.frame) for r in results]
    assert indices == sorted(indices) and len(set(indices)) >= 5
    metrics = Metrics()
    records = [record(r, "cam0") for r in results]
    for rec in records:
        metrics.add(rec)
    reopened = sum(e.startswith("reopened:") for rec in records for e in rec["events"])
    assert reopened == 1
    try:
        port = metrics.serve("127.0.0.1", 0)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as page:  # noqa: S310
            text = page.read().decode()
    finally:
        metrics.close()
    assert 'ffn_source_reconnects_total{source="cam0"} 1.0' in text
    assert f'ffn_decisions_total{{mode="window",source="cam0"}} {len(records)}.0' in text
