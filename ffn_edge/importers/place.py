"""Place a source state dict into an ffn-edge model by a ``SourceSpec``'s table, or refuse.

The converted (frame-flexible) model names each tensor of the plain model in one of three ways:
a norm's tensor exists once per sub-network (``bn1.norms.K.weight``), a layer with a Weight
Alteration in front of it moved under ``.layer`` and gained ``.alteration.weight`` (one row per
sub-network), everything else kept its name. ``ModelIndex`` reads that from the module tree (by
module type, not by name patterns), so a table only ever names plain-model tensors.

Refusals (``ImportRefused``, one line): a source tensor no rule uses (and not documented as
ignorable), a model tensor nothing fills (and not documented as left at its init), two source
tensors for one model tensor, a shape that differs, a sub-network tag the model does not have.
"""

from __future__ import annotations

import dataclasses

import torch

from ..layers import Altered, SpecialisedNorm
from ..models import VideoClassifier
from .loader import ImportRefused
from .spec import SourceSpec

SHOW = 4  # names shown in a refusal


def _first(names: list[str]) -> str:
    return ", ".join(names[:SHOW]) + (", ..." if len(names) > SHOW else "")


class ModelIndex:
    """Plain-model tensor name -> the converted model's tensor name(s), read from the module tree."""

    def __init__(self, model: VideoClassifier) -> None:
        self.n_subnets = model.n_subnets
        self.norm: dict[str, list[str]] = {}  # plain name -> one converted name per sub-network
        self.shared: dict[str, str] = {}  # plain name -> converted name
        self.wa: dict[str, str] = {}  # plain layer path -> its alteration's weight (n_subnets, C)
        covered: set[str] = set()
        for path, m in model.named_modules():
            if isinstance(m, SpecialisedNorm):
                for k, norm in enumerate(m.norms):
                    for n in norm.state_dict():
                        self.norm.setdefault(f"{path}.{n}", []).append(f"{path}.norms.{k}.{n}")
                        covered.add(f"{path}.norms.{k}.{n}")
            elif isinstance(m, Altered):
                self.wa[path] = f"{path}.alteration.weight"
                covered.add(self.wa[path])
                for n in m.layer.state_dict():
                    self.shared[f"{path}.{n}"] = f"{path}.layer.{n}"
                    covered.add(f"{path}.layer.{n}")
        for name in model.state_dict():
            if name not in covered:
                self.shared[name] = name

    def plain_names(self) -> list[str]:
        return sorted([*self.norm, *self.shared])


@dataclasses.dataclass
class Placement:
    """What the import did, tensor by tensor (the benchmark and the checkpoint metadata read it)."""

    values: dict[str, torch.Tensor]  # converted model name -> value
    mapped: dict[str, str]  # source name -> plain-model target (a WA target is "PATH<wa:K>")
    ignored: list[str]  # source names documented as unused
    left_at_init: list[str]  # plain-model names the source does not provide (documented)
    identity_wa: list[str]  # alterations set to the identity (a plain source turned into FFN)
    new_head: list[str]  # source head tensors replaced by a new head (another class count)


def place(state: dict[str, torch.Tensor], spec: SourceSpec, model: VideoClassifier) -> Placement:
    """Fill ``model``'s tensors from ``state`` by ``spec``'s table; ImportRefused on any gap."""
    index = ModelIndex(model)
    own = model.state_dict()
    p = Placement({}, {}, [], [], [], [])
    origin: dict[str, str] = {}  # converted name -> source name (catches two sources for one tensor)
    wa_rows: dict[str, dict[int, torch.Tensor]] = {}
    unused: list[str] = []
    for name in sorted(state):
        rule, m = next(((r, m) for r in spec.rules if (m := r.match(name))), (None, None))
        if rule is None or m is None:
            (p.ignored if spec.ignored(name) else unused).append(name)
            continue
        target = rule.expand(m)
        tag = m.groupdict().get("s")
        k = _subnet(spec, tag, index.n_subnets, name)
        value = state[name]
        if rule.kind == "wa":
            if target not in index.wa:
                raise ImportRefused(f"{spec.source}: {name} is a Weight Alteration for {target}, which this "
                                    f"{spec.arch} model has none of (weight_alteration off, or a table error)")
            rows = wa_rows.setdefault(target, {})
            if k is None or k in rows:
                raise ImportRefused(f"{spec.source}: {name}: a second Weight Alteration for {target}")
            rows[k] = value.reshape(-1)
            p.mapped[name] = f"{target}<wa:{k}>"
            continue
        if rule.head and target in index.shared and own[index.shared[target]].shape != value.shape and spec.new_head:
            p.new_head.append(name)
            continue
        dests = _destinations(spec, index, name, target, k)
        for dest in dests:
            want = own[dest].shape
            v = value.reshape(want) if rule.kind == "reshape" and value.numel() == own[dest].numel() else value
            if v.shape != want:
                raise ImportRefused(f"{spec.source}: {name} is {tuple(value.shape)} but {dest} of {spec.arch} is "
                                    f"{tuple(want)} (another architecture, width or class count?)")
            if dest in origin:
                raise ImportRefused(f"{spec.source}: {origin[dest]} and {name} both map to {dest}")
            origin[dest] = name
            p.values[dest] = v.to(own[dest].dtype).clone()
        p.mapped[name] = target
    if unused:
        raise ImportRefused(f"{spec.source} -> {spec.arch}: {len(unused)} source tensors match no rule of the "
                            f"table ({_first(unused)}): another architecture or source?")
    _alterations(spec, index, wa_rows, own, p)
    _check_filled(spec, index, own, p)
    return p


