"""Folding one sub-network's normalisation and Weight Alteration into per-channel constants.

Three steps:

1. ``deploy_model(model, k)`` (torch): a copy of the model that *is* sub-network ``k``. Each
   specialised BatchNorm becomes its inference form ``x * scale_k + shift_k`` (``ChannelAffine``),
   each Weight Alteration the constant per-channel factor ``1 + w_k`` (``ChannelScale``); other
   specialised norms (LayerNorm, GroupNorm) keep copy ``k`` as is. Every per-sub-network tensor's
   name contains ``.subnet_`` (``is_per_subnet``): the weight sharing step keeps exactly those
   inside each graph and moves everything else to the one shared weight file.
2. ``fold_channel_scales(onnx_model)`` (ONNX): removes Weight Alteration multiplies where algebra
   allows, using the exported graph's real data flow (consumer counts), not assumptions about blocks.
3. ``fold_norms(onnx_model, k, conv_copies)`` (ONNX): each BN that follows a shared convolution is
   folded into a per-sub-network copy of it (the chosen ones) or re-ordered so that ONNX Runtime can
   fuse half of it into the convolution's bias (the others); see below.

What is folded, and why not more:

* BN after a shared convolution (``fold_norms``, bundle-wide choice by ``choose_conv_copies``).
  Every convolution is shared by all sub-networks while every BN is per sub-network, so folding
  ``W * scale_k`` into the conv makes a per-sub-network copy of it: folding all of them would give a
  4/8/16 bundle 3x the conv weights, the very cost FFN removes. Kept apart, a norm costs a pass
  over its activation, which is large in the early, high-resolution layers, where the weights are
  small. So, selectively: the convolutions with the most activation per weight byte (the stem, the
  first stage, the first 1x1 downsample) get a per-sub-network copy with the norm folded in, as
  long as the copies' extra bytes stay within ``--fold-budget`` x the shared weights (default 2 %:
  TSM-ResNet-18 copies conv1, layer1.0's two convs and layer2.0.downsample, 0.36 MB per
  sub-network; 5 % was not clearly faster within the noise of a loaded machine and would take a
  4/8/16 bundle past the 1.05x-of-one-export size goal). Every
  other norm is exported as ``(conv + shift/scale) * scale``: ONNX Runtime folds the Add into the
  conv's bias without touching the shared weight, and runs the remaining per-channel Mul inside
  its NCHWc layout. The plain ``conv * scale + shift`` form (``bias_first=False``) made ORT leave
  NCHWc and come back around every norm (two reorders, an Add, an unfused ReLU): ~1.07-1.12x the
  latency of a single-frame-count export (TSM-ResNet-18, 112 px, 2 threads), against ~1.0x with
  Add then Mul and the default copies (``benchmarks/runtime_latency.py --compare-old``).
  A norm with a zero scale keeps the plain form. A bundle with one sub-network folds every norm.
* WA (``x * (1 + w_k)`` on a block's conv path, after the temporal shift) is removed exactly when
  (a) its input is a per-channel affine (the previous block's projection BN) consumed by nothing
  else: the factor folds into that BN's scale and shift (a MobileNetV2 block without a residual
  that follows another one: ``features.2``); or (b) the conv it feeds is depth-wise without bias
  and feeds only a per-channel multiply: ``dw(x * s) = dw(x) * s`` channel by channel, so the
  factor moves into the following BN's scale (MobileNetV2's expansion-1 block ``features.1``).
  That is 2 of MobileNetV2's 17 WA multiplies; the others follow a residual sum or a ReLU6.
* WA cannot be folded in residual blocks (every TSM-ResNet block, MobileNetV2 blocks with a
  residual): the block input also feeds the identity / downsample path, which must not see WA, and
  the op before it is a ReLU of a residual sum (not linear). Folding it into the block's first
  convolution's input channels is exact (the authors' ``W_k = W * diag(1 + w_k)``) but again makes
  a per-sub-network copy of that convolution (about half of a BasicBlock's weights), so it stays a
  per-channel Mul: C floats per block, and a negligible share of the block's FLOPs. (Where the block's
  first conv already has a per-sub-network copy, ``fold_norms``, WA could be folded into that copy
  exactly; not done yet: one pass per block, against a BN's one per conv.)
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Collection

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from ..layers import Altered, SpecialisedNorm
from ..models import VideoClassifier

SUBNET_TAG = ".subnet_"  # in the name of every per-sub-network tensor
CONV_COPY_TAG = ".conv_copy"  # ends the name of a sub-network's folded copy of a convolution weight


def is_per_subnet(name: str) -> bool:
    """Whether an initializer belongs to one sub-network (kept in its graph, not shared)."""
    return SUBNET_TAG in name


def _channel_shape(ndim: int, channels: int) -> tuple[int, ...]:
    """Broadcast shape of a per-channel vector for NC... tensors of ``ndim`` dims (channel dim 1)."""
    return (channels,) if ndim <= 1 else (1, channels) + (1,) * (ndim - 2)


class ChannelAffine(nn.Module):
    """Inference-mode BatchNorm of one sub-network: ``x * subnet_scale + subnet_shift``."""

    def __init__(self, bn: nn.modules.batchnorm._BatchNorm, ndim: int) -> None:
        super().__init__()
        inv = torch.rsqrt(bn.running_var.double() + bn.eps)
        weight = bn.weight.double() if bn.weight is not None else torch.ones_like(inv)
        bias = bn.bias.double() if bn.bias is not None else torch.zeros_like(inv)
        scale = weight * inv
        shape = _channel_shape(ndim, scale.numel())
        self.register_buffer("subnet_scale", scale.float().reshape(shape))
        self.register_buffer("subnet_shift", (bias - bn.running_mean.double() * scale).float().reshape(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.subnet_scale + self.subnet_shift


class ChannelScale(nn.Module):
    """Weight Alteration of one sub-network as a constant per-channel factor ``1 + w_k``."""

    def __init__(self, factor: torch.Tensor, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.register_buffer("subnet_scale", factor.detach().float().reshape(shape).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.subnet_scale


class SubnetNorm(nn.Module):
    """A norm that cannot become a constant affine (LayerNorm, ...): copy ``k``, tagged by name."""

    def __init__(self, norm: nn.Module) -> None:
        super().__init__()
        self.subnet_norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.subnet_norm(x)


_BN_NDIM = {nn.BatchNorm2d: 4, nn.BatchNorm3d: 5}
_LAYER_NDIM = {nn.Conv1d: 3, nn.Conv2d: 4, nn.Conv3d: 5, nn.Linear: 1}


def deploy_model(model: VideoClassifier, subnet: int) -> VideoClassifier:
    """A copy of ``model`` that computes sub-network ``subnet`` with folded norms and WA, in eval mode.

    The copy keeps its own FrameContext (the temporal shift still reads the frame count from it).
    """
    if not 0 <= subnet < model.n_subnets:
        raise ValueError(f"subnet {subnet} out of range: the model has {model.n_subnets} sub-networks")
    d = copy.deepcopy(model).eval()
    for name, m in list(d.named_modules()):
        if isinstance(m, SpecialisedNorm):
            norm = m.norms[subnet]
            ndim = _BN_NDIM.get(type(norm))
            new: nn.Module = (ChannelAffine(norm, ndim) if ndim and norm.track_running_stats
                              else SubnetNorm(norm))
            parent, _, child = name.rpartition(".")
            setattr(d.get_submodule(parent) if parent else d, child, new)
        elif isinstance(m, Altered):
            wa = m.alteration
            ndim = _LAYER_NDIM.get(type(m.layer)) or m.layer.ndim  # else an AlterationSite: it declares its rank
            channels = wa.weight.shape[1]
            shape = (channels,) if wa.channel_dim == -1 else _channel_shape(ndim, channels)
            m.alteration = ChannelScale(wa.scale(subnet), shape)
    return d


# ---------------------------------------------------------------- ONNX: fold WA multiplies


@dataclasses.dataclass
class FoldReport:
    """How many Weight Alteration multiplies a graph had and how each was handled."""

    wa_total: int = 0
    wa_into_affine: int = 0  # folded into the preceding BN's scale and shift
    wa_through_depthwise: int = 0  # moved through a depth-wise conv into the following BN scale

    @property
    def wa_kept(self) -> int:
        return self.wa_total - self.wa_into_affine - self.wa_through_depthwise


class _Graph:
    """Producer / consumer maps of an ONNX graph, rebuilt after every rewrite (graphs are small)."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.g = model.graph
        self.inits = {t.name: t for t in self.g.initializer}
        self.producer = {o: n for n in self.g.node for o in n.output}
        self.uses: dict[str, list[onnx.NodeProto]] = {}
        for n in self.g.node:
            for i in n.input:
                self.uses.setdefault(i, []).append(n)
        self.outputs = {o.name for o in self.g.output}

    def only_consumer(self, tensor: str) -> onnx.NodeProto | None:
        users = self.uses.get(tensor, [])
        return users[0] if len(users) == 1 and tensor not in self.outputs else None

    def per_channel(self, node: onnx.NodeProto, op: str) -> tuple[str, str] | None:
        """(variable input, constant name) of a binary ``op`` with one per-channel constant operand."""
        if node is None or node.op_type != op or len(node.input) != 2:
            return None
        consts = [i for i in node.input if i in self.inits]
        if len(consts) != 1:
            return None
        shape = tuple(self.inits[consts[0]].dims)
        if len(shape) < 2 or shape[0] != 1 or any(s != 1 for s in shape[2:]):
            return None
        var = node.input[0] if node.input[1] == consts[0] else node.input[1]
        return var, consts[0]

    def value(self, name: str) -> np.ndarray:
        return numpy_helper.to_array(self.inits[name])

    def set_const(self, node: onnx.NodeProto, old: str, value: np.ndarray) -> None:
        """Give ``node`` a per-sub-network constant ``value`` in place of ``old`` (copy if shared)."""
        if len(self.uses[old]) == 1 and is_per_subnet(old):
            self.inits[old].CopyFrom(numpy_helper.from_array(value.astype(np.float32), old))
            return
        base = old if is_per_subnet(old) else old + SUBNET_TAG.rstrip("_")
        new, i = f"{base}_folded", 1
        while new in self.inits:
            new, i = f"{base}_folded{i}", i + 1
        self.g.initializer.append(numpy_helper.from_array(value.astype(np.float32), new))
        self.inits[new] = self.g.initializer[-1]  # keep the maps right for further rewrites
        node.input[list(node.input).index(old)] = new
        self.uses[new] = [node]
        self.uses[old].remove(node)
        if not self.uses[old]:
            self.g.initializer.remove(self.inits.pop(old))

    def bypass(self, mul: onnx.NodeProto, source: str, const: str) -> None:
        """Remove ``mul``: its consumers read ``source`` instead; drop ``const`` if now unused."""
        out = mul.output[0]
        for n in self.uses.get(out, []):
            for j, i in enumerate(n.input):
                if i == out:
                    n.input[j] = source
        for o in self.g.output:
            if o.name == out:  # never happens for WA (a conv follows) but keep the graph valid
                raise ValueError(f"cannot bypass {mul.name}: its output is a graph output")
        self.g.node.remove(mul)
        if len(self.uses[const]) == 1:
            self.g.initializer.remove(self.inits[const])


