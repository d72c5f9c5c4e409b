"""FFNRuntime, backends and ffn-run on a small exported bundle (CPU; GPU backends skip)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from builders import TINY_CLASSES, TINY_FRAMES
from ffn_edge.runtime import Budgets, BundleError, FFNRuntime, FrameCountPolicy
from ffn_edge.runtime.backends.select import open_backend
from ffn_edge.runtime.backends.sharing import external_tensors
from ffn_edge.runtime.backends.tensorrt import pick_engine_set
from ffn_edge.runtime.media.sources import FrameSource

from ffn_edge.bundle.manifest import load_manifest, seal

ROOT = Path(__file__).resolve().parents[1]
FRAMES = TINY_FRAMES
CLASSES = TINY_CLASSES
FPS = 30.0
SUBPROCESS_TIMEOUT = 120


@pytest.fixture(scope="module")
def model_and_bundle(tiny_model, tiny_bundle) -> tuple[torch.nn.Module, Path]:
    return tiny_model, tiny_bundle


@pytest.fixture(scope="module")
def bundle(tiny_bundle) -> Path:
    return tiny_bundle


@pytest.fixture(scope="module")
def rt(bundle) -> FFNRuntime:
    with FFNRuntime.open(bundle, backend="auto", threads=2) as runtime:
        yield runtime


def _frames(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (96, 128, 3), dtype=np.uint8) for _ in range(n)]


def _run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT, cwd=ROOT,
                          env={**os.environ, "OMP_NUM_THREADS": "2", **(env or {})})


# -- parity and routing ---------------------------------------------------------------------------


def test_logits_match_pytorch_for_every_subnetwork(model_and_bundle, rt):
    model, _ = model_and_bundle
    rng = np.random.default_rng(1)
    for subnet, n in enumerate(FRAMES):
        clip = rng.standard_normal((1, n, 3, 64, 64)).astype(np.float32)
        with torch.no_grad():
            want = model(torch.from_numpy(clip), subnet=subnet).numpy()
        got = rt._backend.run(n, clip)
        assert np.abs(got - want).max() < 1e-4
        assert int(got.argmax()) == int(want.argmax())


def test_predict_raw_frames_matches_pytorch_on_the_same_sampling(model_and_bundle, rt):
    model, _ = model_and_bundle
    raw = _frames(20)
    p = rt.predict(raw, n=8)
    idx = [int(t) for t in p.timestamps]  # plain predict reports frame indices
    assert idx == [1, 3, 6, 8, 11, 13, 16, 18]  # TSN segment centres of 20 frames
    clip = np.stack([rt.preprocessor(raw[i]) for i in idx])[None]
    with torch.no_grad():
        probs = torch.softmax(model(torch.from_numpy(clip)), dim=1)[0].numpy()
    assert p.index == int(probs.argmax()) and p.label == CLASSES[p.index]
    assert abs(p.score - float(probs.max())) < 1e-4
    assert p.frames == 8 and p.subnet == 1 and p.latency_ms > 0
    assert [lbl for lbl, _ in p.topk] == [CLASSES[i] for i in np.argsort(-probs)[:5]]
    # The same clip given as a uint8 array or preprocessed float32 frames gives the same answer.
    assert rt.predict(np.stack(raw), n=8).index == p.index
    pre = np.stack([rt.preprocessor(f) for f in raw])
    assert abs(rt.predict(pre, n=8).score - p.score) < 1e-5


def test_frame_counts_route_to_the_nearest_subnetwork(rt):
    assert rt.route(4)[0].frames == 4 and rt.route(8)[0].frames == 8
    assert rt.route(5)[1] == 4  # nearer to 4
    assert rt.route(6)[1] == 8  # tie between 4 and 8 goes to the higher
    assert rt.route(30)[1] == 8
    assert rt.predict(_frames(3)).frames == 4  # default n: the exported count nearest the clip length
    assert rt.predict(_frames(40)).frames == 8


def test_predict_is_thread_safe(rt):
    clips = [_frames(8, seed=s) for s in range(4)]
    want = [rt.predict(c).score for c in clips]
    got: dict[int, float] = {}

    def worker(i: int) -> None:
        for _ in range(3):
            got[i] = rt.predict(clips[i]).score

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert [got[i] for i in range(4)] == pytest.approx(want, abs=1e-6)


def test_shared_weights_give_the_same_logits_as_private_copies(bundle):
    m = load_manifest(bundle)
    assert external_tensors(bundle / m.graph_for(4).file), "the exporter should store weights externally"
    clip = np.random.default_rng(2).standard_normal((1, 8, 3, 64, 64)).astype(np.float32)
    shared = open_backend(bundle, m, "ort-cpu", threads=1, share_weights=True)
    private = open_backend(bundle, m, "ort-cpu", threads=1, share_weights=False)
    # The big tensors of both graphs are pooled: one copy serves both sub-networks.
    assert shared.pool is not None and 0 < shared.pool.tensor_count == shared.pool.tensors_seen // 2
    assert np.abs(shared.run(8, clip) - private.run(8, clip)).max() < 1e-5
    shared.close()
    private.close()


def test_frame_count_policy_fixed_max_and_scheduler():
    assert FrameCountPolicy((4, 8), frames=6).choose(0.0) == (6, "fixed")
    assert FrameCountPolicy((4, 8, 16)).choose(0.0) == (16, "max")
    policy = FrameCountPolicy((4, 8, 16), budgets=Budgets(budget_ms=25.0), candidates=(4, 8, 16))
    t = 0.0
    while True:  # warm-up, then a latency model of 2.5 ms per frame: 8 fits 25 ms, 16 does not
        n, reason = policy.choose(t)
        if "warmup" not in reason:
            break
        policy.observe(n, (4, 8, 16).index(n), 2.5 * n, t)
        t += 1.0
    assert (n, reason) == (8, "budget")
    policy.set_budget(5.0)
    assert policy.choose(t) == (4, "budget_infeasible")


# -- bundles that must be refused -----------------------------------------------------------------


def test_tampered_bundle_is_refused(bundle, tmp_path):
    bad = tmp_path / "tampered.ffn"
    shutil.copytree(bundle, bad)
    m = load_manifest(bad)
    weights = bad / m.weights_file
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="does not match the manifest"):
        FFNRuntime(bad)


def test_bundle_path_leaving_the_directory_is_refused(bundle, tmp_path):
    bad = tmp_path / "escape.ffn"
    shutil.copytree(bundle, bad)
    manifest = json.loads((bad / "manifest.json").read_text())
    manifest["graphs"][0]["file"] = "../outside.onnx"
    (bad / "manifest.json").write_text(json.dumps(seal(manifest)))
    with pytest.raises(BundleError, match="leaves the bundle"):
        FFNRuntime(bad)


# -- no torch on the edge -------------------------------------------------------------------------


def test_runtime_imports_and_runs_where_torch_cannot_be_imported(bundle):
    code = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None  # any `import torch` now raises ImportError
        import numpy as np
        from ffn_edge.runtime import FFNRuntime
        from ffn_edge.runtime import session  # noqa: F401
        from ffn_edge.runtime.app import cli  # noqa: F401
        from ffn_edge.runtime.backends import select  # noqa: F401
        with FFNRuntime.open({str(bundle)!r}, threads=1) as rt:
            rng = np.random.default_rng(0)
            p = rt.predict([rng.integers(0, 256, (96, 128, 3), dtype=np.uint8) for _ in range(10)])
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision", "safetensors"))
        assert sys.modules["torch"] is None and loaded == ["torch"], loaded
        print("OK", p.label, p.frames)
    """)
    out = _run([sys.executable, "-c", code])
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("OK ")


