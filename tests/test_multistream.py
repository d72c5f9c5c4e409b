"""MultiStream: many sources on one session, one round per stride, batches, a lost camera, bad input."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from ffn_edge.export import export_bundle
from ffn_edge.export.cli import read_accuracy
from ffn_edge.runtime import ConfigError, FFNRuntime, StreamOptions
from ffn_edge.runtime.app import cli
from ffn_edge.runtime.media.sources import FrameSource
from ffn_edge.runtime.results import MultiResult
from ffn_edge.runtime.streaming.multi_checks import check_sources
from ffn_edge.runtime.streaming.multi_session import accuracy_curve

from ffn_edge.bundle.accuracy import accuracy_from_json
from ffn_edge.checkpoint import CheckpointMeta, save_checkpoint
from ffn_edge.core.errors import BundleError
from ffn_edge.core.validate import MAX_STREAMS
from ffn_edge.models import ModelConfig, create_model

EVAL = {"frames": [1, 2, 3, 4], "top1": [40.0, 55.0, 58.0, 60.0], "top5": [90.0, 95.0, 96.0, 97.0],
        "num_videos": 120, "served_by": [[[0, 2]], [[0, 2]], [[0, 4]], [[0, 4]]]}  # what ffn-eval --json prints


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> tuple[Path, list[Path]]:
    """A tiny bundle (sub-networks at 2 and 4 frames, its eval accuracy recorded) and three 2 s, 30 fps videos."""
    d = tmp_path_factory.mktemp("multi")
    cfg = ModelConfig("tsm_resnet18", 3, frame_counts=(2, 4), width_mult=0.125)
    save_checkpoint(d / "m.safetensors", create_model(cfg).eval(),
                    CheckpointMeta(cfg, ["a", "b", "c"], input_size=32, resize_shorter=32))
    (d / "eval.json").write_text(json.dumps(EVAL))
    out = Path(export_bundle(d / "m.safetensors", (2, 4), d / "m.ffn", verify=False,
                             accuracy=read_accuracy(d / "eval.json")))
    videos = []
    for v in range(3):
        path = d / f"v{v}.mp4"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (48, 48))
        rng = np.random.default_rng(v)
        for _ in range(60):
            writer.write(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8))
        writer.release()
        videos.append(path)
    return out, videos


@pytest.fixture(scope="module")
def rt(bundle) -> FFNRuntime:
    with FFNRuntime.open(bundle[0], threads=1) as runtime:
        yield runtime


# -- bad input: one line each ----------------------------------------------------------------------
@pytest.mark.parametrize(("names", "weights", "text"), [
    ([], None, "at least one source"),
    (["a", "b", "a"], None, "given twice"),
    (["a", "b"], [1.0, 0.0], "weight of 'b'"),
    (["a", "b"], [1.0, -2.0], "weight of 'b'"),
    (["a", "b"], [1.0, float("nan")], "weight of 'b'"),
    (["a", "b"], [1.0], "one per source"),
    ([f"cam{i}" for i in range(MAX_STREAMS + 1)], None, f"at most {MAX_STREAMS} streams"),
    ("cam0", None, "list of sources"),
])
def test_bad_sources_and_weights_are_one_line(names, weights, text) -> None:
    with pytest.raises(ConfigError, match=text) as e:
        check_sources(names, weights)
    assert "\n" not in str(e.value)


def test_rt_streams_refuses_bad_input_before_opening_anything(rt, bundle) -> None:
    v = str(bundle[1][0])
    for sources, kw in (([v, v], {}), ([], {}), ([v], {"weights": [0]}), ([v], {"min_accuracy": 1.5})):
        with pytest.raises(ConfigError) as e:
            rt.streams(sources, **kw)
        assert "\n" not in str(e.value)


# -- batching: one run for many streams, the same logits -------------------------------------------
def test_batched_logits_equal_per_stream_runs(rt) -> None:
    rng = np.random.default_rng(0)
    for n in rt.frame_counts:
        _, fed = rt.route(n)
        clips = rng.standard_normal((4, fed, 3, 32, 32)).astype(np.float32)
        batched = rt.run(n, clips).logits
        single = np.concatenate([rt.run(n, clips[i:i + 1]).logits for i in range(4)])
        assert batched.shape == single.shape == (4, 3)
        np.testing.assert_allclose(batched, single, atol=1e-5, rtol=0)


def collect(stream) -> list[MultiResult]:
    with stream:
        return list(stream)


def test_files_offline_one_round_per_stride_same_n_in_one_batch(rt, bundle) -> None:
    videos = [str(v) for v in bundle[1]]
    results = collect(rt.streams(videos, StreamOptions(stride_ms=250, window_s=0.5, frames=4), max_decisions=3))
    assert len(results) == 9
    assert [r.round for r in results] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert {r.source for r in results} == set(videos)
    for r in results:
        assert r.result is not None and r.batch == 3 and r.result.prediction.frames == 4
        assert r.result.reason == "fixed"
    # the batch answered what a lone predict on the same window answers
    first = results[0].result
    assert first.window == pytest.approx((0.0, 0.5), abs=0.04)
    alone = collect(rt.streams([videos[0]], StreamOptions(stride_ms=250, window_s=0.5, frames=4), max_decisions=1))
    np.testing.assert_allclose(alone[0].result.prediction.score, first.prediction.score, atol=1e-5)


def test_budget_limits_the_round_and_weights_shift_frames(rt, bundle) -> None:
    videos = [str(v) for v in bundle[1]]
    s = rt.streams(videos, StreamOptions(stride_ms=100, window_s=0.3, budget_ms=1e4), weights=[1, 1, 3],
                   max_decisions=12)
    results = collect(s)
    last = [r for r in results if r.round == results[-1].round]
    assert all(r.result.reasons != ("warmup",) for r in last)
    assert all(r.result.prediction.frames == 4 for r in last)  # a huge budget: everyone at the largest count
    assert all(r.round_within_budget for r in results)
    assert {r.weight for r in results} == {1.0, 3.0}


def test_unbatched_runs_one_stream_per_run(rt, bundle) -> None:
    videos = [str(v) for v in bundle[1][:2]]
    results = collect(rt.streams(videos, StreamOptions(stride_ms=250, window_s=0.5, frames=2), batching=False,
                                 max_decisions=2))
    assert all(r.batch == 1 for r in results) and len(results) == 4


def test_add_remove_set_weight_while_running(rt, bundle) -> None:
    a, b, c = (str(v) for v in bundle[1])
    s = rt.streams([a, b], StreamOptions(stride_ms=100, window_s=0.3, budget_ms=1e4), max_decisions=8)
    seen: list[tuple[int, str]] = []
    with s:
        for r in s:
            seen.append((r.round, r.source))
            if r.round == 2 and r.source == b:
                s.remove(a)
                s.add(c, 2.0)
                s.set_weight(b, 5.0)
                with pytest.raises(ConfigError, match="weight"):
                    s.set_weight(b, 0)
                with pytest.raises(ConfigError, match="given twice"):
                    s.add(b)
    assert (1, a) in seen and (3, a) not in seen
    assert (3, c) in seen and (3, b) in seen


# -- a lost camera never stalls the others (fake captures at the OpenCV seam) ----------------------
class FakeCapture:
    """A camera: ``frames`` frames, a few ms apart, then every read fails (unplugged); None: frames forever.

    ``hang``: after its frames, the read blocks until the event is set (a driver stuck in a call).
    """

    def __init__(self, frames: int | None, seed: int, hang: threading.Event | None = None) -> None:
        self.left, self.rng, self.opened, self.hang = frames, np.random.default_rng(seed), True, hang

    def isOpened(self) -> bool:
        return self.opened

    def read(self) -> tuple[bool, np.ndarray | None]:
        time.sleep(0.01)
        if self.left is not None:
            if self.left <= 0:
                if self.hang is not None:
                    self.hang.wait()
                return False, None
            self.left -= 1
        return True, self.rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)

    def get(self, prop_id: int) -> float:
        return 0.0

    def release(self) -> None:
        self.opened = False


class Opener:
    """The first open gives ``frames`` frames; later opens (reconnects) fail when ``reopen`` is False."""

    def __init__(self, frames: int | None, reopen: bool, seed: int, hang: threading.Event | None = None) -> None:
        self.frames, self.reopen, self.seed, self.opens, self.hang = frames, reopen, seed, 0, hang
        self.lock = threading.Lock()

    def __call__(self, spec) -> FakeCapture:
        with self.lock:
            self.opens += 1
            if self.opens > 1 and not self.reopen:
                cap = FakeCapture(0, self.seed)
                cap.opened = False
                return cap
            return FakeCapture(self.frames, self.seed, self.hang)


def test_a_dying_camera_does_not_stall_the_others(rt) -> None:
    dying = Opener(frames=15, reopen=False, seed=1)
    healthy = Opener(frames=None, reopen=True, seed=2)
    sources = [FrameSource("cam0", opener=dying), FrameSource("cam1", opener=healthy)]
    opts = StreamOptions(stride_ms=100, window_s=0.2, frames=2, backoff_s=0.05, wait_timeout_s=60.0)
    results = collect(rt.streams(sources, opts, max_decisions=12))
    by = {name: [r for r in results if r.source == name] for name in ("cam0", "cam1")}
    assert len(by["cam1"]) == 12
    assert all(r.result is not None for r in by["cam1"][1:])  # every round after the first served cam1
    lost = [r for r in by["cam0"] if r.result is None]
    assert lost, "cam0 died after 15 frames: some rounds must have gone on without it"
    events = " ".join(e for r in by["cam0"] for e in r.events)
    assert "lost" in events and dying.opens >= 2


def test_a_camera_stuck_in_its_driver_does_not_stall_the_rounds(rt) -> None:
    """cam0's read blocks forever after 5 frames; cam1's rounds go on (the rounds never wait on a capture)."""
    hang = threading.Event()
    sources = [FrameSource("cam0", opener=Opener(5, reopen=False, seed=1, hang=hang)),
               FrameSource("cam1", opener=Opener(None, reopen=True, seed=2))]
    stream = rt.streams(sources, StreamOptions(stride_ms=100, window_s=0.2, frames=2), max_decisions=10)
    results: list[MultiResult] = []
    worker = threading.Thread(target=lambda: results.extend(stream), daemon=True)
    worker.start()
    worker.join(60.0)  # 10 rounds of 0.1 s; a round waiting on cam0 would never end while it hangs
    finished = not worker.is_alive()
    hang.set()
    stream.close()
    assert finished, "the rounds stalled on the stuck camera"
    cam1 = [r for r in results if r.source == "cam1"]
    assert len(cam1) == 10 and all(r.result is not None for r in cam1[1:])
    assert any(r.result is None for r in results if r.source == "cam0")


# -- the accuracy curve in the bundle --------------------------------------------------------------
def test_export_records_the_eval_accuracy_and_the_allocator_uses_it(rt) -> None:
    acc = rt.manifest.accuracy
    assert acc is not None and acc.top1 == {1: 40.0, 2: 55.0, 3: 58.0, 4: 60.0} and acc.num_videos == 120
    assert acc.source == "eval.json" and acc.top5 is not None
    curve = accuracy_curve(rt)
    assert curve.measured and curve(3) == 58.0
    # 0.95 x 60 = 57: 3 frames (58) is the least count that reaches it
    assert curve.least_reaching(0.95, (2, 3, 4)) == 3


@pytest.mark.parametrize(("doc", "text"), [
    ({"frames": [4, 8], "top1": [50.0]}, "top1 must be a list of 2"),
    ({"frames": [4, 4], "top1": [50.0, 60.0], "num_videos": 3}, "frames repeat"),
    ({"frames": [4], "top1": [150.0], "num_videos": 3}, "percentages in"),
    ({"frames": [4], "top1": [50.0]}, "lacks 'num_videos'"),
    ([1, 2], "expected an object"),
])
def test_a_bad_accuracy_section_is_one_line(doc, text) -> None:
    with pytest.raises(BundleError, match=text) as e:
        accuracy_from_json(doc, "x")
    assert "\n" not in str(e.value)


def test_ffn_export_accuracy_refuses_a_file_that_is_not_eval_json(tmp_path) -> None:
    bad = tmp_path / "eval.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="eval.json"):
        read_accuracy(bad)
    bad.write_text(json.dumps({"frames": [4]}))
    with pytest.raises(ConfigError, match="top1"):
        read_accuracy(bad)
    with pytest.raises(ConfigError):
        read_accuracy(tmp_path / "missing.json")


def test_ffn_export_reads_accuracy_before_exporting(bundle, tmp_path) -> None:
    from ffn_edge.export import cli as export_cli

    bad = tmp_path / "eval.json"
    bad.write_text(json.dumps({"frames": [2, 4], "top1": [50.0, 60.0]}))
    ckpt = bundle[0].parent / "m.safetensors"
    with pytest.raises(ConfigError, match="num_videos"):
        export_cli.run(["--ckpt", str(ckpt), "--frames", "2", "4", "--out", str(tmp_path / "o.ffn"),
                        "--accuracy", str(bad)])
    assert not (tmp_path / "o.ffn").exists()


# -- ffn-run with several --video -------------------------------------------------------------------
def test_ffn_run_several_videos_prints_one_json_per_stream_and_round(bundle, capsys) -> None:
    a, b = (str(v) for v in bundle[1][:2])
    argv = ["--bundle", str(bundle[0]), "--video", a, "--video", b, "--frames", "2", "--stride-ms", "250",
            "--window-s", "0.5", "--max-decisions", "2", "--json", "--weight", "1", "--weight", "2"]
    assert cli.run(argv) == 0
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(d["multi_round"], d["source"]) for d in lines] == [(0, a), (0, b), (1, a), (1, b)]
    assert all(d["multi_batch"] == 2 and d["frames"] == 2 for d in lines)
    assert [d["multi_weight"] for d in lines[:2]] == [1.0, 2.0]
    assert f"stream {a}" in err and f"stream {b}" in err


@pytest.mark.parametrize(("extra", "text"), [
    (["--video", "V0"], "given twice"),
    (["--video", "V1", "--online"], "--online serves one --video"),
    (["--video", "V1", "--weight", "1"], "one per source"),
])
def test_ffn_run_several_videos_bad_input_is_one_line(bundle, extra, text) -> None:
    a, b = (str(v) for v in bundle[1][:2])
    extra = [a if x == "V0" else b if x == "V1" else x for x in extra]
    with pytest.raises(ConfigError, match=text) as e:
        cli.run(["--bundle", str(bundle[0]), "--video", a, *extra, "--max-decisions", "1"])
    assert "\n" not in str(e.value)


def test_ffn_run_multi_flags_need_several_videos(bundle) -> None:
    with pytest.raises(ConfigError, match="--min-accuracy applies to several"):
        cli.run(["--bundle", str(bundle[0]), "--video", str(bundle[1][0]), "--min-accuracy", "0.9"])


def test_min_accuracy_takes_the_least_frames_reaching_the_share_of_the_recorded_best(rt, bundle) -> None:
    videos = [str(v) for v in bundle[1][:2]]
    s = rt.streams(videos, StreamOptions(stride_ms=100, window_s=0.3), min_accuracy=0.9, max_decisions=13)
    results = collect(s)
    settled = [r.result for r in results if r.round >= 10]
    # 0.9 x 60 % = 54 %: 2 frames (55 %) reach it, so no stream needs the 4-frame sub-network
    assert settled and all(r.prediction.frames == 2 and r.reasons == ("accuracy",) for r in settled)


def test_a_camera_that_does_not_open_leaves_and_the_others_run(rt) -> None:
    dead = Opener(frames=0, reopen=False, seed=0)
    dead.opens = 1  # its first open already fails
    sources = [FrameSource("cam0", opener=dead), FrameSource("cam1", opener=Opener(None, reopen=True, seed=2))]
    results = collect(rt.streams(sources, StreamOptions(stride_ms=100, window_s=0.2, frames=2), max_decisions=4))
    cam0 = [r for r in results if r.source == "cam0"]
    assert len(cam0) == 1 and cam0[0].result is None and "cannot open" in " ".join(cam0[0].events)
    assert len([r for r in results if r.source == "cam1"]) == 4


def test_no_source_opens_is_one_source_error(rt) -> None:
    from ffn_edge.core.errors import SourceError

    dead = Opener(frames=0, reopen=False, seed=0)
    dead.opens = 1
    with pytest.raises(SourceError, match="cannot open"):
        collect(rt.streams([FrameSource("cam0", opener=dead)], StreamOptions(frames=2), max_decisions=1))
