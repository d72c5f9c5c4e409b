"""Synthetic released checkpoints for the importer tests: the exact names, shapes and wrappers of each
source's code, written from those architectures' own definitions (not from ffn-edge's tables), with
random values. Widths are scaled down like ffn-edge's small variants (``width`` = the stem width).

Sources: FFN-pytorch (``resnet_TSM_FFN.py``, ``resnet_TEA_FFN.py``, ``SlowFast_FFN``,
``Uniformer_FFN``), mit-han-lab TSM, PySlowFast SlowFast, Sense-X UniFormer, torchvision ResNet,
timm Res2Net.
"""

from __future__ import annotations

import math

import torch

SUBS = ("4", "8", "16")
R50 = (3, 4, 6, 3)


class Gen:
    """A state dict being written: random conv/linear weights, BN tensors with positive variances."""

    def __init__(self, seed: int = 0) -> None:
        self.g = torch.Generator().manual_seed(seed)
        self.sd: dict[str, torch.Tensor] = {}

    def t(self, name: str, *shape: int, scale: float | None = None) -> None:
        """Random values; weights scaled by 1/sqrt(fan-in) so activations stay O(1) through 50 layers."""
        if scale is None:
            scale = 0.1 if len(shape) < 2 else math.prod(shape[1:]) ** -0.5
        self.sd[name] = torch.randn(*shape, generator=self.g) * scale

    def bn(self, prefix: str, c: int, subs: tuple[str, ...] | None = None, sep: str = "_") -> None:
        for s in subs or ("",):
            p = f"{prefix}{sep}{s}" if s else prefix
            self.sd[f"{p}.weight"] = 1 + 0.2 * torch.randn(c, generator=self.g)
            self.sd[f"{p}.bias"] = 0.1 * torch.randn(c, generator=self.g)
            self.sd[f"{p}.running_mean"] = 0.1 * torch.randn(c, generator=self.g)
            self.sd[f"{p}.running_var"] = 0.5 + torch.rand(c, generator=self.g)
            self.sd[f"{p}.num_batches_tracked"] = torch.tensor(1000)

    def ln(self, prefix: str, c: int, subs: tuple[str, ...] | None = None) -> None:
        for s in subs or ("",):
            p = f"{prefix}_{s}" if s else prefix
            self.sd[f"{p}.weight"] = 1 + 0.2 * torch.randn(c, generator=self.g)
            self.sd[f"{p}.bias"] = 0.1 * torch.randn(c, generator=self.g)


def tsn_wrapper(sd: dict[str, torch.Tensor]) -> dict:
    """TSM's / FFN-pytorch 2D's save_checkpoint of a DataParallel TSN (optimizer state included)."""
    return {"epoch": 50, "arch": "resnet50", "best_prec1": 50.79, "val_acc_top1": [1.0, 2.0],
            "state_dict": {f"module.{k}": v for k, v in sd.items()},
            "optimizer": {"state": {0: {"momentum_buffer": torch.zeros(3)}}, "param_groups": [{"lr": 0.01}]}}


def pyslowfast_wrapper(sd: dict[str, torch.Tensor]) -> dict:
    return {"epoch": 22, "model_state": sd, "optimizer_state": {"state": {}, "param_groups": []},
            "cfg": "MODEL:\n  ARCH: slowfast\n"}


