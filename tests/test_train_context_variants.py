"""ffn-train --context-clean / --context-teacher: the two variants of carried-state training.

--context-teacher's target (the same model on the clip alone) must be a target only: no gradient, no
change to the norms' running statistics, dropout off. --context-clean must give that share of the
batches no context, and leave the lengths drawn without it as they were.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ffn_edge import train as train_module
from ffn_edge.checkpoint import load_checkpoint
from ffn_edge.core.errors import ConfigError
from ffn_edge.data import SyntheticSet
from ffn_edge.train import TrainConfig, cli, resolve, train
from ffn_edge.train_context import as_teacher, draw_length, invariance_kl, tail_logits, teacher_logits

torch.set_num_threads(1)


def tiny(synth: SyntheticSet, out, **kw) -> TrainConfig:
    base = dict(dataset="frames", train_list=str(synth.train_list), val_list=str(synth.val_list),
                root=str(synth.root), width_mult=0.125, input_size=32, resize_shorter=32, batch_size=4, workers=0,
                epochs=1, max_batches=3, quiet=True, shift="causal", context=5, out=str(out))
    return TrainConfig(**{**base, **kw})


def _norm_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: b.clone() for k, b in model.named_buffers() if "running" in k or "num_batches" in k}


def test_the_teacher_forward_has_no_gradient_and_leaves_the_model_as_it_was(causal_ckpt_and_bundle):
    ckpt, _ = causal_ckpt_and_bundle
    model, meta = load_checkpoint(ckpt)
    model.train()
    n = model.frame_counts[1]
    clips = torch.randn(3, n, 3, meta.input_size, meta.input_size, generator=torch.Generator().manual_seed(0))
    before = _norm_buffers(model)
    assert before, "the tiny model has no norm buffers: the test could not fail"
    drops = [m for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
    seen = []

    def forward():
        seen.append((torch.is_grad_enabled(), [m.training for m in drops]))
        return [tail_logits(model, clips, 1, n)]

    (alone,) = teacher_logits(model, forward)
    assert seen == [(False, [False] * len(drops))]  # no autograd graph, dropout off during the forward
    assert not alone.requires_grad and alone.grad_fn is None
    after = _norm_buffers(model)
    assert all(torch.equal(before[k], after[k]) for k in before)  # running statistics and counters restored
    assert all(m.training for m in drops) and model.training  # back to training mode
    tail_logits(model, clips, 1, n)  # the control: the same forward outside as_teacher moves the statistics
    assert any(not torch.equal(before[k], b) for k, b in _norm_buffers(model).items())


def test_as_teacher_restores_the_statistics_when_the_forward_fails(causal_ckpt_and_bundle):
    model, meta = load_checkpoint(causal_ckpt_and_bundle[0])
    model.train()
    before = _norm_buffers(model)
    clips = torch.randn(2, 4, 3, meta.input_size, meta.input_size)
    with pytest.raises(RuntimeError, match="boom"), as_teacher(model):
        tail_logits(model, clips, 1, 4)
        raise RuntimeError("boom")
    assert all(torch.equal(before[k], b) for k, b in _norm_buffers(model).items())


def test_invariance_kl_pulls_the_context_label_only():
    student = torch.randn(4, 5, requires_grad=True)
    target = torch.randn(4, 5, requires_grad=True)
    assert invariance_kl([target.detach()], [target.detach()]).item() == pytest.approx(0.0, abs=1e-6)
    loss = invariance_kl([student], [target])
    assert loss.item() > 0
    loss.backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert target.grad is None  # no gradient to the clip-alone label
    with pytest.raises(ValueError, match="one clip-alone label per"):
        invariance_kl([student], [])


def test_training_with_the_teacher_runs_it_without_gradient_on_the_clips_alone(synth, tmp_path, monkeypatch):
    """Per batch with context: one no-grad forward of each sub-network on its n-frame clip, then the
    with-context forward with gradient; the KL term is in the loss."""
    calls, kl = [], []
    real_tail, real_kl = train_module.tail_logits, train_module.invariance_kl

    def spy_tail(model, clips, subnet, last):
        calls.append((torch.is_grad_enabled(), subnet, int(clips.shape[1]) - last))
        return real_tail(model, clips, subnet, last)

    def spy_kl(with_context, alone):
        assert all(not a.requires_grad for a in alone) and all(s.requires_grad for s in with_context)
        kl.append(float(real_kl(with_context, alone).detach()))
        return real_kl(with_context, alone)

    monkeypatch.setattr(train_module, "tail_logits", spy_tail)
    monkeypatch.setattr(train_module, "invariance_kl", spy_kl)
    train(tiny(synth, tmp_path, context_teacher=1.0))
    teacher = [c for c in calls if not c[0]]
    assert teacher, "the teacher never ran"
    assert all(length == 0 for _, _, length in teacher)  # the clips alone
    graded = [c for c in calls if c[0]]
    assert len(graded) == 9 and len(teacher) == 3 * sum(length > 0 for _, _, length in graded[::3])
    assert len(kl) == len(teacher) // 3 and all(v >= 0 for v in kl)


def test_the_teacher_weight_changes_the_trained_weights(synth, tmp_path):
    """Same seed, same batches: --context-teacher 5 trains other weights than without it (not ignored)."""
    train(tiny(synth, tmp_path / "plain"))
    train(tiny(synth, tmp_path / "teacher", context_teacher=5.0))
    a = load_checkpoint(tmp_path / "plain" / "last.safetensors")[0].state_dict()
    b = load_checkpoint(tmp_path / "teacher" / "last.safetensors")[0].state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())


def test_context_clean_gives_that_share_of_batches_no_context(synth, tmp_path, monkeypatch):
    rng, old = np.random.default_rng(3), np.random.default_rng(3)
    assert [draw_length(rng, 8, 0.0) for _ in range(50)] == [int(old.integers(0, 9)) for _ in range(50)]
    rng = np.random.default_rng(0)
    zeros = sum(draw_length(rng, 8, 0.5) == 0 for _ in range(2000))
    assert 0.5 * 2000 < zeros < (0.5 + 0.5 / 9 + 0.04) * 2000  # P + (1 - P) / 9 expected
    assert {draw_length(rng, 8, 1.0) for _ in range(100)} == {0}
    lengths = []
    real = train_module.tail_logits

    def spy(model, clips, subnet, last):
        lengths.append(int(clips.shape[1]) - last)
        return real(model, clips, subnet, last)

    monkeypatch.setattr(train_module, "tail_logits", spy)
    train(tiny(synth, tmp_path, context_clean=1.0))
    assert lengths == [0] * 9  # every batch without context


def test_the_variants_need_context_and_take_their_ranges(synth, tmp_path):
    for kw in (dict(context_clean=0.5), dict(context_teacher=1.0)):
        with pytest.raises(ConfigError, match="--context-clean/--context-teacher need --context MAX") as e:
            resolve(tiny(synth, tmp_path, context=0, **kw))
        assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match=r"--context-clean: must be a finite number in \[0, 1\], got \'1.5\'"):
        cli(["--shift", "causal", "--context", "4", "--context-clean", "1.5"])
    with pytest.raises(ConfigError, match=r"--context-teacher: must be a finite number in \[0, 1000\], got \'-1\'"):
        cli(["--shift", "causal", "--context", "4", "--context-teacher", "-1"])