# -- streams --------------------------------------------------------------------------------------


def test_stream_over_a_file_ends_with_the_expected_decisions(rt, video):
    stream = rt.stream(str(video), frames=8, window_s=1.0, stride_ms=250)
    results = list(stream)
    # 90 frames at 30 fps: last stamp 89/30 s; decisions at window ends 1.0, 1.25, ... <= 2.967 s.
    assert len(results) == 8
    assert [r.decision for r in results] == list(range(8))
    for r in results:
        assert r.frames_available == 30 and r.prediction.frames == 8 and r.reason == "fixed"
        assert r.window[0] < r.prediction.timestamps[0] and r.prediction.timestamps[-1] <= r.window[1] + 1e-6
    events = [e for r in results for e in r.events] + list(stream.drain_events())
    assert any(e.startswith("finished") for e in events)


def test_stream_with_a_budget_is_scheduled(rt, video):
    results = list(rt.stream(str(video), budget_ms=10_000.0, window_s=1.0, stride_ms=100))
    assert len(results) == 20  # window ends 1.0, 1.1, ..., 2.9 s
    assert results[0].reason == "warmup" and {r.prediction.frames for r in results[:6]} == {4, 8}
    assert results[-1].prediction.frames == 8 and "warmup" not in results[-1].reason
    assert all(r.within_budget and r.budget_ms == 10_000.0 for r in results)


