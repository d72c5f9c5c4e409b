"""ffn-run stopped from outside: SIGTERM (docker stop, systemd) ends the run like Ctrl-C.

The --output video is finalised (OpenCV reads it back), the summary is printed, and the exit code
names the signal (143 for SIGTERM, 130 for SIGINT).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from ffn_edge.export.bundle import export_bundle

from ffn_edge.checkpoint import CheckpointMeta, save_checkpoint
from ffn_edge.models import ModelConfig, create_model

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("stop")
    cfg = ModelConfig("tsm_resnet18", 3, frame_counts=(2, 4), width_mult=0.0625)
    ckpt = tmp / "m.safetensors"
    save_checkpoint(ckpt, create_model(cfg).eval(), CheckpointMeta(cfg, ["a", "b", "c"], input_size=32,
                                                                   resize_shorter=36))
    return export_bundle(ckpt, (2, 4), tmp / "m.ffn", n_verify=1)


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("video") / "long.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    rng = np.random.default_rng(0)
    for _ in range(600):  # 60 s at 10 fps, played in real time: still running when the signal comes
        writer.write(rng.integers(0, 255, (48, 64, 3), np.uint8))
    writer.release()
    return path


def _ctrl_c_default() -> None:
    """The child takes Ctrl-C as a terminal's foreground job does. A job started in the background by a
    non-interactive shell inherits SIGINT ignored (nohup semantics, which ffn-run keeps): the test would
    then measure how pytest was launched, not ffn-run."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("signum,code,said", [(signal.SIGTERM, 143, "stopped by SIGTERM"),
                                              (signal.SIGINT, 130, "interrupted")])
def test_signal_finalises_the_video_prints_the_summary_and_names_the_exit(bundle, video, tmp_path, signum, code,
                                                                         said):
    out = tmp_path / "annotated.mp4"
    proc = subprocess.Popen(
        [sys.executable, "-c", "from ffn_edge.runtime.app.cli import main; main()", "--bundle", str(bundle),
         "--video", str(video), "--realtime", "--frames", "2", "--window-s", "1", "--stride-ms", "500",
         "--output", str(out), "--json", "--threads", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
        preexec_fn=_ctrl_c_default)
    first: list[str] = []
    reader = threading.Thread(target=lambda: first.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(120)  # the first decision: the run is under way
    assert first and first[0].startswith("{"), proc.stderr.read() if proc.poll() is not None else "no decision"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert f"ffn-run: {said}" in err
    assert "decisions on" in err  # the summary
    capture = cv2.VideoCapture(str(out))
    frames = 0
    while capture.read()[0]:
        frames += 1
    assert frames > 0, "the --output video is not readable"
