"""Numbers the runtime is given stay bounded: huge finite preprocessed values are refused (not a NaN
score), a capture reporting an infinite frame rate or position is handled in one line (no IndexError),
and a bundle asking for a large resize of a very wide frame does not build the whole resized frame."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from ffn_edge.export import export_bundle
from ffn_edge.runtime import FFNRuntime

from ffn_edge.bundle import preprocess
from ffn_edge.bundle.manifest import InputSpec
from ffn_edge.bundle.preprocess import Preprocessor
from ffn_edge.checkpoint import CheckpointMeta, save_checkpoint
from ffn_edge.core import validate as V
from ffn_edge.core.errors import InputError, SourceError
from ffn_edge.models import ModelConfig, create_model


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    torch.manual_seed(0)
    cfg = ModelConfig("tsm_resnet18", 3, frame_counts=(2, 4), width_mult=0.0625)
    d = tmp_path_factory.mktemp("num")
    save_checkpoint(d / "m.safetensors", create_model(cfg).eval(),
                    CheckpointMeta(cfg, ["a", "b", "c"], input_size=32, resize_shorter=36))
    with FFNRuntime.open(export_bundle(d / "m.safetensors", (2, 4), d / "b.ffn", verify=False), threads=1,
                         warmup=False) as r:
        yield r


@pytest.mark.parametrize("value", [1e30, 3e38, -1e20, 1e6])
def test_huge_finite_preprocessed_values_are_refused_not_scored_nan(rt, value):
    clip = np.full((4, 3, 32, 32), value, np.float32)
    with pytest.raises(InputError, match="preprocessed frames hold values up to"):
        rt.predict(clip)
    ok = rt.predict(np.zeros((4, 3, 32, 32), np.float32))
    assert math.isfinite(ok.score)


class OddCapture:
    """A custom capture (what ``opener=`` may return) whose metadata is not finite."""

    def __init__(self, fps: float, pos_ms: float) -> None:
        self.fps, self.pos_ms, self.left, self.open = fps, pos_ms, 30, True

    def isOpened(self) -> bool:
        return self.open

    def read(self):
        if self.left == 0:
            return False, None
        self.left -= 1
        return True, np.full((40, 48, 3), 100, np.uint8)

    def get(self, prop: int) -> float:
        import cv2

        return {cv2.CAP_PROP_FPS: self.fps, cv2.CAP_PROP_POS_MSEC: self.pos_ms}.get(prop, 0.0)

    def release(self) -> None:
        self.open = False


@pytest.mark.parametrize("fps,pos", [(math.inf, math.inf), (math.nan, math.nan), (1e-300, math.inf),
                                     (math.inf, -1.0), (0.0, 1e300)])
def test_a_capture_with_non_finite_rate_or_position_is_one_line(rt, tmp_path, fps, pos):
    video = tmp_path / "v.mp4"
    video.write_bytes(b"\0" * 64)
    opener = lambda spec: OddCapture(fps, pos)  # noqa: E731
    with pytest.raises(SourceError, match="no usable position"), \
            rt.stream(str(video), frames=2, window_s=0.5, stride_ms=100, opener=opener) as s:
        list(s)


def test_a_capture_with_infinite_fps_but_good_positions_still_streams(rt, tmp_path):
    video = tmp_path / "v.mp4"
    video.write_bytes(b"\0" * 64)

    class Timed(OddCapture):
        def get(self, prop):
            import cv2

            return {cv2.CAP_PROP_FPS: math.inf, cv2.CAP_PROP_POS_MSEC: (30 - self.left) * 40.0}.get(prop, 0.0)

    with rt.stream(str(video), frames=2, window_s=0.4, stride_ms=200, opener=lambda s: Timed(0, 0)) as s:
        assert len(list(s)) >= 2


def test_a_large_resize_of_a_very_wide_frame_stays_small_in_memory():
    code = textwrap.dedent("""
        import resource, numpy as np
        from ffn_edge.bundle.manifest import InputSpec
        from ffn_edge.bundle.preprocess import Preprocessor
        spec = InputSpec("clip", "NTCHW", (1024, 1024), 4096, (0.5,) * 3, (0.25,) * 3)
        frame = np.full((256, 4096, 3), 7, np.uint8)  # aspect 16: resized whole it would be 4096 x 65536 x 3
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out = Preprocessor(spec)(frame)
        assert out.shape == (3, 1024, 1024)
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
    """)
    grew_mb = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert grew_mb < 200, f"preprocessing one frame grew the process by {grew_mb} MB"


def test_the_crop_only_path_matches_the_full_resize(monkeypatch):
    spec = InputSpec("clip", "NTCHW", (64, 64), 80, (0.5,) * 3, (0.25,) * 3)
    frame = np.random.default_rng(0).integers(0, 255, (60, 300, 3), dtype=np.uint8)
    full = Preprocessor(spec)(frame)
    monkeypatch.setattr(V, "MAX_RESIZED_PIXELS", 100)
    assert preprocess.V.MAX_RESIZED_PIXELS == 100
    cropped = Preprocessor(spec)(frame)
    assert np.abs(full - cropped).max() <= 2 / 255 / 0.25 + 1e-6  # a level or two of rounding

