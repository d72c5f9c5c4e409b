"""benchmarks/converged.py: the --tiny smoke run writes the table, premise line and plots, a
rerun trains nothing; the FFN >= ST verdict and the premise check follow their definitions."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def load_converged() -> ModuleType:
    spec = importlib.util.spec_from_file_location("converged", ROOT / "benchmarks" / "converged.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["converged"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_tiny_converged_study_writes_table_and_plots(tmp_path: Path) -> None:
    converged = load_converged()
    out = tmp_path / "c"
    argv = ["--tiny", "--out", str(out), "--variants", "ffn_ce_td_ramp"]
    assert converged.main(argv) == 0
    report = (out / "converged.md").read_text()
    assert "**Premise:** premise ST4 < ST8 < ST16 (2 seeds)" in report
    for label in ("λ ramped", "Ensemble (ST 4+8+16)", "| 2* |", "| 20* |"):
        assert label in report
    for png in ("converged_anyframe.png", "converged_lmh.png"):
        assert (out / png).stat().st_size > 1000
    summary = json.loads((out / "converged.json").read_text())
    assert set(summary["variants"]) == {"ffn_ce_td_ramp"}
    assert all(v["seeds"] == 2 and len(v["anyframe"][0]) == 10 for v in summary["variants"].values())
    assert summary["missing"] == [] and len(summary["verdicts"]) == 1
    stamp = {p: p.stat().st_mtime_ns for p in out.rglob("last.safetensors")}
    assert converged.main(argv) == 0  # cached: nothing trains again
    assert stamp == {p: p.stat().st_mtime_ns for p in out.rglob("last.safetensors")}


def test_paper_recipe_run_takes_the_recipe_defaults(tmp_path: Path) -> None:
    converged = load_converged()
    args = converged.parse_args(["--out", str(tmp_path)])
    data = {"kind": "frames", "train_list": "t", "monitor_list": "m", "root": "r"}
    paper = converged.Run("ffn_paper_recipe", 0, (("method", "ffn"), ("recipe", "paper")))
    cfg = converged.run_config(paper, args, data, tmp_path, resume=False)
    assert (cfg.batch_size, cfg.lr, cfg.warmup_epochs, cfg.optimizer, cfg.weight_decay) == (None, None, None, "sgd",
                                                                                           5e-4)
    ramp = converged.Run("ffn_ce_td_ramp", 0, (("method", "ffn"), ("loss", "ce_td"), ("lam_ramp", "half")))
    cfg = converged.run_config(ramp, args, data, tmp_path, resume=False)
    assert (cfg.lam_ramp, cfg.batch_size, cfg.optimizer, cfg.recipe) == (args.epochs / 2, 16, "adamw", "project")


def result(top1: dict[int, float]) -> dict:
    frames = sorted(top1)
    return {"frames": frames, "top1": [top1[n] for n in frames], "num_videos": 10}


def test_premise_and_verdicts_follow_their_definitions() -> None:
    converged = load_converged()
    args = converged.parse_args(["--variants", "ffn", "ffn_ce_td"])
    frames = list(range(2, 21, 2))
    results = {}
    for s, (st4, st8, st16) in enumerate([(50, 70, 60), (52, 72, 64), (54, 74, 62)]):  # ST16 < ST8: premise fails
        for n, v in ((4, st4), (8, st8), (16, st16)):
            results[f"st{n}_s{s}"] = result({f: v for f in frames})
        results[f"ffn_s{s}"] = result({f: {4: st4 - 1, 8: st8 + 1, 16: st16 + 5}.get(f, 0) for f in frames})
        results[f"ffn_ce_td_s{s}"] = result({f: {4: st4 - 9, 8: st8, 16: st16}.get(f, 0) for f in frames})
    s = converged.summarise(args, results, frames)
    assert s["premise"]["holds"] is False and "FAILS" in s["premise"]["line"]
    assert s["variants"]["ffn"]["reaches_all"]  # -1 at 4F is within the std (2.0)
    assert not s["variants"]["ffn_ce_td"]["reaches_all"]  # -9 at 4F is beyond it
    assert s["variants"]["ffn_ce_td"]["reaches_st"] == {"4": False, "8": True, "16": True}
