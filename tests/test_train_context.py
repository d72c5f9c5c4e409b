"""ffn-train --context: clips preceded by other videos' frames, state carried as the step graphs carry it.

The exactness test runs the exported step graphs (the runtime's StepGraphs, ONNX Runtime) on the context
frames and then the clip, carrying the buffers, and compares with the torch model on the concatenation.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from ffn_edge.runtime import FFNRuntime

from ffn_edge import train as train_module
from ffn_edge.checkpoint import load_checkpoint, read_meta
from ffn_edge.core.errors import ConfigError
from ffn_edge.data import SyntheticSet
from ffn_edge.train import TrainConfig, cli, resolve, train
from ffn_edge.train_context import draw_length, tail_logits, with_context

torch.set_num_threads(1)


def tiny(synth: SyntheticSet, out: Path, **kw) -> TrainConfig:
    base = dict(dataset="frames", train_list=str(synth.train_list), val_list=str(synth.val_list),
                root=str(synth.root), width_mult=0.125, input_size=32, resize_shorter=32, batch_size=4, workers=0,
                epochs=1, max_batches=1, quiet=True, out=str(out), shift="causal")
    return TrainConfig(**{**base, **kw})


def _per_frame(model, clips: torch.Tensor, subnet: int) -> np.ndarray:
    t = clips.shape[1]
    with torch.no_grad(), model.ctx.use(subnet, t):
        return model.forward_frames(clips.flatten(0, 1)).unflatten(0, (-1, t)).numpy()


def _stepped(steps, frames: np.ndarray, subnet: int) -> np.ndarray:
    """Per-frame logits of the step graphs run on ``frames`` from zero buffers, state carried throughout."""
    state, out = steps.zero_state(subnet), []
    for f in frames:
        r = steps.run(np.ascontiguousarray(f, dtype=np.float32), subnet, state)
        state = r.state
        out.append(r.logits)
    return np.stack(out)


@pytest.mark.parametrize("subnet,length", [(0, 3), (1, 4), (1, 7)])
def test_context_and_clip_equal_the_step_graphs_carrying_state(causal_ckpt_and_bundle, subnet, length):
    """The last n frames' logits on the concatenation == the step graphs fed the context, then the clip."""
    ckpt, bundle = causal_ckpt_and_bundle
    model, meta = load_checkpoint(ckpt)
    model.eval()
    n = model.frame_counts[subnet]
    clips = torch.randn(3, n, 3, meta.input_size, meta.input_size, generator=torch.Generator().manual_seed(length))
    joined = with_context(clips, length)
    assert joined.shape[1] == length + n
    torch_frames = _per_frame(model, joined, subnet)[:, length:]
    with FFNRuntime.open(bundle, backend="ort-cpu", threads=1) as rt:
        steps = rt.step_graphs()
        for i in range(3):
            # what a stream shows before clip i: the clips of the samples before it, then clip i
            before = torch.cat([clips[(i - m) % 3] for m in range(-(-length // n), 0, -1)])[-length:]
            got = _stepped(steps, torch.cat([before, clips[i]]).numpy(), subnet)[length:]
            np.testing.assert_allclose(torch_frames[i], got, atol=1e-4, rtol=0)
            with torch.no_grad():
                label = tail_logits(model, joined[i : i + 1], subnet, n)[0].numpy()
            np.testing.assert_allclose(label, got.mean(axis=0), atol=1e-4, rtol=0)


def test_the_context_reaches_the_label_and_stays_out_of_the_mean(causal_ckpt_and_bundle):
    """Dropping the context, or averaging the context frames in, gives a different label."""
    ckpt, _ = causal_ckpt_and_bundle
    model, meta = load_checkpoint(ckpt)
    model.eval()
    n, length = model.frame_counts[1], 4
    clips = torch.randn(2, n, 3, meta.input_size, meta.input_size, generator=torch.Generator().manual_seed(0))
    joined = with_context(clips, length)
    with torch.no_grad():
        label = tail_logits(model, joined, 1, n)
        alone = model(clips, subnet=1)  # zero buffers: no context
        everything = model(joined, subnet=1)  # the mean over context frames too
    assert (label - alone).abs().max() > 1e-3
    assert (label - everything).abs().max() > 1e-3
    torch.testing.assert_close(tail_logits(model, clips, 1, n), alone)  # no context: the clip model exactly


def test_with_context_takes_other_samples_frames_oldest_first():
    clips = torch.arange(3 * 4, dtype=torch.float32).view(3, 4, 1, 1, 1)  # sample s, frame f: 4 s + f
    got = with_context(clips, 6).flatten(1)
    # sample 0: sample 1's last 2 frames (shift 2), sample 2's 4 frames (shift 1), then its own clip
    assert got[0].tolist() == [6, 7, 8, 9, 10, 11, 0, 1, 2, 3]
    assert got[1].tolist() == [10, 11, 0, 1, 2, 3, 4, 5, 6, 7]
    assert torch.equal(with_context(clips, 0), clips)
    assert torch.equal(with_context(clips[:1], 5), clips[:1])  # a batch of one has no other video
    two = with_context(clips[:2], 9).flatten(1)  # longer than the other clip: never the sample's own clip
    assert two[0].tolist() == [7, 4, 5, 6, 7, 4, 5, 6, 7, 0, 1, 2, 3]
    rng = np.random.default_rng(0)
    assert {draw_length(rng, 3) for _ in range(200)} == {0, 1, 2, 3}


def test_training_feeds_context_and_takes_the_loss_on_the_clip_frames(synth, tmp_path, monkeypatch):
    """The loop runs sub-network k on context + clip and averages the clip's n frames only."""
    seen = []
    real = train_module.tail_logits

    def spy(model, clips, subnet, last):
        seen.append((subnet, int(clips.shape[1]), last))
        return real(model, clips, subnet, last)

    monkeypatch.setattr(train_module, "tail_logits", spy)
    train(tiny(synth, tmp_path, context=5, max_batches=3))
    counts = (4, 8, 16)
    assert [s[0] for s in seen] == [0, 1, 2] * 3
    assert all(last == counts[k] and counts[k] <= t <= counts[k] + 5 for k, t, last in seen)
    lengths = {t - last for _, t, last in seen}
    assert lengths - {0}, "no batch had context frames"
    assert all(len({t - last for _, t, last in seen[i : i + 3]}) == 1 for i in range(0, 9, 3))  # one per batch


def test_context_is_refused_without_the_causal_shift(synth, tmp_path):
    with pytest.raises(ConfigError, match="--context needs --shift causal") as e:
        resolve(tiny(synth, tmp_path, shift="bidirectional", context=4))
    assert "\n" not in str(e.value)
    assert resolve(tiny(synth, tmp_path, shift="bidirectional")).context == 0  # off by default
    with pytest.raises(ConfigError, match=r"--context: must be an integer in \[0, 256\], got '-1'"):
        cli(["--shift", "causal", "--context", "-1"])


def test_unshared_members_train_with_context(synth, tmp_path):
    train(tiny(synth, tmp_path, context=3, weight_sharing=False))
    assert (tmp_path / "last_f16.safetensors").is_file()


def test_resume_takes_the_saved_context_and_refuses_a_changed_one(synth, tmp_path):
    flags = ["--dataset", "frames", "--train-list", str(synth.train_list), "--val-list", str(synth.val_list),
             "--root", str(synth.root), "--width-mult", "0.125", "--input-size", "32", "--resize-shorter", "32",
             "--batch-size", "4", "--workers", "0", "--max-batches", "1", "--epochs", "2", "--quiet",
             "--shift", "causal", "--context", "6"]
    run = tmp_path / "run"
    assert cli([*flags, "--out", str(run), "--stop-after", "1"]) == 0
    assert read_meta(run / "last.safetensors").extra["train_config"]["context"] == 6
    copy = shutil.copytree(run, tmp_path / "copy")
    with pytest.raises(ConfigError, match=r"options differ .*: context\b"):
        cli(["--out", str(copy), "--resume", "--context", "2", "--workers", "0", "--quiet"])
    assert cli(["--out", str(copy), "--resume", "--workers", "0", "--quiet"]) == 0  # context 6 from the run
    lines = (copy / "log.jsonl").read_text().splitlines()
    assert [json.loads(s)["epoch"] for s in lines] == [1, 2]
    assert read_meta(copy / "last.safetensors").extra["train_config"]["context"] == 6