class FlakyCamera:
    """A camera (cv2.VideoCapture stand-in) that dies after ``frames_before_loss`` frames, refuses
    to reopen once, then works again: what a USB camera whose cable is jiggled does."""

    def __init__(self, frames_before_loss: int = 15) -> None:
        self.opens = 0
        self.frames_before_loss = frames_before_loss

    def __call__(self, spec):  # the FrameSource opener
        self.opens += 1
        return _FakeCapture(dead=self.opens == 2, frames=self.frames_before_loss if self.opens == 1 else 10**9)


class _FakeCapture:
    def __init__(self, dead: bool, frames: int) -> None:
        self.dead, self.left = dead, frames

    def isOpened(self) -> bool:  # noqa: N802 - cv2's name
        return not self.dead

    def read(self):
        time.sleep(0.01)  # ~100 fps
        if self.left <= 0:
            return False, None
        self.left -= 1
        return True, np.full((96, 128, 3), 100, np.uint8)

    def get(self, prop_id: int) -> float:
        return 0.0

    def release(self) -> None:
        pass


def test_lost_camera_is_reopened_and_the_stream_goes_on(rt):
    camera = FlakyCamera()
    source = FrameSource("cam0", opener=camera)
    results = list(rt.stream(source, frames=4, window_s=0.1, stride_ms=50, max_decisions=12, backoff_s=0.05,
                             duration_s=20))
    assert len(results) == 12
    events = [e for r in results for e in r.events]
    kinds = [e.split(":")[0] for e in events]
    assert "lost" in kinds and "retry" in kinds and "reopened" in kinds
    reopened_at = next(i for i, r in enumerate(results) if any(e.startswith("reopened") for e in r.events))
    assert reopened_at < len(results) - 1  # decisions continued after the camera came back
    assert camera.opens == 3


# -- ffn-run --------------------------------------------------------------------------------------


def test_ffn_run_json_is_one_object_per_decision(bundle, video, tmp_path):
    out_video = tmp_path / "annotated.mp4"
    out = _run([sys.executable, "-m", "ffn_edge.runtime.app.cli", "--bundle", str(bundle), "--video", str(video),
                "--budget-ms", "5000", "--stride-ms", "500", "--json", "--threads", "1",
                "--output", str(out_video)])
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    decisions = [json.loads(line) for line in lines]
    assert len(decisions) == 4  # window ends 1.0, 1.5, 2.0, 2.5 s (<= 89/30 s)
    assert {"label", "score", "topk", "frames", "subnet", "latency_ms", "reason", "within_budget"} <= set(decisions[0])
    assert "4 decisions" in out.stderr and "within 5000 ms budget" in out.stderr
    capture = cv2.VideoCapture(str(out_video))
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 90
    capture.release()


