"""SceneCut (runtime.media.scene_cut): the per-frame scene-change test online mode resets on.

Frames are made the way the runtime makes them: synthetic clips (the training set's renderer) through
the bundle preprocessing, at the input size of a real bundle (224) and of the test bundles (32).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ffn_edge.runtime.media.scene_cut import SceneCut, total_variation

from ffn_edge.bundle.manifest import InputSpec
from ffn_edge.bundle.preprocess import Preprocessor
from ffn_edge.core.defaults import DEFAULT_CUT_THRESHOLD, IMAGENET_MEAN, IMAGENET_STD
from ffn_edge.core.errors import InputError
from ffn_edge.data.synthetic import render_clip

FRAMES = 24


def preprocessed(label: int, seed: int, size: int) -> np.ndarray:
    """A synthetic clip of class ``label`` as the runtime holds it: (T, 3, size, size) float32."""
    spec = InputSpec("input", "NTCHW", (size, size), size, IMAGENET_MEAN, IMAGENET_STD)
    prep = Preprocessor(spec)
    return np.stack([prep(image) for image in render_clip(label, np.random.default_rng(seed), FRAMES, 64)])


@pytest.mark.parametrize("size", [224, 32])
def test_identical_frames_never_cut(size):
    frame = preprocessed(0, 1, size)[0]
    cut = SceneCut()
    assert [cut.is_cut(frame) for _ in range(10)] == [False] * 10
    assert cut.distance == 0.0


@pytest.mark.parametrize("size", [224, 32])
def test_one_scene_does_not_cut_and_another_scene_does(size):
    first, second = preprocessed(2, 1, size), preprocessed(2, 2, size)  # same class, another take
    cut = SceneCut()
    assert not any(cut.is_cut(f) for f in first)  # motion, noise (and a flash) within one scene
    assert cut.is_cut(second[0])  # the boundary
    assert cut.distance >= DEFAULT_CUT_THRESHOLD
    assert not any(cut.is_cut(f) for f in second[1:])  # the new scene is the reference now


def test_first_frame_and_frame_after_reset_are_references_not_cuts():
    a, b = preprocessed(0, 1, 32)[0], preprocessed(1, 5, 32)[0]
    cut = SceneCut()
    assert not cut.is_cut(a) and cut.distance is None
    cut.reset()
    assert not cut.is_cut(b)  # no reference: b becomes it
    assert cut.is_cut(a)


def test_threshold_decides():
    a, b = preprocessed(0, 1, 32)[0], preprocessed(1, 5, 32)[0]
    probe = SceneCut()
    probe.is_cut(a)
    probe.is_cut(b)
    d = probe.distance
    for threshold, expected in ((d * 0.99, True), (min(1.0, d * 1.01), False)):
        cut = SceneCut(threshold)
        cut.is_cut(a)
        assert cut.is_cut(b) is expected


def test_normalisation_is_undone_with_the_bundle_mean_and_std():
    """The same pixels normalised two ways give the same histogram when SceneCut is told the bundle's."""
    mean, std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    image = render_clip(3, np.random.default_rng(0), 1, 64)[0]
    ours = Preprocessor(InputSpec("input", "NTCHW", (64, 64), 64, mean, std))(image)
    imagenet = Preprocessor(InputSpec("input", "NTCHW", (64, 64), 64, IMAGENET_MEAN, IMAGENET_STD))(image)
    assert total_variation(SceneCut(mean=mean, std=std).histogram(ours), SceneCut().histogram(imagenet)) < 0.05


def test_total_variation_is_the_mass_that_moved():
    p, q = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    assert total_variation(p, p) == 0.0 and total_variation(p, q) == 1.0
    assert total_variation(p, np.array([0.88, 0.0, 0.12])) == pytest.approx(0.12)  # a flash on 12 % of the frame


@pytest.mark.parametrize("frame", [np.zeros((32, 32), np.float32), np.zeros((1, 32, 32), np.float32),
                                   np.zeros((32, 32, 3), np.float32), np.zeros((3, 0, 32), np.float32),
                                   np.zeros((3, 32, 32), np.uint8), [[0.0]], np.zeros((2, 3, 32, 32), np.float32)])
def test_bad_frames_are_one_line_input_errors(frame):
    with pytest.raises(InputError) as e:
        SceneCut().is_cut(frame)
    assert "\n" not in str(e.value) and "scene cut" in str(e.value)


@pytest.mark.parametrize("threshold", [0, -0.1, 1.5, float("nan"), "0.4", True])
def test_bad_thresholds_are_one_line_input_errors(threshold):
    with pytest.raises(InputError) as e:
        SceneCut(threshold)
    assert "\n" not in str(e.value)


def test_bad_mean_std_refused():
    with pytest.raises(InputError):
        SceneCut(mean=(0.5, 0.5), std=(0.5, 0.5, 0.5))
    with pytest.raises(InputError):
        SceneCut(std=(0.5, 0.0, 0.5))


def test_a_long_take_is_one_scene_whose_motion_starts_again() -> None:
    """``render_clip(period=...)``: the first period is the plain clip; later ones move anew on the same scene."""
    take = render_clip(4, np.random.default_rng(9), 96, 64, period=48)
    assert np.array_equal(take[:48], render_clip(4, np.random.default_rng(9), 48, 64))
    assert not np.array_equal(take[48:], take[:48])
    first, second = (np.median(part.astype(np.float32), axis=0) for part in (take[:48], take[48:]))
    assert np.median(np.abs(first - second)) < 3  # the background (most pixels) is the same
    with pytest.raises(ValueError, match="period"):
        render_clip(0, np.random.default_rng(0), 8, 32, period=0)


def test_benchmark_smoke() -> None:
    """benchmarks/scene_cut.py --quick: the sweep table with the default threshold marked, and the distances."""
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, str(root / "benchmarks" / "scene_cut.py"), "--quick", "--counts", "4"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [line for line in out.stdout.splitlines() if line.startswith("| 56 | 4 | 250.0 |")]
    assert len(rows) == 9 and sum(f"| {DEFAULT_CUT_THRESHOLD:g}* |" in r for r in rows) == 1
    assert "## Distances" in out.stdout
    assert "load average" in out.stdout