# --- FFN-pytorch 2D: resnet_TSM_FFN.resnet50 inside TSN (dropout > 0: fc -> Dropout, new_fc) -----------
def authors_tsm_ffn(width: int, classes: int, seed: int = 0) -> dict:
    g = Gen(seed)
    g.t("base_model.conv1.weight", width, 3, 7, 7)
    g.bn("base_model.bn1", width, SUBS)
    inplanes = width
    for i, n in enumerate(R50):
        planes = width * 2**i
        for j in range(n):
            pre = f"base_model.layer{i + 1}.{j}"
            g.t(f"{pre}.conv1.weight", planes, inplanes, 1, 1)
            g.bn(f"{pre}.bn1", planes, SUBS)
            g.t(f"{pre}.conv2.weight", planes, planes, 3, 3)
            g.bn(f"{pre}.bn2", planes, SUBS)
            g.t(f"{pre}.conv3.weight", planes * 4, planes, 1, 1)
            g.bn(f"{pre}.bn3", planes * 4, SUBS)
            if j == 0:
                g.t(f"{pre}.downsample_conv.weight", planes * 4, inplanes, 1, 1)
                g.bn(f"{pre}.downsample_bn", planes * 4, SUBS)
            for s in SUBS:
                g.t(f"{pre}.adaconv_{s}.weight", inplanes, 1, 1, 1, scale=0.05)
            inplanes = planes * 4
    g.t("new_fc.weight", classes, inplanes)
    g.t("new_fc.bias", classes)
    return tsn_wrapper(g.sd)


