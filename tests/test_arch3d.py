"""3-D backbones (SlowFast-R50, X3D-S) through the generic converter, the exporter and the runtime."""

import copy

import numpy as np
import pytest
import torch
from ffn_edge.export import export_bundle
from ffn_edge.runtime.session import FFNRuntime
from torch import nn

from ffn_edge.bundle.manifest import load_manifest
from ffn_edge.checkpoint import CheckpointMeta, load_checkpoint, save_checkpoint
from ffn_edge.layers import Altered, SpecialisedNorm, WeightAlteration
from ffn_edge.models import MODELS, ModelConfig, create_model, make_frame_flexible, perturb_like_trained
from ffn_edge.models.blocks3d import ResBlock3D
from ffn_edge.models.slowfast import ALPHA

torch.set_num_threads(2)
ARCHES = {"slowfast_r50": 0.125, "x3d_s": 0.25}
SIZE = 32
# SlowFast at the paper's fast-pathway counts L/M/H (slow pathway: 4/8/16 frames); X3D-S around its 13.
EXPORT_COUNTS = {"slowfast_r50": (16, 32, 64), "x3d_s": (4, 8, 13)}


def _plain(arch: str, classes: int = 5) -> nn.Module:
    return MODELS[arch](ModelConfig(arch, classes, width_mult=ARCHES[arch])).eval()


