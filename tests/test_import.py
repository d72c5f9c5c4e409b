"""ffn-import: synthetic released checkpoints (exact names, shapes, wrappers; tests/import_sources.py)
are placed tensor by tensor, the imported models compute what hand-placed models compute at every
sub-network, and every refusal is one line with a non-zero exit."""

from __future__ import annotations

import copy

import import_sources as S
import pytest
import torch

from ffn_edge.checkpoint import load_checkpoint
from ffn_edge.importers import import_checkpoint
from ffn_edge.importers.cli import main
from ffn_edge.models import MODELS, ModelConfig, create_model, make_frame_flexible

SIZE = 32
NAMES = list("abcde")
UNI_DIMS = (16, 32, 80, 128)  # uniformer_s at width_mult 0.25


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("sources")
    (root / "classes.txt").write_text("\n".join(NAMES) + "\n")
    objs = {
        "authors_tsm": S.authors_tsm_ffn(16, 5), "authors_tea": S.authors_tea_ffn(16, 5),
        "authors_slowfast": S.slowfast(16, 5, ffn=True), "pyslowfast": S.slowfast(16, 5, ffn=False),
        "authors_uniformer": S.uniformer(UNI_DIMS, 5, ffn=True), "uniformer": S.uniformer(UNI_DIMS, 5, ffn=False),
        "tsm": S.tsm_repo(16, 5), "torchvision": S.torchvision_resnet50(16), "timm": S.timm_res2net50(16),
    }
    paths = {}
    for name, obj in objs.items():
        paths[name] = root / f"{name}.pth.tar"
        torch.save(obj, paths[name])
    return root, paths, objs


def _sd(obj: dict) -> dict[str, torch.Tensor]:
    """The source's state dict without wrapper / DataParallel prefix (what the tables see)."""
    sd = obj.get("state_dict") or obj.get("model_state") or obj
    return {k.removeprefix("module."): v for k, v in sd.items()}


def _imp(files, name: str, source: str, arch: str, **kw):
    root, paths, objs = files
    return import_checkpoint(source, arch, paths[name], str(root / "classes.txt"), width_mult=0.25, **kw), \
        _sd(objs[name])


