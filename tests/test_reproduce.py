"""Smoke test of benchmarks/reproduce.py at --tiny size: every section runs, the report and plots exist,
the Markdown tables are well formed, and a second invocation reuses the cached runs."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
PNGS = ("fig1_tfd.png", "fig2_nearby.png", "fig8_anyframe.png", "fig_ablation.png")


def load_reproduce() -> ModuleType:
    spec = importlib.util.spec_from_file_location("reproduce", ROOT / "benchmarks" / "reproduce.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["reproduce"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def tables(markdown: str) -> list[list[list[str]]]:
    """Every Markdown table as rows of cells (header first, separator dropped)."""
    found, current = [], []
    for line in [*markdown.splitlines(), ""]:
        if line.startswith("|"):
            current.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif current:
            found.append(current)
            current = []
    for t in found:
        assert all(re.fullmatch(r"-+", c) for c in t[1]), t[1]
        del t[1]
    return found


@pytest.fixture(autouse=True)
def _threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)  # reproduce.main sets the thread count


@pytest.mark.slow
def test_tiny_reproduction_writes_report_and_plots(tmp_path: Path) -> None:
    reproduce = load_reproduce()
    out = tmp_path / "repro"
    assert reproduce.main(["--tiny", "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    for png in PNGS:
        assert (out / png).stat().st_size > 1000, png
        assert png in report
    for heading in ("Table 1 analog", "Fig. 1 / Fig. 2 analog", "Fig. 8 analog", "Table 4 analog", "Claim checks"):
        assert heading in report
    parsed = tables(report)
    for t in parsed:  # every row has as many cells as the header
        assert all(len(row) == len(t[0]) for row in t), t
    table1 = next(t for t in parsed if t[0][0] == "method" and "GFLOPs 4F" in t[0])
    names = [row[0] for row in table1[1:]]
    assert any("Ensemble" in n for n in names) and names[-1] == "FFN" and len(names) == 7
    for row in table1[1:]:
        for cell in row[3:]:  # GFLOPs and top-1 cells are numbers
            float(cell.split(" ")[0])
    anyframe = next(t for t in parsed if t[0][:3] == ["frames", "FFN", "ST (nearest)"])
    assert [row[0] for row in anyframe[1:]] == ["2*", "4", "6", "8", "10", "12", "14", "16", "18*", "20*"]
    ablation = next(t for t in parsed if t[0][0] == "method" and t[0][1] == "params (M)")
    assert len(ablation) == 1 + 6  # ST, four ablations, FFN
    assert "Incomplete" not in report

    # Rerun: every run is cached (finished checkpoint + eval.json), nothing trains again.
    stamp = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("last*.safetensors")}
    assert reproduce.main(["--tiny", "--out", str(out), "--only", "tfd"]) == 0
    assert stamp == {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("last*.safetensors")}
    assert "Table 1 analog" not in (out / "report.md").read_text()


@pytest.mark.slow
def test_report_only_lists_missing_runs(tmp_path: Path) -> None:
    reproduce = load_reproduce()
    out = tmp_path / "repro"
    assert reproduce.main(["--tiny", "--out", str(out), "--only", "tfd"]) == 0
    assert reproduce.main(["--tiny", "--out", str(out), "--report-only"]) == 0
    report = (out / "report.md").read_text()
    assert "Incomplete" in report and "ffn_s0" in report and "Fig. 1 / Fig. 2 analog" in report
