"""ffn-train --context-teacher CKPT: a frozen clip-trained teacher's label on the clip alone as a target.

The teacher must stay frozen (eval mode, no gradients, its weights and statistics untouched), label the
clips alone (no context frames), reach the loss (its weight changes the trained weights; weight 0 trains
exactly the weights of --context alone), and be refused when it is not the student's network.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ffn_edge import train as train_module
from ffn_edge.checkpoint import load_checkpoint
from ffn_edge.core.errors import ConfigError
from ffn_edge.data import SyntheticSet
from ffn_edge.train import TrainConfig, cli, resolve, train
from ffn_edge.train_context import teacher_kl

torch.set_num_threads(1)


def tiny(synth: SyntheticSet, out: Path, **kw) -> TrainConfig:
    base = dict(dataset="frames", train_list=str(synth.train_list), val_list=str(synth.val_list),
                root=str(synth.root), width_mult=0.125, input_size=32, resize_shorter=32, batch_size=4, workers=0,
                epochs=1, max_batches=3, quiet=True, shift="causal", out=str(out))
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def teacher_ckpt(synth, tmp_path_factory) -> Path:
    """A tiny causal model trained on clips: the teacher and the student's --init."""
    out = tmp_path_factory.mktemp("teacher")
    train(tiny(synth, out, max_batches=2))
    return out / "last.safetensors"


def _student(synth: SyntheticSet, out: Path, teacher: Path, **kw) -> TrainConfig:
    return tiny(synth, out, context=5, init=str(teacher), context_teacher=str(teacher), **kw)


def test_the_teacher_is_frozen_and_labels_the_clips_alone(synth, tmp_path, teacher_ckpt, monkeypatch):
    seen, targets = {}, []
    real_load, real_labels, real_kl = train_module.load_teacher, train_module.teacher_labels, train_module.teacher_kl

    def spy_load(*a, **kw):
        seen["teacher"] = real_load(*a, **kw)
        return seen["teacher"]

    def spy_labels(teacher, clips):
        targets.append([int(c.shape[1]) for c in clips])
        return real_labels(teacher, clips)

    def spy_kl(student, target):
        assert all(s.requires_grad for s in student) and all(not t.requires_grad for t in target)
        return real_kl(student, target)

    monkeypatch.setattr(train_module, "load_teacher", spy_load)
    monkeypatch.setattr(train_module, "teacher_labels", spy_labels)
    monkeypatch.setattr(train_module, "teacher_kl", spy_kl)
    train(_student(synth, tmp_path, teacher_ckpt))
    teacher = seen["teacher"]
    assert targets == [[4, 8, 16]] * 3  # every batch, each sub-network's clip alone: no context frames
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    assert all(p.grad is None for p in teacher.parameters())
    saved = load_checkpoint(teacher_ckpt)[0].state_dict()
    assert all(torch.equal(saved[k], v) for k, v in teacher.state_dict().items())  # weights and statistics
    trained = load_checkpoint(tmp_path / "last.safetensors")[0].state_dict()
    assert any(not torch.equal(saved[k], trained[k]) for k in saved if saved[k].is_floating_point())


def test_the_teacher_weight_reaches_the_trained_weights(synth, tmp_path, teacher_ckpt):
    """Same seed and batches: weight 0 trains --context alone's weights exactly, weight 5 other weights."""
    train(tiny(synth, tmp_path / "plain", context=5, init=str(teacher_ckpt)))
    train(_student(synth, tmp_path / "w0", teacher_ckpt, context_teacher_weight=0.0))
    train(_student(synth, tmp_path / "w5", teacher_ckpt, context_teacher_weight=5.0))
    plain, w0, w5 = (load_checkpoint(tmp_path / d / "last.safetensors")[0].state_dict() for d in ("plain", "w0", "w5"))
    assert all(torch.equal(plain[k], w0[k]) for k in plain)
    assert any(not torch.equal(plain[k], w5[k]) for k in plain if plain[k].is_floating_point())


def test_teacher_kl_is_zero_on_equal_labels_and_pulls_the_student_only():
    student = torch.randn(4, 5, requires_grad=True)
    target = torch.randn(4, 5, requires_grad=True)
    assert teacher_kl([target.detach()], [target.detach()]).item() == pytest.approx(0.0, abs=1e-6)
    loss = teacher_kl([student], [target])
    loss.backward()
    assert loss.item() > 0 and student.grad.abs().sum() > 0 and target.grad is None
    with pytest.raises(ValueError, match="one teacher label per"):
        teacher_kl([student], [])


def test_a_teacher_of_another_network_is_refused_in_one_line(synth, tmp_path, teacher_ckpt):
    other = tmp_path / "wide"
    train(tiny(synth, other, width_mult=0.25, max_batches=1))
    with pytest.raises(ConfigError, match=r"--context-teacher .*: not the model being trained: width_mult 0\.25 "
                       r"\(student 0\.125\)") as e:
        train(tiny(synth, tmp_path / "s", context=5, init=str(teacher_ckpt),
                   context_teacher=str(other / "last.safetensors")))
    assert "\n" not in str(e.value)


def test_the_teacher_needs_context(synth, tmp_path, teacher_ckpt):
    with pytest.raises(ConfigError, match="--context-teacher needs --context MAX"):
        resolve(tiny(synth, tmp_path, context_teacher=str(teacher_ckpt)))
    with pytest.raises(ConfigError, match=r"--context-teacher-weight: must be .*got '-1"):
        cli(["--shift", "causal", "--context", "4", "--context-teacher", str(teacher_ckpt),
             "--context-teacher-weight", "-1"])