def _clip(frames: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(2, frames, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def _same_logits(a, b, frames: tuple[int, ...]) -> None:
    with torch.no_grad():
        for k, n in enumerate(frames):
            x = _clip(n, k)
            ya, yb = a(x, subnet=k), b(x, subnet=k)
            assert torch.equal(ya, yb), (n, (ya - yb).abs().max())


def _put(model, name: str, value: torch.Tensor) -> None:
    t = model.state_dict()[name]
    assert t.shape == value.reshape(t.shape).shape
    t.copy_(value.reshape(t.shape))


def _bn(model, dst: str, sd, src: str) -> None:
    for p in ("weight", "bias", "running_mean", "running_var"):
        if f"{src}.{p}" in sd:
            _put(model, f"{dst}.{p}", sd[f"{src}.{p}"])


# --- (a) values land where the table says, (b) logits equal a hand-placed model ----------------------------

def test_authors_tsm_ffn(files) -> None:
    r, sd = _imp(files, "authors_tsm", "authors-2d", "tsm_resnet50")
    m = r.model
    assert r.meta.config.frame_counts == (4, 8, 16) and r.meta.config.weight_alteration
    hand = create_model(ModelConfig("tsm_resnet50", 5, width_mult=0.25)).eval()
    _put(hand, "conv1.weight", sd["base_model.conv1.weight"])
    for k, s in enumerate(S.SUBS):
        _bn(hand, f"bn1.norms.{k}", sd, f"base_model.bn1_{s}")
    for i in range(4):
        for j, blk in enumerate(getattr(hand, f"layer{i + 1}")):
            src, dst = f"base_model.layer{i + 1}.{j}", f"layer{i + 1}.{j}"
            _put(hand, f"{dst}.conv1.layer.weight", sd[f"{src}.conv1.weight"])
            _put(hand, f"{dst}.conv2.weight", sd[f"{src}.conv2.weight"])
            _put(hand, f"{dst}.conv3.weight", sd[f"{src}.conv3.weight"])
            for k, s in enumerate(S.SUBS):
                blk.conv1.alteration.weight.data[k] = sd[f"{src}.adaconv_{s}.weight"].flatten()
                for b in ("bn1", "bn2", "bn3"):
                    _bn(hand, f"{dst}.{b}.norms.{k}", sd, f"{src}.{b}_{s}")
                if blk.downsample is not None:
                    _bn(hand, f"{dst}.downsample.1.norms.{k}", sd, f"{src}.downsample_bn_{s}")
            if blk.downsample is not None:
                _put(hand, f"{dst}.downsample.0.weight", sd[f"{src}.downsample_conv.weight"])
    _put(hand, "fc.weight", sd["new_fc.weight"])
    _put(hand, "fc.bias", sd["new_fc.bias"])
    # (a) spot checks, by value
    assert torch.equal(m.layer1[0].conv1.alteration.weight[2], sd["base_model.layer1.0.adaconv_16.weight"].flatten())
    assert torch.equal(m.layer2[0].downsample[1].norms[1].running_var,
                       sd["base_model.layer2.0.downsample_bn_8.running_var"])
    assert torch.equal(m.state_dict()["layer4.2.conv3.weight"], sd["base_model.layer4.2.conv3.weight"])
    for name, value in hand.state_dict().items():  # (a) everything, by value
        if not name.endswith("num_batches_tracked"):
            assert torch.equal(m.state_dict()[name], value), name
    _same_logits(m, hand, (4, 8, 16))  # (b)
    rec = r.meta.extra["import"]
    assert rec["tensors_mapped"] == len(sd) - rec["ignored"] and rec["source"] == "authors-2d"


@pytest.mark.slow
def test_authors_tea_ffn_runs_without_weight_alteration(files) -> None:
    r, sd = _imp(files, "authors_tea", "authors-2d", "tea_resnet50")
    m = r.model
    assert not r.meta.config.weight_alteration and r.meta.config.mta_shift_div == 2
    assert not any("alteration" in n for n in m.state_dict())
    hand = MODELS["tea_resnet50"](ModelConfig("tea_resnet50", 5, width_mult=0.25, weight_alteration=False))
    hand = make_frame_flexible(hand, (4, 8, 16), weight_alteration=False).eval()
    _put(hand, "conv1.weight", sd["base_model.conv1.weight"])
    for k, s in enumerate(S.SUBS):
        _bn(hand, f"bn1.norms.{k}", sd, f"base_model.bn1_{s}")
    for i in range(4):
        for j, blk in enumerate(getattr(hand, f"layer{i + 1}")):
            src, dst = f"base_model.layer{i + 1}.{j}", f"layer{i + 1}.{j}"
            for c in ("conv1", "conv3"):
                _put(hand, f"{dst}.{c}.weight", sd[f"{src}.{c}.weight"])
            _put(hand, f"{dst}.me.reduce.weight", sd[f"{src}.me.conv1.weight"])
            _put(hand, f"{dst}.me.spatial.weight", sd[f"{src}.me.conv2.weight"])
            _put(hand, f"{dst}.me.expand.weight", sd[f"{src}.me.conv3.weight"])
            for g in range(3):
                _put(hand, f"{dst}.convs.{g}.weight", sd[f"{src}.convs.{g}.weight"])
            for g in range(4):  # Conv1d (C, 1, 3) over frames == Conv3d (C, 1, 3, 1, 1)
                blk.temporal[g].conv.weight.data[:, 0, :, 0, 0] = sd[f"{src}.shifts.{g}.conv.weight"][:, 0, :]
            for k, s in enumerate(S.SUBS):
                _bn(hand, f"{dst}.bn1.norms.{k}", sd, f"{src}.bn1_{s}")
                _bn(hand, f"{dst}.bn3.norms.{k}", sd, f"{src}.bn3_{s}")
                _bn(hand, f"{dst}.me.bn1.norms.{k}", sd, f"{src}.me.bn1_{s}")
                _bn(hand, f"{dst}.me.bn2.norms.{k}", sd, f"{src}.me.bn3_{s}")
                for g in range(3):
                    _bn(hand, f"{dst}.bns.{g}.norms.{k}", sd, f"{src}.bns_{s}.{g}")
                if blk.downsample is not None:
                    _bn(hand, f"{dst}.downsample.1.norms.{k}", sd, f"{src}.downsample_bn_{s}")
            if blk.downsample is not None:
                _put(hand, f"{dst}.downsample.0.weight", sd[f"{src}.downsample_conv.weight"])
    _put(hand, "fc.weight", sd["new_fc.weight"])
    _put(hand, "fc.bias", sd["new_fc.bias"])
    assert torch.equal(m.layer3[1].temporal[3].conv.weight.flatten(),
                       sd["base_model.layer3.1.shifts.3.conv.weight"].flatten())
    _same_logits(m, hand, (4, 8, 16))


def _slowfast_hand(sd, ffn: bool, frames: tuple[int, ...]):
    cfg = ModelConfig("slowfast_r50", 5, width_mult=0.25, frame_counts=frames)
    hand = create_model(cfg).eval()
    subs = list(enumerate(S.SUBS)) if ffn else [(k, "") for k in range(len(frames))]

    def bn(dst: str, src: str) -> None:
        for k, s in subs:
            _bn(hand, f"{dst}.norms.{k}", sd, f"{src}_{s}" if s else src)

    for p, name in ((0, "slow"), (1, "fast")):
        _put(hand, f"{name}_stem.0.weight", sd[f"s1.pathway{p}_stem.conv.weight"])
        bn(f"{name}_stem.1", f"s1.pathway{p}_stem.bn")
        for st in range(4):
            for j, blk in enumerate(getattr(hand, f"{name}_stages")[st]):
                src, dst = f"s{st + 2}.pathway{p}_res{j}", f"{name}_stages.{st}.{j}"
                for i, c in enumerate("abc"):
                    w = f"{dst}.branch.{i}.0.layer.weight" if i == 0 else f"{dst}.branch.{i}.0.weight"
                    _put(hand, w, sd[f"{src}.branch2.{c}.weight"])
                    bn(f"{dst}.branch.{i}.1", f"{src}.branch2.{c}_bn")
                if f"{src}.branch1.weight" in sd:
                    _put(hand, f"{dst}.shortcut.0.weight", sd[f"{src}.branch1.weight"])
                    bn(f"{dst}.shortcut.1", f"{src}.branch1_bn")
                for k, s in subs:
                    alt = blk.branch[0][0].alteration.weight.data
                    alt[k] = sd[f"{src}.branch2.adaconv_{s}.weight"].flatten() if ffn else 0.0
    for f in range(4):
        _put(hand, f"laterals.{f}.conv.weight", sd[f"s{f + 1}_fuse.conv_f2s.weight"])
        bn(f"laterals.{f}.bn", f"s{f + 1}_fuse.bn")
    _put(hand, "fc.weight", sd["head.projection.weight"])
    _put(hand, "fc.bias", sd["head.projection.bias"])
    return hand


@pytest.mark.slow
def test_authors_slowfast_ffn_folds_bgr_and_uses_linspace_slow_frames(files) -> None:
    r, sd = _imp(files, "authors_slowfast", "authors-slowfast", "slowfast_r50")
    m = r.model
    assert r.meta.config.frame_counts == (16, 32, 64) and r.meta.config.slow_frames == "linspace"
    assert r.meta.extra["import"]["preprocess"]["channels"] == "BGR"
    assert torch.equal(m.state_dict()["slow_stem.0.weight"], sd["s1.pathway0_stem.conv.weight"].flip(1))
    assert torch.equal(m.fast_stages[2][1].branch[0][0].alteration.weight[0],
                       sd["s4.pathway1_res1.branch2.adaconv_4.weight"].flatten())
    hand = _slowfast_hand(sd, ffn=True, frames=(16, 32, 64))  # takes BGR, as the authors' model
    with torch.no_grad():
        for k, n in enumerate((16, 32, 64)):
            x = _clip(n, k)
            assert torch.allclose(m(x, subnet=k), hand(x.flip(2), subnet=k), atol=1e-5, rtol=1e-5)
    assert torch.equal(m.state_dict()["laterals.0.conv.weight"], sd["s1_fuse.conv_f2s.weight"])


@pytest.mark.slow
def test_pyslowfast_as_ffn_init_copies_norms_and_identity_alteration(files) -> None:
    r, sd = _imp(files, "pyslowfast", "pyslowfast", "slowfast_r50", as_="ffn-init")
    assert r.meta.config.frame_counts == (16, 32, 64)
    assert r.placement.identity_wa and all(
        torch.all(a.weight == 0) for a in r.model.modules() if type(a).__name__ == "WeightAlteration")
    _same_logits(r.model, _slowfast_hand(sd, ffn=False, frames=(16, 32, 64)), (16, 32, 64))


def _uniformer_hand(sd, ffn: bool, frames: tuple[int, ...], wa: bool = True):
    hand = create_model(ModelConfig("uniformer_s", 5, width_mult=0.25, frame_counts=frames, dropout=0.0,
                                    weight_alteration=wa)).eval()
    subs = list(enumerate(S.SUBS)) if ffn else [(k, "") for k in range(len(frames))]

    def norm(dst: str, src: str) -> None:
        for k, s in subs:
            _bn(hand, f"{dst}.norms.{k}", sd, f"{src}_{s}" if s else src)

    for i, depth in enumerate((3, 4, 8, 3)):
        for p in ("weight", "bias"):
            _put(hand, f"stages.{i}.0.proj.{p}", sd[f"patch_embed{i + 1}.proj.{p}"])
        norm(f"stages.{i}.0.norm", f"patch_embed{i + 1}.norm")
        for j in range(depth):
            src, dst = f"blocks{i + 1}.{j}", f"stages.{i}.{j + 1}"
            names = {"pos_embed": "pos_embed", "mlp.0": "mlp.fc1", "mlp.2": "mlp.fc2"}
            names |= {"conv1": "conv1", "attn": "attn", "conv2": "conv2"} if i < 2 else \
                {"attn.qkv": "attn.qkv", "attn.proj": "attn.proj"}
            for d, s in names.items():
                for p in ("weight", "bias"):
                    _put(hand, f"{dst}.{d}.{p}", sd[f"{src}.{s}.{p}"])
            norm(f"{dst}.norm1", f"{src}.norm1")
            norm(f"{dst}.norm2", f"{src}.norm2")
            if wa:
                for k, s in subs:
                    hand.stages[i][j + 1].adapter.alteration.weight.data[k] = \
                        sd[f"{src}.adaconv_{s}.weight"].flatten() if ffn else 0.0
    norm("norm", "norm")
    _put(hand, "head.weight", sd["head.weight"])
    _put(hand, "head.bias", sd["head.bias"])
    return hand


def test_authors_uniformer_ffn(files) -> None:
    r, sd = _imp(files, "authors_uniformer", "authors-uniformer", "uniformer_s")
    c = r.meta.config
    assert (c.dropout, c.drop_path, c.wa_init_std) == (0.0, 0.1, 1e-3)
    assert torch.equal(r.model.state_dict()["stages.2.1.attn.qkv.weight"], sd["blocks3.0.attn.qkv.weight"])
    assert torch.equal(r.model.stages[0][0].norm.norms[2].weight, sd["patch_embed1.norm_16.weight"])
    _same_logits(r.model, _uniformer_hand(sd, ffn=True, frames=(4, 8, 16)), (4, 8, 16))


def test_uniformer_as_st(files) -> None:
    r, sd = _imp(files, "uniformer", "uniformer", "uniformer_s", as_="st", frames=[8])
    assert r.meta.config.frame_counts == (8,) and not r.meta.config.weight_alteration
    _same_logits(r.model, _uniformer_hand(sd, ffn=False, frames=(8,), wa=False), (8,))


def test_tsm_repo_as_ffn_init_equals_plain_model_converted(files) -> None:
    r, sd = _imp(files, "tsm", "tsm", "tsm_resnet50", as_="ffn-init")
    plain = MODELS["tsm_resnet50"](ModelConfig("tsm_resnet50", 5, width_mult=0.25))
    renamed = {k.removeprefix("base_model.").replace("conv1.net.", "conv1."): v for k, v in sd.items()}
    renamed = {("fc." + k[7:] if k.startswith("new_fc.") else k): v for k, v in renamed.items()}
    plain.load_state_dict(renamed)  # strict: every name of a torchvision-named TSM-ResNet
    hand = make_frame_flexible(copy.deepcopy(plain), (4, 8, 16)).eval()
    _same_logits(r.model, hand, (4, 8, 16))
    with torch.no_grad():  # every sub-network is the plain network at first
        x = _clip(8)
        assert torch.allclose(r.model(x, subnet=0), plain.eval()(x), atol=1e-6)


def test_imagenet_sources_fill_the_backbone_and_start_a_new_head(files) -> None:
    r, sd = _imp(files, "torchvision", "torchvision", "tsm_resnet50", as_="st")
    assert sorted(r.placement.new_head) == ["fc.bias", "fc.weight"] and r.meta.config.frame_counts == (8,)
    assert torch.equal(r.model.state_dict()["layer3.4.conv2.weight"], sd["layer3.4.conv2.weight"])
    r2, sd2 = _imp(files, "timm", "timm", "tea_resnet50", as_="ffn-init")
    assert torch.equal(r2.model.state_dict()["layer2.1.convs.2.weight"], sd2["layer2.1.convs.2.weight"])
    assert torch.equal(r2.model.layer2[1].bns[2].norms[2].running_mean, sd2["layer2.1.bns.2.running_mean"])
    assert any(n.endswith("me.reduce.weight") for n in r2.placement.left_at_init)
    w = r2.model.layer1[0].temporal[3].conv.weight.view(-1, 3)  # the authors' MTA shift: half each way
    fold = w.shape[0] // 2
    assert torch.all(w[:fold, 2] == 1) and torch.all(w[fold : 2 * fold, 0] == 1)


# --- the written checkpoint, the CLI, refusals ------------------------------------------------------------

def test_cli_writes_a_normal_checkpoint(files, tmp_path, capsys) -> None:
    root, paths, _ = files
    out = tmp_path / "tsm_ffn.safetensors"
    with pytest.raises(SystemExit) as e:
        _main(["--from", "authors-2d", "--arch", "tsm_resnet50", "--ckpt", str(paths["authors_tsm"]),
               "--classes", str(root / "classes.txt"), "--out", str(out), "--width-mult", "0.25"])
    assert e.value.code == 0
    model, meta = load_checkpoint(out)
    assert meta.class_names == NAMES and meta.config.frame_counts == (4, 8, 16)
    rec = meta.extra["import"]
    import hashlib
    assert rec["sha256"] == hashlib.sha256(paths["authors_tsm"].read_bytes()).hexdigest()
    assert rec["preprocess"]["sampling"] == "tsn-centre" and (meta.input_size, meta.resize_shorter) == (224, 256)
    r, _ = _imp(files, "authors_tsm", "authors-2d", "tsm_resnet50")
    _same_logits(model, r.model, (4, 8, 16))
    assert "tensors mapped" in capsys.readouterr().out


def _main(argv: list[str]) -> None:
    import sys

    old = sys.argv
    sys.argv = ["ffn-import", *argv]
    try:
        main()
    finally:
        sys.argv = old


def _refused(capsys, argv: list[str], *needles: str) -> str:
    with pytest.raises(SystemExit) as e:
        _main(argv)
    err = capsys.readouterr().err
    assert e.value.code != 0 and err.count("\n") == 1 and err.startswith("ffn-import: error: "), err
    for n in needles:
        assert n in err, err
    return err


def _args(files, name: str, source: str, arch: str, *extra: str, ckpt=None, classes=None) -> list[str]:
    root, paths, _ = files
    return ["--from", source, "--arch", arch, "--ckpt", str(ckpt or paths[name]),
            "--classes", classes or str(root / "classes.txt"), "--out", str(root / "out.safetensors"),
            "--width-mult", "0.25", *extra]


def test_refusals_are_one_line(files, tmp_path, capsys) -> None:
    _, _, objs = files
    extra = copy.deepcopy(objs["authors_tsm"])
    extra["state_dict"]["module.base_model.layer1.0.nonlocal.weight"] = torch.zeros(3)
    torch.save(extra, tmp_path / "extra.pth")
    _refused(capsys, _args(files, "", "authors-2d", "tsm_resnet50", ckpt=tmp_path / "extra.pth"),
             "1 source tensors match no rule", "layer1.0.nonlocal.weight")
    less = copy.deepcopy(objs["authors_tsm"])
    del less["state_dict"]["module.base_model.layer2.1.bn2_8.running_var"]
    torch.save(less, tmp_path / "less.pth")
    _refused(capsys, _args(files, "", "authors-2d", "tsm_resnet50", ckpt=tmp_path / "less.pth"),
             "1 model tensors are not filled", "layer2.1.bn2.norms.1.running_var")
    _refused(capsys, _args(files, "authors_tsm", "authors-2d", "tea_resnet50"), "of tea_resnet50 is (24,)")
    _refused(capsys, _args(files, "authors_tsm", "authors-2d", "tsm_resnet50", "--width-mult", "0.5"),
             "is (16,) but bn1.norms.2.bias of tsm_resnet50 is (32,)")
    torch.save({"state_dict": {"w": torch.zeros(1)}, "obj": torch.nn.ReLU()}, tmp_path / "code.pth")
    _refused(capsys, _args(files, "", "tsm", "tsm_resnet50", ckpt=tmp_path / "code.pth"),
             "pickled global torch.nn.modules.activation.ReLU")
    (tmp_path / "junk.pth").write_bytes(b"not a zip")
    _refused(capsys, _args(files, "", "tsm", "tsm_resnet50", ckpt=tmp_path / "junk.pth"), "not a readable")
    _refused(capsys, _args(files, "", "tsm", "tsm_resnet50", ckpt=tmp_path / "missing.pth"), "missing.pth")
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    _refused(capsys, _args(files, "", "tsm", "tsm_resnet50", ckpt=tmp_path / "list.pth"), "not a state dict")
    _refused(capsys, _args(files, "authors_tsm", "authors-2d", "tsm_resnet50", classes="ssv1"),
             "not shipped", "category.txt")
    _refused(capsys, _args(files, "authors_tsm", "authors-2d", "tsm_resnet50", classes="kinetics400"),
             "400 names, the checkpoint's head has 5 classes")
    _refused(capsys, _args(files, "authors_tsm", "authors-2d", "tsm_resnet50", "--as", "st"), "FFN checkpoints")
    _refused(capsys, _args(files, "authors_tsm", "authors-2d", "tsm_resnet50", "--frames", "4", "8"),
             "3 distinct counts")
    _refused(capsys, _args(files, "tsm", "tsm", "tsm_resnet50", "--as", "st", "--frames", "4", "8"), "one --frames")
    _refused(capsys, _args(files, "tsm", "tsm", "tsm_resnet50", "--as", "ffn"), "plain")
    _refused(capsys, _args(files, "tsm", "timm", "tsm_resnet50"), "timm has no table for tsm_resnet50")
    _refused(capsys, _args(files, "tsm", "bogus", "tsm_resnet50"), "--from")


@pytest.mark.slow
def test_exported_bundle_reproduces_the_imported_model_torch_free(files, tmp_path) -> None:
    import numpy as np
    import onnxruntime as ort
    from ffn_edge.export import export_bundle

    from ffn_edge.bundle.manifest import load_manifest

    root, paths, _ = files
    ckpt = tmp_path / "tsm_ffn.safetensors"
    with pytest.raises(SystemExit) as e:
        _main(["--from", "authors-2d", "--arch", "tsm_resnet50", "--ckpt", str(paths["authors_tsm"]),
               "--classes", str(root / "classes.txt"), "--out", str(ckpt), "--width-mult", "0.25"])
    assert e.value.code == 0
    model, meta = load_checkpoint(ckpt)
    bundle = export_bundle(ckpt, [4, 8, 16], tmp_path / "tsm_ffn.ffn")
    m = load_manifest(bundle)
    assert m.extra["exporter"]["checkpoint_extra"]["import"]["source"] == "authors-2d"  # preprocessing travels
    size = meta.input_size
    for frames in (4, 8, 16):
        g = m.graph_for(frames)
        x = np.random.default_rng(frames).standard_normal((1, frames, 3, size, size)).astype(np.float32)
        out = ort.InferenceSession(str(bundle / g.file), providers=["CPUExecutionProvider"]).run(
            [m.output_name], {m.input.name: x})[0]
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        assert float(np.abs(out - ref).max()) <= 1e-4, frames