def _fold_into_affine(gr: _Graph, mul: onnx.NodeProto, x: str, c: str) -> bool:
    """``(y*a + b) * c`` -> ``y*(a*c) + b*c`` when the affine's output feeds only this multiply."""
    add = gr.producer.get(x)
    shift = gr.per_channel(add, "Add")
    if shift is None or gr.only_consumer(x) is not mul:
        return False
    y, b = shift
    scale = gr.per_channel(gr.producer.get(y), "Mul")
    if scale is None or gr.only_consumer(y) is not add:
        return False
    a = scale[1]
    cv = gr.value(c)
    if not gr.value(a).shape == gr.value(b).shape == cv.shape:
        return False
    gr.set_const(gr.producer[y], a, gr.value(a) * cv)
    gr.set_const(add, b, gr.value(b) * cv)
    gr.bypass(mul, x, c)
    return True


def _fold_through_depthwise(gr: _Graph, mul: onnx.NodeProto, x: str, c: str) -> bool:
    """``dwconv(x*c) * a`` -> ``dwconv(x) * (a*c)`` for a bias-free depth-wise conv."""
    conv = gr.only_consumer(mul.output[0])
    if conv is None or conv.op_type != "Conv" or len(conv.input) != 2 or conv.input[1] not in gr.inits:
        return False
    w_shape = tuple(gr.inits[conv.input[1]].dims)
    group = next((a.i for a in conv.attribute if a.name == "group"), 1)
    cv = gr.value(c)
    channels = cv.size
    if w_shape[:2] != (channels, 1) or group != channels:
        return False
    nxt = gr.per_channel(gr.only_consumer(conv.output[0]), "Mul")
    if nxt is None:
        return False
    after = gr.only_consumer(conv.output[0])
    a = nxt[1]
    if gr.value(a).shape != cv.shape:
        return False
    gr.set_const(after, a, gr.value(a) * cv)
    conv.input[0] = x
    gr.g.node.remove(mul)
    if len(gr.uses[c]) == 1:
        gr.g.initializer.remove(gr.inits[c])
    return True


