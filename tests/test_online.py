"""Online mode: rt.online_stream and ffn-run --online on a causal bundle.

One tiny causal bundle (TSM-ResNet-18 x0.125, 32 px, sub-networks at 2 and 4 frames, perturbed so they
differ) and a 3 s, 30 fps synthetic video. Labels are checked against a reference built from
the session's step graphs (one frame at a time, buffers kept here) and the causal clip graph.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from builders import CAUSAL_FRAMES, FPS, decode_preprocessed
from ffn_edge.runtime import FFNRuntime
from ffn_edge.runtime.app.cli import run
from ffn_edge.runtime.control.scheduler import Decision, Scheduler
from ffn_edge.runtime.streaming.online_labels import OnlineLabels

from ffn_edge.bundle.manifest import MANIFEST_NAME, seal
from ffn_edge.core.errors import BundleError, ConfigError

torch.set_num_threads(1)
COUNTS = CAUSAL_FRAMES


@pytest.fixture(scope="module")
def bundle(causal_bundle) -> Path:
    return causal_bundle


@pytest.fixture(scope="module")
def rt(bundle) -> FFNRuntime:
    with FFNRuntime.open(bundle, threads=1) as runtime:
        yield runtime


@pytest.fixture(scope="module")
def decoded(rt, video) -> list[np.ndarray]:
    """The video's frames, preprocessed as the stream's capture thread does."""
    return decode_preprocessed(video, rt.preprocessor)


class Alternate:
    """A scripted scheduler (the stream's ``scheduler=`` seam): 4 frames, then 2, a window each, and so on."""

    def __init__(self) -> None:
        self.windows = 0
        self.observed: list[tuple[int, int, float, float | None]] = []

    def decide(self, now_s: float, signals: object) -> Decision:
        n = COUNTS[1] if self.windows % 2 == 0 else COUNTS[0]
        return Decision(n, COUNTS.index(n), None, None, ["scripted"], True)

    def observe(self, n: int, subnet: int, latency_ms: float, now_s: float, cpu_ms: float | None = None) -> None:
        self.windows += 1
        self.observed.append((n, subnet, latency_ms, cpu_ms))


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z.astype(np.float64) - z.max())
    return e / e.sum()


def _check_against_step_graphs(results, bundle: Path, decoded: list[np.ndarray]) -> int:
    """Replay the frames the stream ran through the step graphs; every label must be the mean of the last n
    logits of the running sub-network since its (re)start, else the previous warm label. Returns fresh labels."""
    with FFNRuntime.open(bundle, threads=1, warmup=False) as session:  # its own step graphs, not the stream's
        steps = session.step_graphs()
        ring: list[np.ndarray] = []
        state: dict = {}
        last = None
        fresh = 0
        for r in results:
            if r.switched:  # every change of sub-network is a switch: its buffers start from zeros
                state = steps.zero_state(r.subnet)
                ring = []
            step = steps.run(decoded[round(r.stamp * FPS)], r.subnet, state)
            state = step.state
            ring.append(step.logits)
            assert r.warm_steps == min(len(ring), r.frames) and r.frames == COUNTS[r.subnet]
            if len(ring) >= r.frames:
                assert r.warm and r.prediction.subnet == r.subnet and r.prediction.frames == r.frames
                want = _softmax(np.mean(ring[-r.frames:], axis=0))
                got = dict(r.prediction.topk)
                for i, name in enumerate(("a", "b", "c")):
                    assert abs(got[name] - want[i]) < 1e-5
                last = r.prediction
                fresh += 1
            else:  # warming: no mean of fewer than n frames, no mixing: the previous warm label, stale
                assert not r.warm and r.prediction is last
    return fresh


