"""``ffn-train --shift causal --context MAX``: train on the labels a continuous stream gives.

Online mode runs a causal model one frame at a time and carries the temporal-shift buffers from frame
to frame, across video boundaries: on a camera, the frames before a clip belong to other scenes. A
model trained on clips alone only ever saw zero buffers before a clip's first frame. Here every
clip of a batch is preceded by L context frames of OTHER videos (L drawn per batch, uniform in
[0, MAX], 0 included: a stream's start or a reset), and the loss is taken on the mean of the last n
per-frame logits only: what an online stream labels the clip with.

Why this is exact and not an approximation: a causal shift over the concatenation context + clip
gives frame t the previous frame's channels, and at the clip's first frame those are the last
context frame's, which is precisely the buffer a step graph carries there (``export.step``). So
running the (L + n)-frame concatenation through the model and averaging the last n per-frame logits
equals the online stream fed the context frames and then the clip (tested against the exported step
graphs). The context comes from the same batch, clips rolled by one (sample i is preceded by sample
i-1's clip at the same frame count, i.e. the same sub-network at its own stride; longer contexts
chain i-2, i-3, ...), so it costs no extra data loading. Gradients flow through the context frames
too: the buffers are activations of the same weights, as at run time.

Norm layers in training mode: the context frames are in the batch the norms normalise over. They
are frames of the same training distribution at the same frame count (a specialised norm of
sub-network k sees only k's frames, context included, as at run time), so the batch statistics stay
unbiased and get more frames; and their shift channels are mostly carried rather than zero-padded,
which is what a stream's frames look like at run time. Excluding them would need a norm that
normalises part of its batch, and the running statistics would then describe zero-padded clips
only, not the stream the option trains for.

Beyond the network's temporal receptive field (one frame per shift layer on the path, e.g. 8 for
TSM-ResNet-18) context frames no longer reach the clip's logits: a larger MAX only costs compute.

Two variants aim at what the option costs at zero buffers (the stream's start, a scene-cut reset):
``--context-clean P`` gives a share P of the batches no context at all, so the model keeps seeing
clips as a reset stream does. ``--context-teacher W`` adds W·T²·KL(p_alone ‖ p_context) at temperature
``TEACHER_TEMPERATURE``: the same model's label on the clip alone (zero buffers, no gradient: a target,
not a second task; dropout off and the norms' running statistics untouched, so the extra forward
changes nothing but the loss) pulls the with-context label towards it, i.e. the model is asked to
ignore stale buffers rather than to find a label that fits both. Its cost is one forward of the clips
alone per step without the backward.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .models import VideoClassifier

# --context-teacher's softening of both labels (the usual knowledge-distillation temperature); the loss
# is scaled by its square so its gradient does not shrink with it
TEACHER_TEMPERATURE = 2.0


def draw_length(rng: np.random.Generator, max_frames: int, clean: float = 0.0) -> int:
    """The context length of one batch: uniform in [0, max_frames], 0 included; with ``clean`` > 0
    (``--context-clean``) 0 with probability ``clean`` first (no extra draw when ``clean`` is 0, so
    runs without it draw the same lengths as before it existed)."""
    if clean > 0.0 and rng.random() < clean:
        return 0
    return int(rng.integers(0, max_frames + 1))


def with_context(clips: torch.Tensor, length: int) -> torch.Tensor:
    """``(B, length + n, ...)``: each clip preceded by the last ``length`` frames of the batch's other clips.

    Sample i's context is sample i-1's clip (then i-2's, ... for a context longer than one clip),
    never its own: a batch of one gets no context. ``length`` 0 returns ``clips`` itself.
    """
    b, n = int(clips.shape[0]), int(clips.shape[1])
    if length <= 0 or b < 2:
        return clips
    rolls = -(-length // n)  # clips needed to cover ``length`` frames
    # oldest first; shifts 1 .. b-1 repeat for contexts longer than b-1 clips, never 0 (the clip itself)
    parts = [clips.roll(1 + (m - 1) % (b - 1), dims=0) for m in range(rolls, 0, -1)]
    return torch.cat([*parts, clips], dim=1)[:, rolls * n - length :]


def tail_logits(model: VideoClassifier, clips: torch.Tensor, subnet: int, last: int) -> torch.Tensor:
    """Logits ``(B, K)``: the mean of the last ``last`` per-frame logits of sub-network ``subnet`` run on
    the whole of ``clips`` (B, T, C, H, W): the label an online stream gives after those T frames."""
    t = int(clips.shape[1])
    if not 1 <= last <= t:
        raise ValueError(f"last must be in [1, {t}], got {last}")
    with model.ctx.use(subnet, t):
        per_frame = model.forward_frames(clips.flatten(0, 1)).unflatten(0, (-1, t))
    return per_frame[:, t - last :].mean(dim=1)


@contextmanager
def as_teacher(net: nn.Module) -> Iterator[None]:
    """No gradient, dropout off, and every norm's running statistics (and batch counter) restored
    afterwards: a forward under it changes neither the weights' gradients nor the model's state.
    The norms keep normalising by the batch's own statistics, as the student's forward does."""
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    saved = [{k: b.clone() for k, b in m.named_buffers(recurse=False) if b is not None} for m in norms]
    drops = [m for m in net.modules() if isinstance(m, nn.modules.dropout._DropoutNd) and m.training]
    for m in drops:
        m.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for m in drops:
            m.train()
        with torch.no_grad():
            for m, buffers in zip(norms, saved, strict=True):
                for k, b in buffers.items():
                    getattr(m, k).copy_(b)


def teacher_logits(net: nn.Module, forward: Callable[[], Sequence[torch.Tensor]]) -> list[torch.Tensor]:
    """``forward()``'s logits (the clips alone) computed under ``as_teacher(net)``: detached targets."""
    with as_teacher(net):
        return [t.detach() for t in forward()]


def invariance_kl(with_context: Sequence[torch.Tensor], alone: Sequence[torch.Tensor],
                  temperature: float = TEACHER_TEMPERATURE) -> torch.Tensor:
    """Σ_k T²·KL(p_alone,k ‖ p_context,k) at temperature T, batch-mean: each sub-network's label after
    context pulled towards its own label on the clip alone (``alone`` detached: no gradient to it)."""
    if len(with_context) != len(alone) or not with_context:
        raise ValueError("invariance_kl needs one clip-alone label per with-context label")
    total = with_context[0].new_zeros((), dtype=torch.float32)
    for s, t in zip(with_context, alone, strict=True):
        target = F.softmax(t.detach().float() / temperature, dim=-1)
        total = total + F.kl_div(F.log_softmax(s.float() / temperature, dim=-1), target, reduction="batchmean")
    return total * temperature**2