def fold_channel_scales(model: onnx.ModelProto) -> FoldReport:
    """Fold Weight Alteration multiplies of an exported sub-network graph in place (see module doc)."""
    report = FoldReport(wa_total=sum(1 for t in model.graph.initializer if "alteration" + SUBNET_TAG in t.name))
    rules = ((_fold_into_affine, "wa_into_affine"), (_fold_through_depthwise, "wa_through_depthwise"))
    progress = True
    while progress:
        progress = False
        gr = _Graph(model)
        for node in list(gr.g.node):
            operand = gr.per_channel(node, "Mul")
            if operand is None or "alteration" + SUBNET_TAG not in operand[1]:
                continue
            for rule, counter in rules:
                if rule(gr, node, *operand):
                    setattr(report, counter, getattr(report, counter) + 1)
                    progress = True
                    break
            if progress:
                break  # maps are stale: rebuild
    return report


# ---------------------------------------------------------------- ONNX: norms after convolutions


@dataclasses.dataclass(frozen=True)
class ConvNorm:
    """A shared convolution whose output goes only through one sub-network's norm ``x * scale + shift``."""

    weight: str  # the convolution's weight initializer (shared: the same name in every graph)
    weight_bytes: int
    out_elements: int  # per image (C*H*W of the output): what a separate per-channel op reads and writes


