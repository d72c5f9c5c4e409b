"""TEA-ResNet-50 and UniFormer-S through the generic converter: norms, WA placement, export parity, checkpoints."""

from pathlib import Path

import numpy as np
import pytest
import torch
from ffn_edge.export.fold import is_per_subnet
from ffn_edge.export.onnx_export import export_graph
from ffn_edge.export.verify import parity
from onnx import numpy_helper, save_model
from torch import nn

from ffn_edge.checkpoint import CheckpointMeta, load_checkpoint, save_checkpoint
from ffn_edge.layers import AlterationSite, Altered, SpecialisedNorm, WeightAlteration
from ffn_edge.models import MODELS, ModelConfig, create_model, make_frame_flexible, perturb_like_trained
from ffn_edge.models.convert import NORM_TYPES
from ffn_edge.models.tea_resnet import TEABottleneck, TEAResNet
from ffn_edge.models.uniformer import GlobalBlock, LocalBlock, UniFormer

torch.set_num_threads(1)
WIDTH = {"tea_resnet50": 0.125, "uniformer_s": 0.25}
SIZE = 32  # UniFormer needs >= 32 px: 4x4 patches, then three 2x2 embeddings


def _plain(arch: str) -> nn.Module:
    return MODELS[arch](ModelConfig(arch, 5, width_mult=WIDTH[arch]))


@pytest.mark.parametrize("arch", sorted(WIDTH))
def test_every_norm_is_specialised(arch: str) -> None:
    plain = _plain(arch)
    names = {n for n, m in plain.named_modules() if isinstance(m, NORM_TYPES)}
    kinds = {type(m) for m in plain.modules() if isinstance(m, NORM_TYPES)}
    ffn = make_frame_flexible(plain, (4, 8, 16))
    inside = {id(c) for m in ffn.modules() if isinstance(m, SpecialisedNorm) for c in m.norms}
    left = [n for n, m in ffn.named_modules() if isinstance(m, NORM_TYPES) and id(m) not in inside]
    assert left == []  # no plain norm survives anywhere
    assert all(isinstance(ffn.get_submodule(n), SpecialisedNorm) for n in names)
    if arch == "tea_resnet50":  # the temporal module's own norms too
        assert {"layer1.0.me.bn1", "layer4.2.me.bn2"} <= names
        assert kinds == {nn.BatchNorm2d}
    else:  # BN in local blocks and the final norm, LN in global blocks and patch embeddings
        assert {"stages.0.1.norm1", "stages.2.1.norm1", "stages.0.0.norm", "norm"} <= names
        assert kinds == {nn.BatchNorm3d, nn.LayerNorm}


def test_tea_weight_alteration_sits_before_each_blocks_first_conv() -> None:
    ffn = make_frame_flexible(_plain("tea_resnet50"), (4, 8, 16))
    blocks = [m for m in ffn.modules() if isinstance(m, TEABottleneck)]
    assert len(blocks) == 16
    for b in blocks:
        assert isinstance(b.conv1, Altered) and isinstance(b.conv1.layer, nn.Conv2d)
        assert b.conv1.alteration.weight.shape[1] == b.conv1.layer.in_channels
        assert not any(isinstance(m, Altered) for m in b.me.modules())  # ME and the residual stay unaltered
    assert sum(isinstance(m, WeightAlteration) for m in ffn.modules()) == 16


def test_uniformer_weight_alteration_alters_each_blocks_input() -> None:
    ffn = make_frame_flexible(_plain("uniformer_s"), (4, 8, 16))
    blocks = [m for m in ffn.modules() if isinstance(m, (LocalBlock, GlobalBlock))]
    assert len(blocks) == 18  # 3 + 4 local, 8 + 3 global
    for b in blocks:
        assert isinstance(b.adapter, Altered) and isinstance(b.adapter.layer, AlterationSite)
        assert b.adapter.alteration.channel_dim == 1 and isinstance(b.pos_embed, nn.Conv3d)
    # x * (1 + w) at the block input: the DPE and the residual stream both see it (Fig. 5, ST-Adapter's place)
    b = blocks[0]
    x = torch.randn(1, b.adapter.alteration.weight.shape[1], 2, 4, 4)
    with torch.no_grad():
        b.adapter.alteration.weight[1].fill_(1.0)
        with ffn.ctx.use(1, 2):
            assert torch.equal(b.adapter(x), 2 * x)