def test_online_labels_are_the_mean_of_the_last_n_step_logits(rt, bundle, video, decoded) -> None:
    results = list(rt.online_stream(str(video), frames=4, window_s=1.0))
    assert len(results) == 12  # 3 s of video at a stride of 1 s / 4 frames
    assert [r.stamp for r in results] == pytest.approx([k * 0.25 for k in range(12)], abs=1 / FPS)
    assert all(r.subnet == 1 and r.frames == 4 and r.stride_ms == 250.0 for r in results)
    assert [r.prediction is None for r in results[:4]] == [True, True, True, False]
    assert [r.switched for r in results] == [True] + [False] * 11  # buffers carry on from window to window
    assert _check_against_step_graphs(results, bundle, decoded) == 9
    # the first warm label (from zero buffers) is the causal clip graph on those four frames
    clip = np.stack([decoded[round(r.stamp * FPS)] for r in results[:4]])[None]
    want = _softmax(rt.run(4, clip).logits[0])
    assert np.abs(np.array([p for _, p in sorted(results[3].prediction.topk)]) - want).max() < 1e-5
    # capture-to-label is a real-time quantity: none for a file read offline
    assert all(r.capture_to_label_ms is None for r in results)
    frames3 = list(rt.online_stream(str(video), frames=3, window_s=1.0, max_decisions=2))
    assert [r.frames for r in frames3] == [4, 4]  # served by the nearest sub-network (tie -> higher)


def test_switch_rewarms_and_never_mixes_subnetworks(rt, bundle, video, decoded) -> None:
    sched = Alternate()
    results = list(rt.online_stream(str(video), scheduler=sched, window_s=0.4))
    switches = [r for r in results if r.switched]
    assert len(switches) >= 5 and [r.subnet for r in switches[:3]] == [1, 0, 1]
    for r in switches[1:]:  # the new sub-network starts cold: the old label is kept, marked stale
        assert not r.warm and r.prediction is not None and r.prediction.subnet != r.subnet
    assert _check_against_step_graphs(results, bundle, decoded) > 0
    # one observation per window: n steps of one sub-network, their wall and CPU ms summed
    windows, i = [], 0
    while i < len(results):
        windows.append(results[i:i + results[i].frames])
        i += results[i].frames
    for (n, k, wall, cpu), steps in zip(sched.observed, windows, strict=False):
        assert len(steps) == n and {s.subnet for s in steps} == {k}
        assert wall == pytest.approx(sum(s.latency_ms for s in steps))
        assert cpu == pytest.approx(sum(s.cpu_ms for s in steps))


def test_online_labels_state_machine() -> None:
    labels = OnlineLabels()
    labels.start(0, 2)
    assert labels.add(np.array([1.0, 0.0]), 0.0) is None and not labels.warm
    first = labels.add(np.array([3.0, 0.0]), 0.5)
    assert first is not None and first.logits.tolist() == [2.0, 0.0] and first.stamps == (0.0, 0.5)
    labels.start(1, 3)  # switch: the ring empties, the last warm label stays
    assert labels.warm_steps == 0 and labels.last is first
    assert labels.add(np.array([9.0, 9.0]), 1.0) is None and labels.add(np.array([0.0, 0.0]), 1.1) is None
    third = labels.add(np.array([0.0, 3.0]), 1.2)
    assert third.subnet == 1 and third.frames == 3 and third.logits.tolist() == [3.0, 4.0]


def test_cpu_share_budget_is_step_compute_per_window(rt, video) -> None:
    s = rt.online_stream(str(video), cpu_share=0.2, window_s=0.5)
    assert s.budgets.budget_ms == pytest.approx(100.0) and s.cpu_share == pytest.approx(0.2)
    s.set_budget(cpu_share=0.5)
    assert s.budgets.budget_ms == pytest.approx(250.0)
    with pytest.raises(ConfigError, match=r"cpu share must be in \(0, 1\]"):
        s.set_budget(cpu_share=1.5)
    with pytest.raises(ConfigError, match="online streams are budgeted in compute"):
        rt.online_stream(str(video), budget_ms=30)
    with pytest.raises(ConfigError, match="cpu_share budgets online streams only"):
        rt.stream(str(video), cpu_share=0.5)