@dataclasses.dataclass
class NormReport:
    """How each sub-network norm that follows a convolution was exported."""

    into_conv_copy: int = 0  # folded into this sub-network's own copy of the convolution
    bias_first: int = 0  # Add(shift / scale) then Mul(scale): ORT fuses the Add into the conv's bias
    mul_add: int = 0  # left as Mul(scale) then Add(shift)


def _norm_after(gr: _Graph, conv: onnx.NodeProto) -> tuple[onnx.NodeProto, str, onnx.NodeProto, str] | None:
    """(Mul, scale, Add, shift) when ``conv`` (shared weight) feeds only a per-sub-network Mul -> Add."""
    if conv.op_type != "Conv" or len(conv.input) < 2 or conv.input[1] not in gr.inits or is_per_subnet(conv.input[1]):
        return None
    mul = gr.only_consumer(conv.output[0])
    scale = gr.per_channel(mul, "Mul")
    if scale is None or not is_per_subnet(scale[1]):
        return None
    add = gr.only_consumer(mul.output[0])
    shift = gr.per_channel(add, "Add")
    if shift is None or not is_per_subnet(shift[1]) or gr.value(scale[1]).shape != gr.value(shift[1]).shape:
        return None
    return mul, scale[1], add, shift[1]


def conv_norms(model: onnx.ModelProto) -> list[ConvNorm]:
    """The convolutions of an exported graph that a sub-network norm follows (candidates for folding)."""
    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)  # H, W through the shape ops
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in inferred.graph.value_info}
    gr = _Graph(model)
    found = []
    for conv in model.graph.node:
        dims = shapes.get(conv.output[0], [])[1:]
        if _norm_after(gr, conv) is None or not dims or not all(dims):
            continue
        found.append(ConvNorm(conv.input[1], gr.value(conv.input[1]).nbytes, int(np.prod(dims))))
    return found


def choose_conv_copies(candidates: list[ConvNorm], subnets: int, budget: float, shared_bytes: int) -> list[str]:
    """Which convolutions get a per-sub-network copy with the norm folded in, within a byte budget.

    A kept norm costs time in proportion to the activation it passes over (largest in the early,
    high-resolution layers); a copy costs ``(subnets - 1) * weight_bytes`` more weights (largest in
    the late, wide layers). Greedy by activation elements saved per weight byte, while the extra
    bytes stay within ``budget * shared_bytes``. One sub-network: copies cost nothing, fold all.
    """
    if subnets <= 1:
        return [c.weight for c in candidates]
    left = budget * shared_bytes
    chosen = []
    for c in sorted(candidates, key=lambda c: (-c.out_elements / c.weight_bytes, c.weight)):
        extra = (subnets - 1) * c.weight_bytes
        if extra <= left:
            chosen.append(c.weight)
            left -= extra
    return chosen


