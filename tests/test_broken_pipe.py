"""stdout closed by its reader (``ffn-run --json | head -1``): every CLI exits quietly with EXIT_BROKEN_PIPE."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from ffn_edge.export import export_bundle

from ffn_edge.checkpoint import CheckpointMeta, save_checkpoint
from ffn_edge.core.errors import EXIT_BROKEN_PIPE
from ffn_edge.models import ModelConfig, create_model


def _with_stdout_closed(args: list[str]) -> tuple[int, str]:
    """Run ``args`` with a stdout pipe whose read end is closed before the program writes anything."""
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    p.stdout.close()
    _, err = p.communicate(timeout=120)
    return p.returncode, err


PRINTS_MANY = """
from ffn_edge.core.errors import run_cli
def main():
    for i in range(100000):
        print(f'{{"decision": {i}}}')
run_cli("demo-cli", main)
"""


def test_a_cli_whose_stdout_closes_mid_output_exits_quietly():
    rc, err = _with_stdout_closed([sys.executable, "-c", PRINTS_MANY])
    assert (rc, err) == (EXIT_BROKEN_PIPE, "")


def test_a_pipe_closed_after_the_last_print_is_caught_before_exit():
    """Buffered output that only fails at the final flush must not end in 'Exception ignored' (exit 120)."""
    code = "from ffn_edge.core.errors import run_cli\nrun_cli('x', lambda: print('one line'))"
    rc, err = _with_stdout_closed([sys.executable, "-c", code])
    assert (rc, err) == (EXIT_BROKEN_PIPE, "")


@pytest.fixture(scope="module")
def bundle_and_video(tmp_path_factory) -> tuple[Path, Path]:
    torch.manual_seed(0)
    cfg = ModelConfig("tsm_mobilenetv2", 3, frame_counts=(4, 8), width_mult=0.35)
    d = tmp_path_factory.mktemp("pipe")
    save_checkpoint(d / "m.safetensors", create_model(cfg).eval(), CheckpointMeta(cfg, ["a", "b", "c"], 64, 72))
    bundle = Path(export_bundle(d / "m.safetensors", (4, 8), d / "m.ffn", verify=False))
    video = d / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 30, (96, 72))
    for i in range(60):
        writer.write(np.full((72, 96, 3), (i * 4) % 255, np.uint8))
    writer.release()
    return bundle, video


def test_ffn_run_json_into_a_closed_pipe_exits_quietly(bundle_and_video):
    bundle, video = bundle_and_video
    rc, err = _with_stdout_closed([sys.executable, "-m", "ffn_edge.runtime.app.cli", "--bundle", str(bundle), "--video",
                                   str(video), "--budget-ms", "5000", "--stride-ms", "200", "--json",
                                   "--threads", "1"])
    assert rc == EXIT_BROKEN_PIPE
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err