@pytest.mark.parametrize("case", ["missing bundle", "tampered bundle", "missing video", "camera that cannot open"])
def test_ffn_run_bad_input_is_one_line_and_nonzero_exit(case, bundle, video, tmp_path):
    target, source = bundle, video
    if case == "missing bundle":
        target = tmp_path / "nope.ffn"
    elif case == "tampered bundle":
        target = tmp_path / "t.ffn"
        shutil.copytree(bundle, target)
        graph = target / load_manifest(bundle).graphs[0].file
        graph.write_bytes(graph.read_bytes() + b"\0")
    elif case == "missing video":
        source = tmp_path / "nope.mp4"
    else:
        source = "cam99"
    out = _run([sys.executable, "-m", "ffn_edge.runtime.app.cli", "--bundle", str(target), "--video", str(source)])
    assert out.returncode != 0
    assert out.stdout == ""
    assert len(out.stderr.strip().splitlines()) == 1 and out.stderr.startswith("ffn-run: error:")


def test_ffn_run_help_shows_examples():
    out = _run([sys.executable, "-m", "ffn_edge.runtime.app.cli", "--help"])
    assert out.returncode == 0 and "examples:" in out.stdout and "--budget-ms" in out.stdout


def test_tensorrt_engines_for_another_device_are_refused_with_a_clear_message():
    manifest = dataclasses.replace(load_manifest_stub(), extra={"engines": {"k": {
        "gpu": "NVIDIA H100 80GB HBM3", "tensorrt": "10.3.0", "precision": "fp16", "stripped": True,
        "engines": {"4": {"file": "engines/k/f4.engine", "profile": 0, "refit_from": "f4.onnx"}}}}})
    sets = manifest.engine_sets
    ref = sets[0].engines[4]  # an entry without a T range accepts exactly its own frame count
    assert (ref.file, ref.profile, ref.refit_from, ref.t_min, ref.t_max) == ("engines/k/f4.engine", 0, "f4.onnx", 4, 4)
    assert pick_engine_set(sets, "NVIDIA H100 80GB HBM3", "10.3.0", None) is sets[0]
    with pytest.raises(BundleError, match="Orin.*the bundle has: 'NVIDIA H100 80GB HBM3' / TensorRT 10.3.0 / fp16"):
        pick_engine_set(sets, "Orin", "10.3.0", None)
    with pytest.raises(BundleError, match="TensorRT 10.7"):
        pick_engine_set(sets, "NVIDIA H100 80GB HBM3", "10.7.0", None)
    with pytest.raises(BundleError, match="fp32"):
        pick_engine_set(sets, "NVIDIA H100 80GB HBM3", "10.3.0", "fp32")


def load_manifest_stub():
    from ffn_edge.bundle.manifest import GraphEntry, InputSpec, Manifest

    return Manifest(arch="a", model_config={}, subnet_frame_counts=(4,), graphs=(GraphEntry(4, 0, "f4.onnx"),),
                    weights_file="weights.bin", input=InputSpec("clip", "NTCHW", (64, 64), 72, (0, 0, 0), (1, 1, 1)),
                    output_name="logits", class_names=("a",), opset=18, files={})


@pytest.mark.gpu
def test_tensorrt_backend_runs_the_bundles_engines(model_and_bundle, tmp_path):
    pytest.importorskip("tensorrt")
    from ffn_edge.export.tensorrt import build_engines, gpu_name

    if gpu_name() is None:
        pytest.skip("no CUDA GPU")
    model, bundle = model_and_bundle
    gpu_bundle = tmp_path / "gpu.ffn"
    shutil.copytree(bundle, gpu_bundle)
    build_engines(gpu_bundle)
    clip = np.random.default_rng(3).standard_normal((1, 8, 3, 64, 64)).astype(np.float32)
    with FFNRuntime.open(gpu_bundle, backend="tensorrt") as runtime:
        assert runtime.backend_name == "tensorrt[fp32]"
        with torch.no_grad():
            want = model(torch.from_numpy(clip), subnet=1).numpy()
        assert np.abs(runtime._backend.run(8, clip) - want).max() < 1e-3
    with FFNRuntime.open(gpu_bundle) as runtime:  # auto prefers the engines
        assert runtime.backend_name.startswith("tensorrt")


