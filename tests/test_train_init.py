"""ffn-train --init for --method ffn: a causal FFN starts from a bidirectional one's weights (online mode)."""

import pytest
import torch
from ffn_edge.runtime.errors import ConfigError

from ffn_edge.checkpoint import CheckpointMeta, save_checkpoint
from ffn_edge.models import ModelConfig, create_model, perturb_like_trained
from ffn_edge.train import TrainConfig, build_models, resolve


def test_ffn_init_loads_every_weight_whatever_the_shift(tmp_path) -> None:
    cfg = ModelConfig("tsm_resnet18", 5, width_mult=0.125)
    src = create_model(cfg).eval()
    perturb_like_trained(src, weight_std=0.05)
    save_checkpoint(tmp_path / "b.safetensors", src, CheckpointMeta(cfg, list("abcde"), input_size=32))
    train = resolve(TrainConfig(width_mult=0.125, shift="causal", init=str(tmp_path / "b.safetensors")))
    configs, (model,) = build_models(train, 5, (4, 8, 16))
    assert configs[0].shift == "causal"
    want = src.state_dict()
    assert all(torch.equal(v, want[k]) for k, v in model.state_dict().items())
    fresh = build_models(resolve(TrainConfig(width_mult=0.125, shift="causal")), 5, (4, 8, 16))[1][0]
    assert not all(torch.equal(v, want[k]) for k, v in fresh.state_dict().items())  # the load did something
    with pytest.raises(ConfigError, match=r"width mult: checkpoint 0.125, this run 0.25"):
        build_models(resolve(TrainConfig(width_mult=0.25, init=str(tmp_path / "b.safetensors"))), 5, (4, 8, 16))
    with pytest.raises(ConfigError, match="needs weight sharing"):
        build_models(resolve(TrainConfig(width_mult=0.125, weight_sharing=False, init=str(tmp_path / "b.safetensors"))),
                     5, (4, 8, 16))