@pytest.mark.parametrize(("share", "settled"), [(1.0, 4), (1e-6, 2)])
def test_scheduler_picks_n_from_the_compute_share(rt, video, share, settled) -> None:
    """A whole window's worth of compute fits every n; a vanishing share fits none (the smallest runs)."""
    sched = Scheduler(COUNTS, candidates=COUNTS, warmup_repeats=1)
    results = list(rt.online_stream(str(video), scheduler=sched, cpu_share=share, window_s=0.2))
    assert sched.budget_ms == pytest.approx(share * 200.0)
    after = [r for r in results if "warmup" not in r.reasons]
    assert after and {r.frames for r in after} == {settled}
    assert after[-1].reasons == (("max",) if share == 1.0 else ("budget_infeasible",))
    assert all(r.within_budget == (r.latency_ms * r.frames <= sched.budget_ms) for r in results)


def _no_step_graphs(bundle: Path, dest: Path) -> Path:
    """The bundle as a bidirectional export writes it: no extra.step, shift bidirectional."""
    shutil.copytree(bundle, dest)
    d = json.loads((dest / MANIFEST_NAME).read_text())
    d["extra"].pop("step")
    d["model_config"]["shift"] = "bidirectional"
    (dest / MANIFEST_NAME).write_text(json.dumps(seal(d)))
    return dest


def test_online_needs_step_graphs(bundle, video, tmp_path) -> None:
    plain = _no_step_graphs(bundle, tmp_path / "plain.ffn")
    with FFNRuntime.open(plain, threads=1) as rt, pytest.raises(BundleError, match="no step graphs, so no online"):
        rt.online_stream(str(video))
    out = subprocess.run([sys.executable, "-m", "ffn_edge.runtime.app.cli", "--bundle", str(plain), "--video",
                          str(video), "--online"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip().count("\n") == 0 and "not exported from a causal checkpoint" in out.stderr


def test_ffn_run_online_end_to_end(bundle, video, capsys) -> None:
    assert run(["--bundle", str(bundle), "--video", str(video), "--online", "--frames", "4", "--json",
                "--threads", "1"]) == 0
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert len(rows) == 12 and [r["seq"] for r in rows] == list(range(12)) and {r["mode"] for r in rows} == {"online"}
    assert rows[0]["label"] is None and not rows[0]["online_warm"] and rows[3]["online_warm"]
    assert rows[3]["label"] in "abc"
    assert {r["subnet"] for r in rows} == {1} and rows[5]["online_stride_ms"] == 250.0 and rows[5]["latency_ms"] > 0
    assert rows[5]["frames"] == 4 and rows[5]["online_label_start"] == 0.5
    assert rows[5]["online_label_end"] == rows[5]["t"] == round(38 / 30, 4)  # the step's frame: first after 1.25 s
    assert "12 decisions" in captured.err and "9/12 steps gave a warm label" in captured.err
    assert run(["--bundle", str(bundle), "--video", str(video), "--online", "--cpu-share", "0.5", "--threads", "1",
                "--max-decisions", "6"]) == 0
    text = capsys.readouterr()
    lines = text.out.splitlines()
    assert len(lines) == 6 and "sub-network" in lines[0] and "none 1/" in lines[0] and "warmup" in lines[0]
    assert "within cpu share 0.5" in text.err


@pytest.mark.parametrize(("flags", "message"), [
    (["--online", "--budget-ms", "20"], "--budget-ms is the window mode's"),
    (["--online", "--stride-ms", "100"], "--stride-ms does not apply to --online"),
    (["--online", "--cpu-share", "0"], r"cpu share must be in \(0, 1\]"),
    (["--cpu-share", "0.5"], "--cpu-share budgets --online streams"),
])
def test_ffn_run_online_flags(bundle, video, flags, message) -> None:
    with pytest.raises(ConfigError, match=message):
        run(["--bundle", str(bundle), "--video", str(video), *flags])