@pytest.mark.gpu
def test_auto_prefers_a_gpu_backend_when_present(bundle):
    import onnxruntime as ort

    if not {"CUDAExecutionProvider", "TensorrtExecutionProvider"} & set(ort.get_available_providers()):
        pytest.skip("no ONNX Runtime GPU provider in this environment")
    with FFNRuntime.open(bundle) as runtime:
        assert "CPUExecutionProvider" not in runtime.backend_name


# -- session / stream split -----------------------------------------------------------------------


class _CountingCapture:
    """A file-like capture (cv2.VideoCapture stand-in) that counts every frame the producer reads."""

    def __init__(self, frames: int) -> None:
        self.left, self.reads = frames, 0

    def isOpened(self) -> bool:  # noqa: N802 - cv2's name
        return True

    def read(self):
        if self.left <= 0:
            return False, None
        self.left -= 1
        self.reads += 1
        return True, np.full((96, 128, 3), self.reads % 255, np.uint8)

    def get(self, prop_id: int) -> float:
        return FPS if prop_id == cv2.CAP_PROP_FPS else 0.0

    def release(self) -> None:
        pass


class _CaptureWatchingBackend:
    """Wraps the real backend: during each run, waits for the producer to read a frame (it has every
    chance to) and records how many it read. The stream must time only its own run: none."""

    def __init__(self, inner, capture: _CountingCapture) -> None:
        self.inner, self.capture = inner, capture
        self.name, self.frame_counts = inner.name, inner.frame_counts
        self.reads_during_runs: list[int] = []

    def run(self, frames: int, clip: np.ndarray) -> np.ndarray:
        before = self.capture.reads
        deadline = time.monotonic() + 0.3
        while self.capture.reads == before and time.monotonic() < deadline:
            time.sleep(0.002)
        self.reads_during_runs.append(self.capture.reads - before)
        return self.inner.run(frames, clip)

    def close(self) -> None:
        self.inner.close()


def test_stream_never_times_its_own_capture_work(bundle):
    from ffn_edge.runtime.media.sources import SourceSpec

    capture = _CountingCapture(frames=75)  # 2.5 s at 30 fps
    source = FrameSource(SourceSpec("file", "fake.mp4", "fake.mp4"), opener=lambda spec: capture)
    with FFNRuntime.open(bundle, threads=1) as session:
        watcher = _CaptureWatchingBackend(session._backend, capture)
        session._backend = watcher  # the seam every run goes through
        results = list(session.stream(source, frames=4, window_s=1.0, stride_ms=250, capacity=40))
    assert len(results) == 6  # last stamp 74/30 s: window ends 1.0, 1.25, ..., 2.25 s
    assert capture.reads == 75  # the producer did refill the ring between decisions...
    assert watcher.reads_during_runs == [0] * 6  # ...but never while a decision's run was timed


def test_streams_are_separate_objects_with_their_own_budgets(rt, video):
    from ffn_edge.runtime import Stream

    a = rt.stream(str(video), budget_ms=500.0, window_s=1.0, stride_ms=250)
    b = rt.stream(str(video), budget_ms=700.0, window_s=1.0, stride_ms=250)
    assert isinstance(a, Stream) and not hasattr(rt, "set_budget")  # budgets live on a stream
    a.set_budget(budget_ms=1e-3)
    assert a.budgets.budget_ms == 1e-3 and b.budgets.budget_ms == 700.0
    with a, b:
        pairs = list(zip(a, b, strict=False))  # two streams on one session, interleaved
    assert len(pairs) == 8
    assert all(ra.budget_ms == 1e-3 and rb.budget_ms == 700.0 for ra, rb in pairs)
    with pytest.raises(Exception, match="iterated once"):
        iter(a)


