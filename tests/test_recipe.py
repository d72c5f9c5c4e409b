"""ffn-train --recipe paper: each difference from the project's recipe is applied, user flags
still win, and the ce_td loss / λ ramp are what they say. Tiny model on a tiny set: a few seconds."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ffn_edge import train as train_mod
from ffn_edge.checkpoint import load_checkpoint, read_meta
from ffn_edge.data import SyntheticSet
from ffn_edge.layers import WeightAlteration
from ffn_edge.losses import distill_kl, ffn_loss
from ffn_edge.recipes import RECIPES
from ffn_edge.train import TrainConfig, build_models, lam_at, lr_at, resolve, train

torch.set_num_threads(1)


def tiny(synth: SyntheticSet, out: Path, **kw) -> TrainConfig:
    base = dict(dataset="frames", train_list=str(synth.train_list), val_list=str(synth.val_list),
                root=str(synth.root), width_mult=0.125, input_size=32, resize_shorter=32, workers=0, epochs=1,
                quiet=True, out=str(out))
    return TrainConfig(**{**base, **kw})


def test_recipe_defaults_fill_only_what_the_user_left_out() -> None:
    paper = resolve(TrainConfig(recipe="paper"))
    assert (paper.batch_size, paper.lr, paper.warmup_epochs) == (32, 0.01, 0.0)
    project = resolve(TrainConfig())
    assert (project.batch_size, project.lr, project.warmup_epochs) == (8, 0.01, 1.0)
    mine = resolve(TrainConfig(recipe="paper", batch_size=4, lr=0.1, warmup_epochs=2.0))
    assert (mine.batch_size, mine.lr, mine.warmup_epochs) == (4, 0.1, 2.0)


def test_paper_recipe_initialises_classifier_and_weight_alteration() -> None:
    torch.manual_seed(0)
    _, [paper] = build_models(resolve(TrainConfig(recipe="paper", width_mult=0.25)), 10, (4, 8, 16))
    head = paper.classifier_head()
    assert abs(head.weight.std().item() - 0.001) < 2e-4 and head.bias.abs().max().item() == 0.0
    was = [m for m in paper.modules() if isinstance(m, WeightAlteration)]
    assert was
    for wa in was:  # Kaiming fan-out of a depth-wise 1x1 conv: std sqrt(2/C), each sub-network its own draw
        n, c = wa.weight.shape
        expected = math.sqrt(2.0 / c)
        assert 0.6 * expected < wa.weight.std().item() < 1.4 * expected, (c, wa.weight.std().item())
        assert not torch.equal(wa.weight[0], wa.weight[1])
    all_w = torch.cat([wa.weight.flatten() / math.sqrt(2.0 / wa.weight.shape[1]) for wa in was])
    assert abs(all_w.std().item() - 1.0) < 0.1  # pooled over layers, the normalised draws are N(0, 1)
    _, [project] = build_models(resolve(TrainConfig(width_mult=0.25)), 10, (4, 8, 16))
    assert all(m.weight.eq(0).all() for m in project.modules() if isinstance(m, WeightAlteration))
    assert project.classifier_head().weight.std().item() > 0.01  # PyTorch's default init, not N(0, 0.001)


def test_step_schedule_drops_at_40_and_80_percent_without_warmup() -> None:
    cfg = resolve(TrainConfig(recipe="paper", epochs=50))
    spe = 10
    total = 50 * spe
    lr = {e: lr_at(e * spe, total, 0, cfg) for e in (0, 19, 20, 39, 40, 49)}
    assert lr[0] == lr[19] == 0.01  # no warm-up: full lr from the first step
    assert lr_at(20 * spe - 1, total, 0, cfg) == 0.01
    assert math.isclose(lr[20], 1e-3) and math.isclose(lr[39], 1e-3)
    assert math.isclose(lr[40], 1e-4) and math.isclose(lr[49], 1e-4)
    project = resolve(TrainConfig(epochs=50))  # warm-up then cosine: neither flat nor stepped
    assert lr_at(0, total, spe, project) == pytest.approx(0.001)
    assert 1e-3 < lr_at(20 * spe, total, spe, project) < 0.01


@pytest.mark.slow
def test_paper_recipe_optimizer_groups_get_the_classifier_multipliers(synth: SyntheticSet, tmp_path: Path) -> None:
    train(tiny(synth, tmp_path / "p", recipe="paper", lr=0.02, batch_size=2, max_batches=1))
    _, meta, _ = load_checkpoint(tmp_path / "p" / "last.safetensors", with_extra=True)
    groups = meta.extra["optimizer"]["param_groups"]
    assert [(g["lr"], g["lr_mult"], g["weight_decay"]) for g in groups] == [
        (0.02, 1.0, 5e-4), (0.02, 1.0, 0.0), (pytest.approx(0.1), 5.0, 5e-4), (pytest.approx(0.2), 10.0, 0.0)]
    assert [len(g["params"]) for g in groups][2:] == [1, 1]  # classifier weight, classifier bias
    train(tiny(synth, tmp_path / "q", batch_size=2, max_batches=1, warmup_epochs=0.0))
    _, meta, _ = load_checkpoint(tmp_path / "q" / "last.safetensors", with_extra=True)
    assert [g["lr"] for g in meta.extra["optimizer"]["param_groups"]] == [0.01, 0.01]


@pytest.mark.parametrize(("recipe", "best_epoch"), [("paper", 2), ("project", 1)])
@pytest.mark.slow
def test_best_checkpoint_metric(synth: SyntheticSet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                recipe: str, best_epoch: int) -> None:
    """Epoch 1 wins on the mean over 4/8/16, epoch 2 on 16-frame accuracy (scripted validation)."""
    script = iter([[90.0, 90.0, 10.0], [10.0, 10.0, 50.0]])

    def fake_evaluate(_models, _loader, frames):
        return {"frames": list(frames), "top1": next(script), "top5": [100.0] * len(frames)}

    monkeypatch.setattr(train_mod, "evaluate", fake_evaluate)
    train(tiny(synth, tmp_path, recipe=recipe, epochs=2, batch_size=2, max_batches=1))
    assert read_meta(tmp_path / "best.safetensors").extra["epoch"] == best_epoch


def test_ce_td_adds_ce_on_every_student() -> None:
    logits = [torch.randn(4, 5) for _ in range(3)]
    y = torch.tensor([0, 1, 2, 3])
    expected = sum(F.cross_entropy(x, y) for x in logits) + 0.5 * distill_kl(logits[:2], logits[2])
    torch.testing.assert_close(ffn_loss(logits, y, lam=0.5, ce_all=True), expected)
    assert ffn_loss(logits, y, lam=0.5) < expected  # the paper's loss has CE on H only


def test_lam_ramp_rises_linearly_then_stays() -> None:
    cfg = TrainConfig(lam=2.0, lam_ramp=2.0)
    assert lam_at(0, 10, cfg) == pytest.approx(0.1)
    assert lam_at(9, 10, cfg) == pytest.approx(1.0)
    assert lam_at(19, 10, cfg) == lam_at(500, 10, cfg) == 2.0
    assert lam_at(0, 10, TrainConfig(lam=2.0)) == 2.0


@pytest.mark.parametrize("argv", [["--recipe", "bogus"], ["--method", "st", "--loss", "ce_td"],
                                  ["--recipe", "paper", "--batch-size", "0"]])
def test_bad_recipe_options_are_one_line_errors(argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "argv", ["ffn-train", "--out", str(tmp_path), "--quiet", *argv])
    with pytest.raises(SystemExit) as e:
        train_mod.main()
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "synthetic").exists()  # rejected before any work


def test_one_and_two_epoch_step_runs_start_at_full_lr() -> None:
    for epochs in (1, 2):
        cfg = resolve(TrainConfig(recipe="paper", epochs=epochs))
        assert lr_at(0, epochs * 5, 0, cfg) == 0.01


def test_recipe_table_is_the_only_source_of_the_defaults() -> None:
    fields = {f.name: f.default for f in train_mod.dataclasses.fields(TrainConfig)}
    assert fields["batch_size"] is None and fields["lr"] is None and fields["warmup_epochs"] is None
    assert set(RECIPES) == {"project", "paper"}
