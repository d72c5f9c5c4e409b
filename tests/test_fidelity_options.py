"""Model-config options for the released weights' authors' settings: UniFormer drop-path, Weight
Alteration init, TEA's MTA shift init (SlowFast's slow-frame rule: tests/test_arch3d.py)."""

from __future__ import annotations

import torch

from ffn_edge.models import ModelConfig, create_model


def test_uniformer_drop_path_only_in_training_and_rising_linearly() -> None:
    cfg = ModelConfig("uniformer_s", 5, width_mult=0.25, drop_path=0.2, dropout=0.0)
    m = create_model(cfg)
    rates = [b.drop_path.p for stage in m.stages for b in list(stage)[1:]]
    assert rates[0] == 0.0 and abs(rates[-1] - 0.2) < 1e-6 and rates == sorted(rates)
    x = torch.randn(2, 4, 3, 32, 32)
    m.eval()
    with torch.no_grad():
        assert torch.equal(m(x), m(x))  # eval: no stochastic depth
    m.train()
    torch.manual_seed(0)
    with torch.no_grad():
        a = m(x)
        b = m(x)
    assert not torch.equal(a, b)  # training: branches dropped at random


def test_weight_alteration_init_std() -> None:
    plain = create_model(ModelConfig("uniformer_s", 5, width_mult=0.25))
    authors = create_model(ModelConfig("uniformer_s", 5, width_mult=0.25, wa_init_std=1e-3))
    w0 = plain.stages[0][1].adapter.alteration.weight
    w1 = authors.stages[0][1].adapter.alteration.weight
    assert torch.all(w0 == 0) and 2e-4 < float(w1.detach().std()) < 5e-3


def test_tea_mta_shift_init_div() -> None:
    for div in (2, 4):
        m = create_model(ModelConfig("tea_resnet50", 5, width_mult=0.5, mta_shift_div=div))
        w = m.layer1[0].temporal[3].conv.weight.detach().view(-1, 3)
        fold = w.shape[0] // div
        assert torch.all(w[:fold, 2] == 1) and torch.all(w[fold : 2 * fold, 0] == 1)
        assert torch.all(w[2 * fold :, 1] == 1) and float(w.sum()) == w.shape[0]