@pytest.mark.parametrize("arch", sorted(WIDTH))
def test_conversion_starts_as_the_plain_network(arch: str) -> None:
    plain = _plain(arch)
    perturb_like_trained(plain, weight_std=0.01)
    plain.eval()
    x = torch.randn(1, 4, 3, SIZE, SIZE)
    with torch.no_grad():
        ref = plain(x)
        ffn = make_frame_flexible(plain, (4, 8, 16)).eval()
        for k in range(3):
            assert torch.equal(ffn(x, subnet=k), ref)
        for wa in ffn.modules():  # a trained WA of sub-network 1 changes sub-network 1 only
            if isinstance(wa, WeightAlteration):
                wa.weight[1].fill_(0.2)
        assert torch.equal(ffn(x, subnet=0), ref) and torch.equal(ffn(x, subnet=2), ref)
        assert not torch.allclose(ffn(x, subnet=1), ref)


def test_wa_site_must_name_a_layer() -> None:
    class Bad(nn.Module):
        wa_site = "act"

        def __init__(self) -> None:
            super().__init__()
            self.act = nn.ReLU()

    model = _plain("tea_resnet50")
    model.layer1[0] = Bad()
    with pytest.raises(ValueError, match="wa_site 'act' is a ReLU"):
        make_frame_flexible(model, (4, 8), block_types=(Bad,))


@pytest.mark.parametrize("arch", sorted(WIDTH))
def test_causal_shift_is_refused(arch: str) -> None:
    with pytest.raises(ValueError, match="has no causal form"):
        create_model(ModelConfig(arch, 5, width_mult=WIDTH[arch], shift="causal"))


def _shallow(arch: str) -> nn.Module:
    """One block per stage (parity does not need depth; export time does not want it)."""
    if arch == "tea_resnet50":
        return TEAResNet((1, 1, 1, 1), 5, base_channels=8)
    return UniFormer(5, width_mult=0.25, depths=(1, 1, 1, 1))


@pytest.mark.parametrize("arch", sorted(WIDTH))
@pytest.mark.slow
def test_export_parity(arch: str, tmp_path: Path) -> None:
    """Exported graphs (norms / WA folded, LayerNorm and attention as ONNX ops) match PyTorch per sub-network."""
    model = make_frame_flexible(_shallow(arch), (2, 4))
    perturb_like_trained(model, weight_std=0.02)
    model.eval()
    rng = np.random.default_rng(0)
    consts = []
    for k, t in ((0, 2), (1, 4)):
        proto, _ = export_graph(model, k, t, (SIZE, SIZE))
        save_model(proto, tmp_path / f"f{t}.onnx")
        consts.append({i.name: numpy_helper.to_array(i) for i in proto.graph.initializer})
        clips = rng.standard_normal((2, t, 3, SIZE, SIZE)).astype(np.float32)
        p = parity(model, k, tmp_path / f"f{t}.onnx", clips)
        assert p.ok, (arch, t, p)
    # a name means one tensor in every graph (UniFormer's token Linears become MatMuls with W^T constants)
    common = {n for n in set(consts[0]) & set(consts[1]) if not is_per_subnet(n)}  # those stay in their graph
    assert all(np.array_equal(consts[0][n], consts[1][n]) for n in common)
    assert not any(n.startswith("onnx::") for c in consts for n in c)
    other = parity(model, 0, tmp_path / "f4.onnx", clips)  # the graph runs its own sub-network, not another
    assert other.max_abs_diff > 1e-3


@pytest.mark.parametrize("arch", sorted(WIDTH))
def test_checkpoint_round_trip(arch: str, tmp_path: Path) -> None:
    cfg = ModelConfig(arch, 5, width_mult=WIDTH[arch])
    model = create_model(cfg)
    perturb_like_trained(model, weight_std=0.01)
    model.eval()
    save_checkpoint(tmp_path / "m.safetensors", model, CheckpointMeta(cfg, list("abcde"), input_size=SIZE,
                                                                       resize_shorter=36))
    loaded, meta = load_checkpoint(tmp_path / "m.safetensors")
    assert meta.config == cfg
    x = torch.randn(1, 4, 3, SIZE, SIZE)
    with torch.no_grad():
        for k in (0, 2):
            assert torch.equal(loaded.eval()(x, subnet=k), model(x, subnet=k))