def _subnet(spec: SourceSpec, tag: str | None, n_subnets: int, name: str) -> int | None:
    if tag is None:
        return None
    if tag not in spec.tags:
        raise ImportRefused(f"{spec.source}: {name}: unknown sub-network tag {tag!r} (known: {', '.join(spec.tags)})")
    k = spec.tags.index(tag)
    if len(spec.tags) != n_subnets:
        raise ImportRefused(f"{spec.source}: the checkpoint has {len(spec.tags)} sub-networks, the model "
                            f"{n_subnets}: give --frames with {len(spec.tags)} counts")
    return k


def _destinations(spec: SourceSpec, index: ModelIndex, name: str, target: str, k: int | None) -> list[str]:
    if target in index.norm:
        copies = index.norm[target]
        return copies if k is None else [copies[k]]  # a plain norm fills every sub-network's copy
    if target in index.shared:
        if k is not None:
            raise ImportRefused(f"{spec.source}: {name} is per sub-network but {target} is shared (table error)")
        return [index.shared[target]]
    raise ImportRefused(f"{spec.source}: {name} maps to {target}, which {spec.arch} does not have "
                        "(another architecture or variant?)")


def _alterations(spec: SourceSpec, index: ModelIndex, wa_rows: dict[str, dict[int, torch.Tensor]],
                 own: dict[str, torch.Tensor], p: Placement) -> None:
    for path, dest in index.wa.items():
        rows = wa_rows.get(path)
        if rows is None:
            if spec.ffn:
                continue  # reported as unfilled below
            p.values[dest] = torch.zeros_like(own[dest])  # x * (1 + 0): the plain network, unchanged
            p.identity_wa.append(path)
            continue
        if sorted(rows) != list(range(index.n_subnets)):
            raise ImportRefused(f"{spec.source}: Weight Alteration of {path} has rows {sorted(rows)} of "
                                f"{index.n_subnets}")
        w = torch.stack([rows[k] for k in range(index.n_subnets)])
        if w.shape != own[dest].shape:
            raise ImportRefused(f"{spec.source}: Weight Alteration of {path} is {tuple(w.shape)}, the model's "
                                f"{tuple(own[dest].shape)}")
        p.values[dest] = w.to(own[dest].dtype)


def _check_filled(spec: SourceSpec, index: ModelIndex, own: dict[str, torch.Tensor], p: Placement) -> None:
    plain_of = {c: n for n, cs in index.norm.items() for c in cs} | {c: n for n, c in index.shared.items()}
    plain_of |= {dest: path for path, dest in index.wa.items()}
    missing: list[str] = []
    heads = {index.shared.get(n) for n in _head_targets(spec)} if p.new_head else set()
    for name in own:
        if name in p.values or name.endswith("num_batches_tracked") or name in heads:
            continue
        plain = plain_of.get(name, name)
        if spec.left_at_init(plain):
            if plain not in p.left_at_init:
                p.left_at_init.append(plain)
            continue
        missing.append(name)
    if missing:
        raise ImportRefused(f"{spec.source} -> {spec.arch}: {len(missing)} model tensors are not filled by the "
                            f"checkpoint ({_first(missing)}): another architecture or source?")


def _head_targets(spec: SourceSpec) -> list[str]:
    """Plain-model names the spec's head rules target (their templates have no groups but {p})."""
    return [r.target.replace("{p}", p) for r in spec.rules if r.head for p in ("weight", "bias")]