@pytest.mark.parametrize("arch", sorted(ARCHES))
def test_every_norm_is_specialised(arch: str) -> None:
    plain = _plain(arch)
    norms = {n for n, m in plain.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
    ffn = make_frame_flexible(copy.deepcopy(plain), (4, 8, 16))
    specialised = {n for n, m in ffn.named_modules() if isinstance(m, SpecialisedNorm)}
    inside = {n for n, m in ffn.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
    assert specialised == norms  # every norm, by its own name, and nothing else
    assert all(".norms." in n for n in inside)  # none survives outside a SpecialisedNorm
    if arch == "slowfast_r50":  # both pathways and every lateral connection
        assert {n.split(".")[0] for n in specialised} >= {"slow_stem", "fast_stem", "slow_stages", "fast_stages",
                                                         "laterals"}
        assert sum(n.startswith("laterals.") for n in specialised) == 4


@pytest.mark.parametrize("arch", sorted(ARCHES))
def test_weight_alteration_fronts_each_residual_branch(arch: str) -> None:
    ffn = create_model(ModelConfig(arch, 5, width_mult=ARCHES[arch]))
    blocks = [m for m in ffn.modules() if isinstance(m, ResBlock3D)]
    assert blocks and all(isinstance(b.branch[0][0], Altered) for b in blocks)
    assert sum(isinstance(m, WeightAlteration) for m in ffn.modules()) == len(blocks)  # not the shortcut/head


@pytest.mark.parametrize("arch", sorted(ARCHES))
def test_conversion_is_identity_at_init(arch: str) -> None:
    plain = _plain(arch)
    perturb_like_trained(plain, weight_std=0.05, var_spread=1.5)  # non-trivial statistics to copy
    ffn = make_frame_flexible(copy.deepcopy(plain), (4, 8, 16)).eval()
    x = torch.randn(2, 8, 3, SIZE, SIZE)
    with torch.no_grad():
        ref = plain(x)
        for k in range(3):
            assert torch.allclose(ffn(x, subnet=k), ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("rule", ["stride", "linspace"])
def test_slowfast_slow_pathway_frames_follow_the_configured_rule(rule: str) -> None:
    model = MODELS["slowfast_r50"](ModelConfig("slowfast_r50", 5, width_mult=ARCHES["slowfast_r50"],
                                               slow_frames=rule)).eval()
    seen = []
    model.slow_stem.register_forward_hook(lambda _m, inp, _o: seen.append(inp[0]))
    for n in (1, 5, 16, 17, 32):
        clip = torch.randn(1, n, 3, SIZE, SIZE)
        with torch.no_grad():
            model(clip)
        assert seen[-1].shape[2] == -(-n // ALPHA)
        if rule == "stride":
            want = list(range(0, n, ALPHA))
        elif n % ALPHA == 0:  # PySlowFast's pack_pathway_output, literally
            want = torch.linspace(0, n - 1, n // ALPHA).long().tolist()
        else:
            want = torch.linspace(0, n - 1, -(-n // ALPHA)).long().tolist()
        assert seen[-1].equal(clip.transpose(1, 2)[:, :, want])
    if rule == "linspace":
        assert want != list(range(0, 32, ALPHA))  # the rules differ (0, 4, 9, ... vs 0, 4, 8, ...)


def test_slowfast_config_without_a_slow_frame_rule_keeps_the_old_one() -> None:
    d = ModelConfig("slowfast_r50", 5).to_dict()
    del d["slow_frames"]
    assert ModelConfig.from_dict(d).slow_frames == "stride"
    assert ModelConfig("slowfast_r50", 5).slow_frames == "linspace"


def test_3d_models_refuse_a_causal_shift() -> None:
    with pytest.raises(ValueError, match="no temporal shift"):
        create_model(ModelConfig("x3d_s", 5, shift="causal"))


@pytest.fixture(scope="module", params=sorted(ARCHES))
def exported(request, tmp_path_factory):
    arch = request.param
    root = tmp_path_factory.mktemp(arch)
    cfg = ModelConfig(arch, 5, frame_counts=EXPORT_COUNTS[arch], width_mult=ARCHES[arch])
    model = create_model(cfg).eval()
    perturb_like_trained(model, weight_std=0.05, var_spread=1.5)  # sub-networks really differ
    ckpt = root / "m.safetensors"
    save_checkpoint(ckpt, model, CheckpointMeta(cfg, list("abcde"), input_size=SIZE, resize_shorter=36))
    return arch, model, ckpt, export_bundle(ckpt, EXPORT_COUNTS[arch], root / "m.ffn")


@pytest.mark.slow
def test_export_passes_parity_with_one_shared_weight_file(exported) -> None:
    _, model, _, bundle = exported
    m = load_manifest(bundle)
    assert len({g.file for g in m.graphs}) == 3 and (bundle / m.weights_file).is_file()
    for n in EXPORT_COUNTS[exported[0]]:
        check = m.extra["verification"]["graphs"][str(n)]
        assert check["max_abs_diff"] <= 1e-4 and check["top1_equal"]
    conv_bytes = sum(p.numel() * 4 for p in model.parameters() if p.dim() > 1)
    assert m.extra["sharing"]["shared_bytes"] > 0.9 * conv_bytes  # conv weights stored once, in weights.bin


@pytest.mark.slow
def test_runtime_runs_the_bundle_like_pytorch(exported) -> None:
    arch, model, _, bundle = exported
    rng = np.random.default_rng(0)
    with FFNRuntime.open(bundle, backend="onnxruntime", threads=1) as rt:
        assert rt.frame_counts == EXPORT_COUNTS[arch]
        for n in rt.frame_counts:
            clip = rng.standard_normal((1, n, 3, SIZE, SIZE)).astype(np.float32)
            out = rt.run(n, clip)
            with torch.no_grad():
                ref = model(torch.from_numpy(clip)).numpy()
            assert out.subnet == model.subnet_for(n)
            assert np.abs(out.logits - ref).max() <= 1e-4


@pytest.mark.slow
def test_checkpoint_round_trip(exported) -> None:
    _, model, ckpt, _ = exported
    loaded, meta = load_checkpoint(ckpt)
    assert meta.config.frame_counts == model.frame_counts
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)
    x = torch.randn(1, 8, 3, SIZE, SIZE)
    with torch.no_grad():
        assert loaded.eval()(x).equal(model(x))
