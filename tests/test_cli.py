"""ffn-run's bounded running summary, and one-line argparse errors in every CLI."""

from __future__ import annotations

import sys

import pytest
from ffn_edge.runtime.app.summary import RunningSummary
from ffn_edge.runtime.results import Prediction, StreamResult

from ffn_edge.core.errors import run_cli


def _result(i: int, frames: int, latency_ms: float, budget_ms: float | None, reasons: tuple[str, ...]) -> StreamResult:
    p = Prediction("a", 0, 0.9, [("a", 0.9)], frames, 0, latency_ms, ())
    within = None if budget_ms is None else latency_ms <= budget_ms
    return StreamResult(i, p, (0.0, 1.0), 30, frames, ",".join(reasons), budget_ms, within, (), reasons)


def test_running_summary_stays_bounded_and_reports_the_share_after_warmup():
    summary = RunningSummary(recent=100)
    for i in range(20_000):  # a long-running camera: memory must not grow with the decisions
        warm = i < 9
        latency = 50.0 if warm else (12.0 if i % 10 else 30.0)  # warm-up over budget; 1 in 10 over after
        summary.add(_result(i, (4, 8, 16)[i % 3], latency, 20.0, ("warmup",) if warm else ("budget",)))
    assert len(summary.recent) == 100 and len(summary.frames) == 3 and len(summary.reasons) == 2
    text = summary.report(20.0, "cpu")
    assert "20000 decisions" in text and "p95 of the last 100" in text and "max 50.00" in text
    within_after = sum(1 for i in range(9, 20_000) if i % 10)
    assert f"within 20 ms budget: {within_after}/20000" in text
    assert f"after warm-up: {within_after}/19991" in text
    assert RunningSummary().report(None, "cpu") == "ffn-run: 0 decisions (backend cpu)"


def _cli(name: str):
    if name == "ffn-run":
        from ffn_edge.runtime.app.cli import run
        return run
    if name == "ffn-export":
        from ffn_edge.export.cli import run
        return run
    if name == "ffn-train":
        from ffn_edge.train import cli
        return cli
    from ffn_edge.evaluate import cli
    return cli


@pytest.mark.parametrize(("name", "argv"), [
    *[(name, ["--no-such-flag"]) for name in ("ffn-run", "ffn-export", "ffn-train", "ffn-eval")],
    ("ffn-run", []), ("ffn-export", []), ("ffn-eval", []),  # required flags missing
    ("ffn-train", ["--epochs", "many"]), ("ffn-run", ["--bundle", "b", "--video", "v", "--frames", "x"]),
])
def test_every_cli_reports_a_bad_command_line_in_one_line(name, argv, capsys):
    main = _cli(name)
    with pytest.raises(SystemExit) as exit_info:
        run_cli(name, lambda: main(argv))
    assert exit_info.value.code == 2
    out = capsys.readouterr()
    assert out.out == "" and len(out.err.strip().splitlines()) == 1, out.err
    assert out.err.startswith(f"{name}: error: ")
    assert "usage:" not in out.err


def test_parser_is_torch_free():
    import subprocess

    code = "import sys; sys.modules['torch'] = None; import ffn_edge.core.argparsing, ffn_edge.runtime.app.cli"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
