"""--init and --pretrained are applied or refused, never silently half-applied: each says what loaded and
what was skipped; a checkpoint of other frame counts, another shift setting or other shapes is refused
unless --partial-load; --init works in every training mode."""

from __future__ import annotations

import pytest
import torch

from ffn_edge.checkpoint import CheckpointMeta, save_checkpoint
from ffn_edge.core.errors import ConfigError
from ffn_edge.models import ModelConfig, create_model, perturb_like_trained
from ffn_edge.train import TrainConfig, build_models, resolve

W = 0.0625


def ckpt(path, frame_counts=(4, 8, 16), shift="bidirectional", flexible=True, classes=5, width=W):
    cfg = ModelConfig("tsm_resnet18", classes, frame_counts=frame_counts, width_mult=width, shift=shift,
                      specialised_norm=flexible, weight_alteration=flexible)
    model = create_model(cfg).eval()
    perturb_like_trained(model, weight_std=0.05)
    save_checkpoint(path, model, CheckpointMeta(cfg, [f"c{i}" for i in range(classes)], input_size=32))
    return path, model.state_dict()


def built(**kw):
    cfg = resolve(TrainConfig(width_mult=W, **kw))
    from ffn_edge.train import plan

    return build_models(cfg, 5, plan(cfg)[1])[1][0]


def same(model, want) -> bool:
    return all(torch.equal(v, want[k]) for k, v in model.state_dict().items())


def test_ffn_init_of_other_frame_counts_is_refused_unless_partial(tmp_path, capsys):
    path, want = ckpt(tmp_path / "a.safetensors", frame_counts=(2, 4, 8))
    with pytest.raises(ConfigError, match=r"frame counts: checkpoint \[2, 4, 8\], this run \[4, 8, 16\].*partial-load"):
        built(init=str(path))
    model = built(init=str(path), partial_load=True)
    assert same(model, want)  # same shapes: every tensor loads, and the run was told of the difference
    err = capsys.readouterr().err
    assert "--init" in err and "loaded" in err and "despite frame counts" in err


def test_init_from_a_causal_checkpoint_into_a_bidirectional_run_is_refused(tmp_path):
    path, _ = ckpt(tmp_path / "c.safetensors", shift="causal")
    with pytest.raises(ConfigError, match="shift: checkpoint causal, this run bidirectional"):
        built(init=str(path))


def test_ffn_init_of_other_shapes_lists_the_skipped_tensors_with_partial(tmp_path, capsys):
    path, _ = ckpt(tmp_path / "k.safetensors", classes=7)
    with pytest.raises(ConfigError, match="num classes: checkpoint 7, this run 5"):
        built(init=str(path))
    built(init=str(path), partial_load=True)
    assert "shape-mismatched" in capsys.readouterr().err


@pytest.mark.parametrize("method,extra", [("st", {"frames": 8}), ("mixed", {}), ("proportional", {})])
def test_init_is_applied_in_every_mode(tmp_path, method, extra, capsys):
    counts = (extra.get("frames", 16),)
    path, want = ckpt(tmp_path / "s.safetensors", frame_counts=counts, flexible=False)
    model = built(method=method, init=str(path), **extra)
    assert same(model, want)
    assert "--init" in capsys.readouterr().err
    fresh = built(method=method, **extra)
    assert not same(fresh, want)


def test_init_in_st_mode_of_another_frame_count_is_refused(tmp_path):
    path, _ = ckpt(tmp_path / "s16.safetensors", frame_counts=(16,), flexible=False)
    with pytest.raises(ConfigError, match="frame counts: checkpoint \\[16\\], this run \\[8\\]"):
        built(method="st", frames=8, init=str(path))


def test_pretrained_says_what_loaded_and_refuses_other_backbone_shapes(tmp_path, capsys):
    from safetensors.torch import save_file

    raw = create_model(ModelConfig("tsm_resnet18", 1000, frame_counts=(4,), width_mult=W))
    state = {k.removeprefix("model."): v.contiguous() for k, v in raw.state_dict().items()}
    good = tmp_path / "imagenet.safetensors"
    save_file(state, str(good))
    built(pretrained=str(good))
    err = capsys.readouterr().err
    assert "--pretrained" in err and "loaded" in err
    wide = create_model(ModelConfig("tsm_resnet18", 1000, frame_counts=(4,), width_mult=2 * W))
    other = tmp_path / "wider.safetensors"
    save_file({k.removeprefix("model."): v.contiguous() for k, v in wide.state_dict().items()}, str(other))
    with pytest.raises(ConfigError, match="backbone tensors have other shapes"):
        built(pretrained=str(other))