def conv_copy_name(weight: str, subnet: int) -> str:
    """Sub-network ``subnet``'s folded copy of a conv weight: per-sub-network, and one name per content.

    Copies are the one kind of per-sub-network tensor stored in the shared weight file (``share``):
    graphs of the same sub-network (frame counts that map to it) then hold one copy between them.
    """
    return f"{weight}{SUBNET_TAG}{subnet}{CONV_COPY_TAG}"


QUANTIZED_SUFFIX = "_quantized"  # ONNX Runtime's quantizer: the INT8 tensor quantized from initializer X


def is_conv_copy(name: str) -> bool:
    """Whether an initializer is a sub-network's folded copy of a convolution weight (FP32 or its INT8 form)."""
    return is_per_subnet(name) and (name.endswith(CONV_COPY_TAG) or name.endswith(CONV_COPY_TAG + QUANTIZED_SUFFIX))


def _topological(graph: onnx.GraphProto) -> None:
    """Re-order ``graph.node`` so every node follows its inputs' producers (after rewiring)."""
    ready = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, order = list(graph.node), []
    while pending:
        left = []
        for n in pending:
            if all(i in ready for i in n.input):
                order.append(n)
                ready.update(n.output)
            else:
                left.append(n)
        if len(left) == len(pending):
            raise ValueError("graph has a cycle or a missing input after folding norms")
        pending = left
    del graph.node[:]
    graph.node.extend(order)


def fold_norms(model: onnx.ModelProto, subnet: int, conv_copies: Collection[str] = (),
               bias_first: bool = True) -> NormReport:
    """Rewrite every sub-network norm that follows a shared convolution, in place.

    * conv weight in ``conv_copies``: ``conv(x, W) * s + b`` -> ``conv(x, W * s, b)`` with ``W * s``
      a new per-sub-network tensor (``conv_copy_name``): no separate op is left, ORT fuses what
      follows (ReLU, residual sum) into the convolution as for a plain model.
    * otherwise, when ``bias_first`` and no scale is 0: ``(conv(x, W) + b / s) * s``. Exact up to
      rounding (error ~ one ulp of ``b``), and ONNX Runtime's ConvAddFusion folds the Add into the
      convolution's bias without touching the shared weight, leaving one per-channel Mul that its
      NCHWc layout runs in place; the ``Mul -> Add`` form sends every norm out of NCHWc and back
      (two reorders, an Add and an unfused ReLU) and measured ~10 % slower (TSM-ResNet-18).
    """
    report = NormReport()
    copies = set(conv_copies)
    gr = _Graph(model)
    for conv in list(model.graph.node):
        found = _norm_after(gr, conv)
        if found is None:
            continue
        mul, s_name, add, b_name = found
        s, b = gr.value(s_name).reshape(-1), gr.value(b_name).reshape(-1)
        name = conv_copy_name(conv.input[1], subnet)
        if conv.input[1] in copies and name not in gr.inits:  # (a weight used by two convs: copy once)
            w = gr.value(conv.input[1])
            bias = gr.value(conv.input[2]) if len(conv.input) > 2 and conv.input[2] else np.zeros_like(b)
            shape = (-1,) + (1,) * (w.ndim - 1)
            model.graph.initializer.extend([
                numpy_helper.from_array((w.astype(np.float64) * s.reshape(shape)).astype(np.float32), name),
                numpy_helper.from_array((bias.astype(np.float64) * s + b).astype(np.float32), name + "_bias"),
            ])
            conv.input[:] = [conv.input[0], name, name + "_bias"]  # the bias (C floats) stays inline
            gr.inits[name] = model.graph.initializer[-2]
            conv.output[0] = add.output[0]
            model.graph.node.remove(mul)
            model.graph.node.remove(add)
            report.into_conv_copy += 1
        elif bias_first and np.all(s != 0) and np.all(np.isfinite(b / s)):
            gr.set_const(add, b_name, (b / s).reshape(gr.value(b_name).shape))  # a copy if shared
            out = add.output[0]
            add.input[:] = [conv.output[0], add.input[1] if add.input[0] == mul.output[0] else add.input[0]]
            add.output[0] = mul.output[0]
            mul.input[:] = [mul.output[0], s_name]
            mul.output[0] = out
            report.bias_first += 1
        else:
            report.mul_add += 1
    used = {i for n in model.graph.node for i in n.input}
    keep = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
    _topological(model.graph)
    return report
