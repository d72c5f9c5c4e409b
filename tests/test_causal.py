"""Causal (past -> present) temporal shift: its definition, its models, its checkpoint field and flag."""

from pathlib import Path

import pytest
import torch

from ffn_edge.checkpoint import (
    META_KEY,
    CheckpointError,
    CheckpointMeta,
    _sealed,
    load_checkpoint,
    read_meta,
    save_checkpoint,
)
from ffn_edge.core import validate as V
from ffn_edge.core.errors import ConfigError
from ffn_edge.layers import temporal_shift
from ffn_edge.models import ModelConfig, create_model, perturb_like_trained
from ffn_edge.train import build_parser

torch.set_num_threads(2)
SMALL = {"tsm_resnet18": 0.25, "tsm_resnet34": 0.125, "tsm_resnet50": 0.125, "tsm_mobilenetv2": 0.35}


def test_causal_shift_takes_a_quarter_from_the_previous_frame_only() -> None:
    x = torch.arange(1.0, 4.0).view(3, 1, 1, 1).expand(3, 8, 1, 1).contiguous()  # frame t has value t+1
    y = temporal_shift(x, 3, shift_div=8, mode="causal").view(3, 8)
    assert y[:, :2].tolist() == [[0, 0], [1, 1], [2, 2]]  # 2 * (8 // 8) channels: frame t sees t-1, zero first
    assert y[:, 2:].equal(x.view(3, 8)[:, 2:])


def test_unknown_shift_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="shift must be one of bidirectional, causal"):
        ModelConfig("tsm_resnet18", 5, shift="forward")
    with pytest.raises(ValueError, match="shift mode"):
        temporal_shift(torch.zeros(2, 8, 1, 1), 2, mode="both")


def _per_frame_logits(model, clip: torch.Tensor, subnet: int) -> torch.Tensor:
    with torch.no_grad(), model.ctx.use(subnet, clip.shape[1]):
        return model.forward_frames(clip.flatten(0, 1))


@pytest.mark.parametrize("arch", sorted(SMALL))  # the TSM backbones: the ones with a causal form
def test_causal_frame_output_does_not_depend_on_later_frames(arch: str) -> None:
    torch.manual_seed(0)
    causal = create_model(ModelConfig(arch, 5, width_mult=SMALL[arch], shift="causal")).eval()
    both = create_model(ModelConfig(arch, 5, width_mult=SMALL[arch])).eval()
    perturb_like_trained(causal, weight_std=0.1)  # an untrained MobileNetV2 barely depends on its input
    both.load_state_dict(causal.state_dict())  # same weights: only the direction differs
    clip = torch.randn(1, 8, 3, 32, 32)
    later = clip.clone()
    later[:, 5:] = torch.randn(1, 3, 3, 32, 32)  # perturb frames 5..7
    for t in (4, 8):  # frame t = 4 is the last of a 4-frame clip, frames 0..4 of an 8-frame clip
        a, b = _per_frame_logits(causal, clip[:, :t], 1), _per_frame_logits(causal, later[:, :t], 1)
        assert torch.equal(a[:5], b[:5])
    a, b = _per_frame_logits(causal, clip, 1), _per_frame_logits(causal, later, 1)
    assert _differ(a[5:], b[5:])  # the perturbation reaches the network at all
    a, b = _per_frame_logits(both, clip, 1), _per_frame_logits(both, later, 1)
    assert _differ(a[4], b[4])  # the bidirectional model's frame 4 sees frame 5


def _differ(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Clearly different, relative to the logits' scale (an untrained MobileNetV2's logits are small)."""
    return float((a - b).abs().max()) > 1e-5 * float(a.abs().max())  # float noise: ~1e-7 relative


def test_causal_recorded_in_checkpoint_and_old_metadata_loads_bidirectional(tmp_path: Path) -> None:
    cfg = ModelConfig("tsm_mobilenetv2", 3, width_mult=0.35, shift="causal")
    model = create_model(cfg).eval()
    meta = CheckpointMeta(cfg, ["a", "b", "c"], input_size=32, resize_shorter=36)
    save_checkpoint(tmp_path / "c.safetensors", model, meta)
    loaded, got = load_checkpoint(tmp_path / "c.safetensors")
    assert got.config.shift == "causal"
    assert all(m.mode == "causal" for m in loaded.modules() if type(m).__name__ == "TemporalShift")
    old = {k: v for k, v in cfg.to_dict().items() if k != "shift"}  # a checkpoint written before the field
    assert ModelConfig.from_dict(old).shift == V.DEFAULT_SHIFT == "bidirectional"
    with pytest.raises(ValueError, match="shift must be one of"):
        ModelConfig.from_dict({**old, "shift": 1})
    bad = CheckpointMeta(cfg, ["a", "b", "c"], input_size=32, resize_shorter=36)
    text = bad.to_json().replace('"shift": "causal"', '"shift": "sideways"')
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    (tmp_path / "bad.safetensors").write_bytes(_sealed(tensors, {META_KEY: text}))
    with pytest.raises(CheckpointError, match="bad ffn-edge metadata .*shift must be one of"):
        read_meta(tmp_path / "bad.safetensors")


def test_train_flag() -> None:
    p = build_parser()
    assert p.parse_args([]).shift == "bidirectional"
    assert p.parse_args(["--shift", "causal"]).shift == "causal"
    with pytest.raises(ConfigError, match="shift"):
        p.parse_args(["--shift", "forward"])