def test_predict_latency_is_the_run_alone_and_threads_follow_cpu_affinity(bundle, monkeypatch):
    from ffn_edge.runtime import session as ffn_runtime

    monkeypatch.setattr(ffn_runtime.os, "sched_getaffinity", lambda pid: {0})  # as under `taskset -c 0`
    seen = {}
    real_open = ffn_runtime.open_backend

    def spy_open(bundle_, manifest, backend, device, threads, share_weights):
        seen["threads"] = threads
        return real_open(bundle_, manifest, backend, device, threads, share_weights)

    monkeypatch.setattr(ffn_runtime, "open_backend", spy_open)
    with FFNRuntime.open(bundle) as session:
        assert session.threads == 1 and seen["threads"] == 1
        calls = []
        real_pre = session.preprocessor
        session.preprocessor = lambda frame: (calls.append(1), real_pre(frame))[1]
        p = session.predict(_frames(20), n=4)
    assert len(calls) == 4  # only the 4 sampled raw frames are preprocessed (and gathered)
    assert p.latency_ms > 0 and p.cpu_ms is not None and p.cpu_ms >= 0
    assert ffn_runtime.default_threads() == 1


# -- the input contract and option checks reach the public API ---------------------------------


@pytest.mark.parametrize("case, frames", [
    ("mixed uint8/float32", lambda: [np.zeros((64, 64, 3), np.uint8), np.zeros((3, 64, 64), np.float32)]),
    ("thin frame", lambda: [np.zeros((1, 50000, 3), np.uint8)]),
    ("not arrays", lambda: ["a", "b"]),
    ("NaN preprocessed", lambda: np.full((4, 3, 64, 64), np.nan, np.float32)),
    ("empty", lambda: []),
])
def test_predict_refuses_bad_clips_with_one_input_error(rt, case, frames):
    from ffn_edge.core.errors import InputError

    with pytest.raises(InputError) as info:
        rt.predict(frames())
    assert "\n" not in str(info.value)


def test_predict_refuses_bad_arguments_with_one_input_error(rt):
    from ffn_edge.core.errors import InputError

    clip = np.zeros((8, 64, 64, 3), np.uint8)
    for kw in ({"n": 0}, {"n": 10**9}, {"topk": 0}, {"timestamps": [0.0]}):
        with pytest.raises(InputError):
            rt.predict(clip, **kw)


def test_open_refuses_an_unbounded_thread_count(bundle):
    from ffn_edge.core.errors import ConfigError

    with pytest.raises(ConfigError, match="threads"):
        FFNRuntime.open(bundle, threads=100000)


@pytest.mark.parametrize("flags, text", [
    (["--window-s", "nan"], "window"),
    (["--stride-ms", "inf"], "stride"),
    (["--duration", "-1"], "duration"),
    (["--threads", "100000"], "threads"),
])
def test_ffn_run_rejects_nonsense_options_in_one_line(bundle, video, flags, text):
    out = _run([sys.executable, "-m", "ffn_edge.runtime.app.cli", "--bundle", str(bundle), "--video", str(video),
                *flags])
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and text in out.stderr, out.stderr


def test_ffn_run_refuses_a_text_file_and_an_undecodable_video(bundle, tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\0" * 4096 + bytes(range(256)) * 64)
    for path in (text, broken):
        out = _run([sys.executable, "-m", "ffn_edge.runtime.app.cli", "--bundle", str(bundle), "--video", str(path)])
        assert out.returncode == 2, (path.name, out.stdout, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_external_tensor_table_matches_the_onnx_package(bundle):
    """The runtime's own protobuf reader (no onnx dependency) finds what onnx finds, byte for byte."""
    import onnx
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    path = bundle / load_manifest(bundle).graph_for(4).file
    model = onnx.load(str(path), load_external_data=False)
    want = {}
    for t in model.graph.initializer:
        if uses_external_data(t):
            info = ExternalDataInfo(t)
            want[t.name] = (info.location, info.offset or 0, info.length, tuple(t.dims))
    got = {t.name: (t.location, t.offset, t.length, t.shape) for t in external_tensors(path)}
    assert got == want and want
