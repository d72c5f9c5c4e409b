"""CUDA training set-up: device before the NCCL group (bound with device_id), clipping under AMP as an option."""

from __future__ import annotations

import pytest
import torch

from ffn_edge import train as train_mod
from ffn_edge.train import TrainConfig, build_parser, clips_gradients, init_distributed


def test_nccl_group_is_joined_after_selecting_the_gpu_and_bound_to_it(monkeypatch):
    calls: list[tuple] = []
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.append(("set_device", str(d))))
    monkeypatch.setattr(train_mod.dist, "init_process_group",
                        lambda **kw: calls.append(("init", kw["backend"], str(kw.get("device_id")))))
    assert init_distributed(True, 3, ddp=True) == torch.device("cuda:3")
    assert calls == [("set_device", "cuda:3"), ("init", "nccl", "cuda:3")]
    calls.clear()
    assert init_distributed(False, 0, ddp=True) == torch.device("cpu")
    assert calls == [("init", "gloo", "None")]
    calls.clear()
    init_distributed(True, 0, ddp=False)
    assert calls == [("set_device", "cuda:0")]


@pytest.mark.parametrize("amp,flag,clips", [(None, False, True), (torch.float16, False, False),
                                            (torch.bfloat16, False, False), (torch.float16, True, True)])
def test_clipping_under_amp_is_a_stated_option(amp, flag, clips):
    assert clips_gradients(TrainConfig(clip_grad=20.0, clip_grad_amp=flag), amp) is clips
    assert clips_gradients(TrainConfig(clip_grad=0.0, clip_grad_amp=True), amp) is False


def test_clip_grad_amp_is_on_the_command_line():
    assert build_parser().parse_args(["--clip-grad-amp"]).clip_grad_amp is True
    assert build_parser().parse_args([]).clip_grad_amp is False
