"""Progress for long jobs: a bar on a terminal, a line per 10 % elsewhere; workers default to the usable CPUs."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import numpy as np
import pytest

from ffn_edge.core.progress import Progress, progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_every_ten_percent_off_a_terminal():
    out = io.StringIO()
    assert list(progress(range(200), 200, "ffn-eval", stream=out)) == list(range(200))
    lines = out.getvalue().splitlines()
    assert [ln.split(" %")[0] for ln in lines] == [f"ffn-eval: {p}" for p in range(10, 101, 10)]
    assert lines[-1].startswith("ffn-eval: 100 % (200/200, ")


def test_few_steps_give_a_line_each_and_end_at_100():
    out = io.StringIO()
    with Progress(3, "calib", stream=out) as p:
        for _ in range(3):
            p.update()
    assert [ln.split(" (")[0] for ln in out.getvalue().splitlines()] == ["calib: 33 %", "calib: 66 %", "calib: 100 %"]


def test_a_terminal_gets_a_tqdm_bar_not_lines():
    pytest.importorskip("tqdm")
    out = Terminal()
    for _ in progress(range(50), 50, "synthetic set", stream=out):
        pass
    text = out.getvalue()
    assert "\r" in text and "synthetic set:" in text and "/50 [" in text  # tqdm's bar (cleared at the end)
    assert " % (" not in text


def test_disabled_or_empty_prints_nothing():
    out = io.StringIO()
    list(progress(range(5), 5, "x", stream=out, enabled=False))
    list(progress([], 0, "y", stream=out))
    assert out.getvalue() == ""


def test_synthetic_set_reports_progress_per_clip(tmp_path, capsys):
    from ffn_edge.data import make_synthetic

    make_synthetic(tmp_path, num_classes=2, train_per_class=3, val_per_class=2, frames=8, size=16,
                   progress_desc="synthetic set")
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("synthetic set: 100 % (10/10, ") and len(err) == 10
    make_synthetic(tmp_path / "quiet", num_classes=2, train_per_class=1, val_per_class=1, frames=8, size=16)
    assert capsys.readouterr().err == ""


def test_int8_calibration_counts_every_clip_it_ran():
    pytest.importorskip("onnx")
    from ffn_edge.export.quantize import _Clips

    out = io.StringIO()
    with Progress(4, "INT8 calibration f8.onnx", stream=out) as report:
        reader = _Clips(np.zeros((4, 2, 3, 8, 8), np.float32), report)
        while reader.get_next() is not None:
            assert report.done < 4  # a clip counts once it has been run: when the next one is asked for
    assert report.done == 4 and out.getvalue().splitlines()[-1].startswith("INT8 calibration f8.onnx: 100 %")


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs sched_setaffinity (Linux)")
@pytest.mark.parametrize("expr", [
    "__import__('ffn_edge.evaluate', fromlist=['x']).build_parser().parse_args(['--ckpt', 'c']).workers",
    "__import__('ffn_edge.train', fromlist=['x']).TrainConfig().workers",
])
def test_workers_default_to_the_cpus_the_process_may_use(expr):
    code = f"import os; os.sched_setaffinity(0, {{min(os.sched_getaffinity(0))}}); print({expr})"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"  # one CPU allowed: one worker (torch warns above that)
