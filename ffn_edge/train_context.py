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
"""

from __future__ import annotations

import numpy as np
import torch

from .models import VideoClassifier


def draw_length(rng: np.random.Generator, max_frames: int) -> int:
    """The context length of one batch: uniform in [0, max_frames], 0 included."""
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