# --- FFN-pytorch 2D: resnet_TEA_FFN.resnet50 (Res2Net 26w x 4s + ME + MTA n_div=2, no adaconv) -----------
def authors_tea_ffn(width: int, classes: int, seed: int = 0) -> dict:
    g = Gen(seed)
    g.t("base_model.conv1.weight", width, 3, 7, 7)
    g.bn("base_model.bn1", width, SUBS)
    inplanes = width
    for i, n in enumerate(R50):
        planes = width * 2**i
        w = int(math.floor(planes * (26 / 64.0)))
        for j in range(n):
            pre = f"base_model.layer{i + 1}.{j}"
            c = w * 4
            g.t(f"{pre}.me.conv1.weight", c // 16, c, 1, 1)
            g.bn(f"{pre}.me.bn1", c // 16, SUBS)
            g.t(f"{pre}.me.conv2.weight", c // 16, 1, 3, 3)
            g.t(f"{pre}.me.conv3.weight", c, c // 16, 1, 1)
            g.bn(f"{pre}.me.bn3", c, SUBS)
            g.t(f"{pre}.conv1.weight", c, inplanes, 1, 1)
            g.bn(f"{pre}.bn1", c, SUBS)
            for k in range(3):
                g.t(f"{pre}.convs.{k}.weight", w, w, 3, 3)
                for s in SUBS:
                    g.bn(f"{pre}.bns_{s}.{k}", w, sep="")
            for k in range(4):  # ShiftModule(width, n_div=2): Conv1d(2*fold, 2*fold, 3); 2*fold = width (even)
                g.t(f"{pre}.shifts.{k}.conv.weight", w, 1, 3, scale=0.5)
            g.t(f"{pre}.conv3.weight", planes * 4, c, 1, 1)
            g.bn(f"{pre}.bn3", planes * 4, SUBS)
            if j == 0:
                g.t(f"{pre}.downsample_conv.weight", planes * 4, inplanes, 1, 1)
                g.bn(f"{pre}.downsample_bn", planes * 4, SUBS)
            inplanes = planes * 4
    g.t("new_fc.weight", classes, inplanes)
    g.t("new_fc.bias", classes)
    return tsn_wrapper(g.sd)


# --- PySlowFast SlowFast R50 (ALPHA 4, BETA_INV 8, fusion ratio 2, kernel 7) and the authors' FFN form ---
def slowfast(width: int, classes: int, ffn: bool, seed: int = 0) -> dict:
    g = Gen(seed)
    subs = SUBS if ffn else None
    f = width // 8
    g.t("s1.pathway0_stem.conv.weight", width, 3, 1, 7, 7)
    g.bn("s1.pathway0_stem.bn", width, subs)
    g.t("s1.pathway1_stem.conv.weight", f, 3, 5, 7, 7)
    g.bn("s1.pathway1_stem.bn", f, subs)

    def fuse(i: int, fc: int) -> None:
        g.t(f"s{i}_fuse.conv_f2s.weight", fc * 2, fc, 7, 1, 1)
        g.bn(f"s{i}_fuse.bn", fc * 2, subs)

    fuse(1, f)
    dims = [width + 2 * f, f]
    temporal = ((1, 3), (1, 3), (3, 3), (3, 3))
    for st, n in enumerate(R50):
        for p in (0, 1):
            inner = (width if p == 0 else f) * 2**st
            out = inner * 4
            for j in range(n):
                pre = f"s{st + 2}.pathway{p}_res{j}"
                cin = dims[p] if j == 0 else out
                if j == 0 and (cin != out or st > 0):
                    g.t(f"{pre}.branch1.weight", out, cin, 1, 1, 1)
                    g.bn(f"{pre}.branch1_bn", out, subs)
                g.t(f"{pre}.branch2.a.weight", inner, cin, temporal[st][p], 1, 1)
                g.bn(f"{pre}.branch2.a_bn", inner, subs)
                g.t(f"{pre}.branch2.b.weight", inner, inner, 1, 3, 3)
                g.bn(f"{pre}.branch2.b_bn", inner, subs)
                g.t(f"{pre}.branch2.c.weight", out, inner, 1, 1, 1)
                g.bn(f"{pre}.branch2.c_bn", out, subs)
                if ffn:
                    for s in SUBS:
                        g.t(f"{pre}.branch2.adaconv_{s}.weight", cin, 1, 1, 1, 1, scale=0.05)
            dims[p] = out
        if st < 3:
            fuse(st + 2, dims[1])
            dims[0] += 2 * dims[1]
    g.t("head.projection.weight", classes, dims[0] + dims[1])
    g.t("head.projection.bias", classes)
    return pyslowfast_wrapper(g.sd)


# --- Sense-X UniFormer-S video and the authors' Uniformer_FFN (depths 3/4/8/3, head dim 64) -------------
def uniformer(dims: tuple[int, int, int, int], classes: int, ffn: bool, seed: int = 0,
              depths: tuple[int, ...] = (3, 4, 8, 3)) -> dict:
    g = Gen(seed)
    subs = SUBS if ffn else None
    cin = 3
    for i, (depth, dim) in enumerate(zip(depths, dims, strict=True)):
        pe = f"patch_embed{i + 1}"
        if i == 0:
            g.t(f"{pe}.proj.weight", dim, cin, 3, 4, 4)
        else:
            g.t(f"{pe}.proj.weight", dim, cin, 1, 2, 2)
        g.t(f"{pe}.proj.bias", dim)
        g.ln(f"{pe}.norm", dim, subs)
        for j in range(depth):
            b = f"blocks{i + 1}.{j}"
            g.t(f"{b}.pos_embed.weight", dim, 1, 3, 3, 3)
            g.t(f"{b}.pos_embed.bias", dim)
            if i < 2:
                g.bn(f"{b}.norm1", dim, subs)
                g.t(f"{b}.conv1.weight", dim, dim, 1, 1, 1)
                g.t(f"{b}.conv1.bias", dim)
                g.t(f"{b}.attn.weight", dim, 1, 5, 5, 5)
                g.t(f"{b}.attn.bias", dim)
                g.t(f"{b}.conv2.weight", dim, dim, 1, 1, 1)
                g.t(f"{b}.conv2.bias", dim)
                g.bn(f"{b}.norm2", dim, subs)
                g.t(f"{b}.mlp.fc1.weight", 4 * dim, dim, 1, 1, 1)
                g.t(f"{b}.mlp.fc2.weight", dim, 4 * dim, 1, 1, 1)
            else:
                g.ln(f"{b}.norm1", dim, subs)
                g.t(f"{b}.attn.qkv.weight", 3 * dim, dim)
                g.t(f"{b}.attn.qkv.bias", 3 * dim)
                g.t(f"{b}.attn.proj.weight", dim, dim)
                g.t(f"{b}.attn.proj.bias", dim)
                g.ln(f"{b}.norm2", dim, subs)
                g.t(f"{b}.mlp.fc1.weight", 4 * dim, dim)
                g.t(f"{b}.mlp.fc2.weight", dim, 4 * dim)
            g.t(f"{b}.mlp.fc1.bias", 4 * dim)
            g.t(f"{b}.mlp.fc2.bias", dim)
            if ffn:
                for s in SUBS:
                    g.t(f"{b}.adaconv_{s}.weight", dim, 1, 1, 1, 1, scale=0.05)
        cin = dim
    g.bn("norm", cin, subs)
    g.t("head.weight", classes, cin)
    g.t("head.bias", classes)
    return {"model_state": g.sd} if ffn else g.sd


# --- mit-han-lab TSM (blockres: conv1 wrapped as TemporalShift(net=conv1)) -------------------------------
def tsm_repo(width: int, classes: int, seed: int = 0) -> dict:
    sd = torchvision_resnet50(width, 1000, seed)
    out = {}
    for k, v in sd.items():
        if k.startswith("fc."):
            continue
        parts = k.split(".")
        if len(parts) == 4 and parts[0].startswith("layer") and parts[2] == "conv1":
            k = ".".join([*parts[:3], "net", parts[3]])
        out[f"base_model.{k}"] = v
    g = Gen(seed + 1)
    g.t("new_fc.weight", classes, 32 * width)
    g.t("new_fc.bias", classes)
    out.update(g.sd)
    return tsn_wrapper(out)


# --- torchvision.models.resnet50 / timm res2net50_26w_4s (plain state dicts) -----------------------------
def torchvision_resnet50(width: int, classes: int = 1000, seed: int = 0) -> dict:
    g = Gen(seed)
    g.t("conv1.weight", width, 3, 7, 7)
    g.bn("bn1", width)
    inplanes = width
    for i, n in enumerate(R50):
        planes = width * 2**i
        for j in range(n):
            pre = f"layer{i + 1}.{j}"
            g.t(f"{pre}.conv1.weight", planes, inplanes, 1, 1)
            g.bn(f"{pre}.bn1", planes)
            g.t(f"{pre}.conv2.weight", planes, planes, 3, 3)
            g.bn(f"{pre}.bn2", planes)
            g.t(f"{pre}.conv3.weight", planes * 4, planes, 1, 1)
            g.bn(f"{pre}.bn3", planes * 4)
            if j == 0:
                g.t(f"{pre}.downsample.0.weight", planes * 4, inplanes, 1, 1)
                g.bn(f"{pre}.downsample.1", planes * 4)
            inplanes = planes * 4
    g.t("fc.weight", classes, inplanes)
    g.t("fc.bias", classes)
    return g.sd


def timm_res2net50(width: int, classes: int = 1000, seed: int = 0) -> dict:
    g = Gen(seed)
    g.t("conv1.weight", width, 3, 7, 7)
    g.bn("bn1", width)
    inplanes = width
    for i, n in enumerate(R50):
        planes = width * 2**i
        w = int(math.floor(planes * (26 / 64.0)))
        for j in range(n):
            pre = f"layer{i + 1}.{j}"
            g.t(f"{pre}.conv1.weight", w * 4, inplanes, 1, 1)
            g.bn(f"{pre}.bn1", w * 4)
            for k in range(3):
                g.t(f"{pre}.convs.{k}.weight", w, w, 3, 3)
                g.bn(f"{pre}.bns.{k}", w)
            g.t(f"{pre}.conv3.weight", planes * 4, w * 4, 1, 1)
            g.bn(f"{pre}.bn3", planes * 4)
            if j == 0:
                g.t(f"{pre}.downsample.0.weight", planes * 4, inplanes, 1, 1)
                g.bn(f"{pre}.downsample.1", planes * 4)
            inplanes = planes * 4
    g.t("fc.weight", classes, inplanes)
    g.t("fc.bias", classes)
    return g.sd
