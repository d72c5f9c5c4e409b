"""What an importer source is: an explicit mapping table plus what the source was trained with.

A ``Rule`` maps source tensor names (a regular expression matched against the whole name) to one
tensor of the *plain* (unconverted) ffn-edge model. Target templates use ``{group}`` for a named
group of the match and ``{group+1}`` / ``{group-1}`` for a numeric group shifted by one (index
bases differ between code bases); nothing else is inferred — a name no rule matches is unused and
the import is refused. The named group ``s`` (when a rule has it) is the sub-network tag of an FFN
checkpoint (the authors' ``_4`` / ``_8`` / ``_16`` suffixes): it picks which sub-network's copy
of a norm (or which Weight Alteration row) the tensor fills.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

BN = r"(?P<p>weight|bias|running_mean|running_var)"  # a BatchNorm's tensors (num_batches_tracked is ignored)
LN = r"(?P<p>weight|bias)"
WB = r"(?P<p>weight|bias)"
SUB = r"(?P<s>4|8|16)"  # the authors' sub-network suffix
AUTHORS_TAGS = ("4", "8", "16")  # in sub-network order (fewest frames first)
NUM_BATCHES = r".*num_batches_tracked"

KINDS = ("tensor", "reshape", "wa")


@dataclasses.dataclass(frozen=True)
class Rule:
    """Source names matching ``source`` fill the plain model's tensor ``target``.

    ``kind``: "tensor" (same shape), "reshape" (same values in the target's shape, e.g. a Conv1d
    kernel as a Conv3d one), "wa" (a depth-wise 1x1 conv ``x + conv(x)`` = one row of the Weight
    Alteration in front of the layer ``target`` names). ``head``: the classifier (may be refused
    or replaced when the class count differs, see ``SourceSpec.new_head``).
    """

    source: str
    target: str
    kind: str = "tensor"
    head: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"rule kind must be one of {KINDS}, got {self.kind!r}")
        object.__setattr__(self, "_re", re.compile(self.source))

    def match(self, name: str) -> re.Match[str] | None:
        return self._re.fullmatch(name)  # type: ignore[attr-defined]

    def expand(self, m: re.Match[str]) -> str:
        def sub(t: re.Match[str]) -> str:
            value = m.group(t.group(1))
            return str(int(value) + int(t.group(2))) if t.group(2) else value
        return re.sub(r"\{(\w+)([+-]\d+)?\}", sub, self.target)


@dataclasses.dataclass(frozen=True)
class Preprocess:
    """The source's test-time input pipeline (what the weights were trained and evaluated with)."""

    input_size: int = 224  # centre crop side
    resize_shorter: int = 256  # shorter side before the crop
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    channels: str = "RGB"  # channel order the first convolution was trained on
    sampling: str = "tsn-centre"  # frame sampling: see docs/import.md
    resize: str = "PIL bilinear"  # the authors' resize (ffn-edge resizes with OpenCV INTER_LINEAR)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class SourceSpec:
    """One source x architecture: its table, what it leaves out, and how it was trained."""

    source: str  # the --from name
    arch: str  # the ffn-edge architecture it fills
    rules: tuple[Rule, ...]
    ffn: bool  # True: the checkpoint holds sub-networks (tags in the rules' group ``s``)
    frame_counts: tuple[int, ...]  # sub-network frame counts (FFN) or the default ST frame count (plain)
    preprocess: Preprocess = Preprocess()
    ignore: tuple[str, ...] = (NUM_BATCHES,)  # source names documented as unused
    model_init: tuple[str, ...] = ()  # plain-model names the source lacks, left at the architecture's init
    new_head: bool = False  # a head of another class count (ImageNet's 1000) is ignored, a new one made
    first_convs: tuple[str, ...] = ()  # plain-model names of the input convs (a BGR source is flipped here)
    config: tuple[tuple[str, Any], ...] = ()  # ModelConfig fields the weights need (fidelity options)
    tags: tuple[str, ...] = AUTHORS_TAGS
    note: str = ""

    def ignored(self, name: str) -> bool:
        return any(re.fullmatch(p, name) for p in self.ignore)

    def left_at_init(self, name: str) -> bool:
        return any(re.fullmatch(p, name) for p in self.model_init)
