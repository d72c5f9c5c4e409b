"""CUDA training set-up: device before the NCCL group (bound with device_id), clipping under AMP as an option."""

from __future__ import annotations

import numpy as np
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


# -- on a real GPU (skipped without one): ./run.sh test-gpu ----------------------------------------


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from ffn_edge.data import make_synthetic

    return make_synthetic(tmp_path_factory.mktemp("synthetic"), num_classes=4, train_per_class=4, val_per_class=2,
                          frames=16, size=32, seed=0)


def _cuda_config(synth, out, **kw) -> TrainConfig:
    return TrainConfig(**{**dict(dataset="frames", train_list=str(synth.train_list), val_list=str(synth.val_list),
                                 root=str(synth.root), width_mult=0.25, input_size=32, resize_shorter=32,
                                 batch_size=4, workers=0, epochs=2, quiet=True, device="cuda", out=str(out)), **kw})


@pytest.mark.gpu
@pytest.mark.parametrize("amp", ["none", "bf16", "fp16"])
def test_training_on_cuda_under_each_precision(synth, tmp_path, amp):
    from ffn_edge.checkpoint import load_checkpoint

    rec = train_mod.train(_cuda_config(synth, tmp_path, amp=amp))
    assert np.isfinite(rec["train_loss"]) and rec["peak_mem_mb"] > 0
    _, meta = load_checkpoint(tmp_path / "last.safetensors")
    assert (meta.extra["scaler"] is not None) == (amp == "fp16")  # GradScaler only for fp16


@pytest.mark.gpu
def test_evaluation_on_cuda_matches_the_cpu(synth, tmp_path):
    from torch.utils.data import DataLoader

    from ffn_edge.checkpoint import load_checkpoint
    from ffn_edge.data import VideoDataset
    from ffn_edge.evaluate import evaluate

    train_mod.train(_cuda_config(synth, tmp_path))
    model, meta = load_checkpoint(tmp_path / "best.safetensors")
    val = VideoDataset(synth.val_list, synth.root, kind="frames", frame_counts=model.frame_counts, train=False,
                       input_size=32, resize_shorter=32, mean=meta.mean, std=meta.std)
    cpu = evaluate([model], DataLoader(val, batch_size=2), model.frame_counts)
    gpu = evaluate([model.cuda()], DataLoader(val, batch_size=2), model.frame_counts)
    assert gpu["top1"] == cpu["top1"] and gpu["num_videos"] == cpu["num_videos"]


@pytest.mark.parametrize("arch", ["x3d_s", "tsm_resnet18"])
def test_channels_last_takes_3d_convolutions_too(arch):
    from ffn_edge.models import ModelConfig, create_model
    from ffn_edge.train import to_channels_last

    torch.manual_seed(0)
    model = create_model(ModelConfig(arch, 3, frame_counts=(4,), width_mult=0.125)).eval()
    clip = torch.randn(1, 4, 3, 32, 32)
    with torch.no_grad():
        want = model(clip)
        to_channels_last(model)
        got = model(clip)
    weights = [p for p in model.parameters() if p.dim() in (4, 5)]
    assert weights and all(p.is_contiguous(memory_format=torch.channels_last if p.dim() == 4
                                           else torch.channels_last_3d) for p in weights)
    assert (arch == "x3d_s") == any(p.dim() == 5 for p in weights)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.parametrize("arch", ["x3d_s", "tsm_resnet18"])
def test_channels_last_training_on_cuda(synth, tmp_path, arch):
    rec = train_mod.train(_cuda_config(synth, tmp_path, arch=arch, width_mult=0.125, channels_last=True, amp="bf16",
                                       frame_counts=(4, 8), epochs=1))
    assert np.isfinite(rec["train_loss"])


def test_training_steps_do_not_wait_for_the_loss_every_step(synth, tmp_path, monkeypatch):
    """``loss.item()`` blocks until the GPU is done: the per-step loss is summed on the device instead."""
    calls: list[int] = []
    item = torch.Tensor.item
    monkeypatch.setattr(torch.Tensor, "item", lambda self: (calls.append(1), item(self))[1])
    cfg = _cuda_config(synth, tmp_path, device="cpu", epochs=2, width_mult=0.125, frame_counts=(2, 4))
    rec = train_mod.train(cfg)
    steps = 2 * (4 * 4 // 4)
    assert np.isfinite(rec["train_loss"]) and len(calls) < steps, len(calls)


def test_cudnn_benchmark_is_an_option_free_to_change_on_resume():
    assert build_parser().parse_args(["--cudnn-benchmark"]).cudnn_benchmark is True
    assert build_parser().parse_args([]).cudnn_benchmark is False
    assert "cudnn_benchmark" in train_mod.RESUME_FREE


@pytest.mark.gpu
def test_cudnn_benchmark_is_applied_on_cuda(synth, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    train_mod.train(_cuda_config(synth, tmp_path, epochs=1, cudnn_benchmark=True))
    assert torch.backends.cudnn.benchmark is True
