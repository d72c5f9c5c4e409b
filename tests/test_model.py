import threading

import pytest
import torch
from torch import nn

from ffn_edge.layers import SpecialisedNorm, WeightAlteration, temporal_shift
from ffn_edge.models import MODELS, ModelConfig, create_model, load_pretrained, make_frame_flexible

torch.set_num_threads(2)
SMALL = {"tsm_resnet18": 0.25, "tsm_resnet34": 0.125, "tsm_resnet50": 0.125, "tsm_mobilenetv2": 0.35,
         "slowfast_r50": 0.125, "x3d_s": 0.25, "tea_resnet50": 0.125, "uniformer_s": 0.25}


def small(arch: str, **kw) -> nn.Module:
    return create_model(ModelConfig(arch, 7, width_mult=SMALL[arch], **kw))


@pytest.mark.parametrize("arch", sorted(MODELS))
def test_shapes_at_several_frame_counts(arch: str) -> None:
    m = small(arch).eval()
    for t in (1, 3, 4, 8, 16):
        assert m(torch.randn(2, t, 3, 32, 32)).shape == (2, 7)


def test_temporal_shift_moves_channels_one_frame() -> None:
    x = torch.arange(3.0).view(3, 1, 1, 1).expand(3, 8, 1, 1).contiguous()  # frame t has value t
    y = temporal_shift(x, 3, shift_div=8).view(3, 8)
    assert y[:, 0].tolist() == [1, 2, 0]  # frame t sees t+1, zero past the end
    assert y[:, 1].tolist() == [0, 0, 1]  # frame t sees t-1
    assert y[:, 2:].equal(x.view(3, 8)[:, 2:])


def _stats(m: nn.Module, k: int) -> list[torch.Tensor]:
    return [s.norms[k].running_mean.clone() for s in m.modules() if isinstance(s, SpecialisedNorm)]


def test_running_one_subnet_leaves_others_statistics() -> None:
    m = small("tsm_resnet18").train()
    before = {k: _stats(m, k) for k in range(3)}
    m(torch.randn(2, 4, 3, 32, 32))  # 4 frames -> sub-network 0
    after = {k: _stats(m, k) for k in range(3)}
    assert not all(a.equal(b) for a, b in zip(before[0], after[0], strict=True))
    for k in (1, 2):
        assert all(a.equal(b) for a, b in zip(before[k], after[k], strict=True))


def test_weight_alteration_is_identity_at_init() -> None:
    plain = MODELS["tsm_resnet18"](ModelConfig("tsm_resnet18", 7, width_mult=0.25)).eval()
    x = torch.randn(1, 8, 3, 32, 32)
    ref = plain(x)
    ffn = make_frame_flexible(plain, (4, 8, 16)).eval()
    assert sum(isinstance(m, WeightAlteration) for m in ffn.modules()) == 8  # one per residual block
    for k in range(3):
        torch.testing.assert_close(ffn(x, subnet=k), ref, rtol=0, atol=0)


def test_weight_alteration_changes_only_its_subnet() -> None:
    m = small("tsm_resnet18").eval()
    x = torch.randn(1, 8, 3, 32, 32)
    ref = [m(x, subnet=k) for k in range(3)]
    with torch.no_grad():
        for wa in m.modules():
            if isinstance(wa, WeightAlteration):
                wa.weight[1].fill_(0.5)
    assert torch.equal(m(x, subnet=0), ref[0]) and torch.equal(m(x, subnet=2), ref[2])
    assert not torch.allclose(m(x, subnet=1), ref[1])


def test_shared_weights_are_one_parameter_object() -> None:
    m = small("tsm_resnet18")
    conv = m.layer1[0].conv1.layer
    assert isinstance(conv, nn.Conv2d)
    params = {id(p) for p in m.parameters()}
    assert id(conv.weight) in params and id(m.fc.weight) in params
    # gradient of every sub-network lands in the same tensor
    for k, t in enumerate((4, 8, 16)):
        m.zero_grad()
        m(torch.randn(1, t, 3, 32, 32), subnet=k).sum().backward()
        assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0


def test_ablation_flags() -> None:
    m = small("tsm_resnet18", specialised_norm=False, weight_alteration=False)
    assert not any(isinstance(x, (SpecialisedNorm, WeightAlteration)) for x in m.modules())
    assert m(torch.randn(1, 4, 3, 32, 32)).shape == (1, 7)


def test_context_is_per_model_and_thread_and_unset_outside_forward() -> None:
    a, b = small("tsm_resnet18").eval(), small("tsm_resnet18").eval()
    assert a.ctx is not b.ctx
    with pytest.raises(RuntimeError, match="outside a model forward"):
        _ = a.ctx.subnet
    x4, x16 = torch.randn(1, 4, 3, 32, 32), torch.randn(1, 16, 3, 32, 32)
    ref4, ref16 = a(x4), a(x16)
    errors = []

    def worker(x: torch.Tensor, ref: torch.Tensor) -> None:
        for _ in range(5):
            if not torch.allclose(a(x), ref, atol=1e-5):
                errors.append("mismatch")

    threads = [threading.Thread(target=worker, args=(x4, ref4)), threading.Thread(target=worker, args=(x16, ref16))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_bad_subnet_and_input_rejected() -> None:
    m = small("tsm_resnet18")
    with pytest.raises(ValueError, match="out of range"):
        m(torch.randn(1, 4, 3, 32, 32), subnet=3)
    with pytest.raises(ValueError, match=r"\(B, T, C, H, W\)"):
        m(torch.randn(4, 3, 32, 32))
    with pytest.raises(ValueError, match="unknown architecture"):
        ModelConfig("resnet9000", 3)


def test_pretrained_torchvision_names_load_with_report(tmp_path) -> None:
    src = MODELS["tsm_resnet18"](ModelConfig("tsm_resnet18", 1000, width_mult=0.25))
    state = src.state_dict()
    state["extra.head.weight"] = torch.zeros(2)
    torch.save(state, tmp_path / "imagenet.pth")
    dst = MODELS["tsm_resnet18"](ModelConfig("tsm_resnet18", 7, width_mult=0.25))
    report = load_pretrained(dst, tmp_path / "imagenet.pth")
    assert report.mismatched == ["fc.bias", "fc.weight"]
    assert report.unexpected == ["extra.head.weight"]
    assert report.missing == ["fc.bias", "fc.weight"]
    assert torch.equal(dst.layer2[0].conv1.weight, src.layer2[0].conv1.weight)
    # torchvision layout of names
    assert {"conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "layer4.1.bn2.weight",
            "layer2.0.downsample.0.weight", "fc.weight"} <= set(state)
    mb = MODELS["tsm_mobilenetv2"](ModelConfig("tsm_mobilenetv2", 7)).state_dict()
    assert {"features.0.0.weight", "features.1.conv.0.0.weight", "features.2.conv.0.0.weight",
            "features.18.1.running_var", "classifier.1.weight"} <= set(mb)
