"""ffn-train refuses non-finite and out-of-range numbers when it parses them (one line naming the option
and its range, never the whole value), states the range in --help, and stops at the first non-finite
loss with a one-line error before any NaN weights are saved."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

from ffn_edge import train as train_mod
from ffn_edge.core.errors import ConfigError, FFNError
from ffn_edge.data import SyntheticSet, make_synthetic
from ffn_edge.train import TrainConfig, build_parser, cli, train

torch.set_num_threads(1)

BAD = [("--lr", "nan"), ("--lr", "inf"), ("--lr", "0"), ("--lam", "nan"), ("--lam", "inf"), ("--weight-decay", "nan"),
       ("--weight-decay=-inf", None), ("--momentum", "nan"), ("--momentum", "inf"), ("--lam-ramp", "nan"),
       ("--lam-ramp", "inf"), ("--warmup-epochs", "nan"), ("--warmup-epochs", "inf"), ("--mix-alpha", "0"),
       ("--mix-alpha", "nan"), ("--min-lr", "nan"), ("--clip-grad", "inf"), ("--dropout", "nan"),
       ("--width-mult", "inf"), ("--rho", "nan"), ("--epochs", "1" * 100_000), ("--batch-size", "9" * 5000),
       ("--frame-counts", "nan"), ("--drop-path", "nan"), ("--drop-path", "inf"), ("--drop-path", "1.5")]


# Small enough that, were a bad value accepted, the run would end in seconds (and the test fail).
TINY = ["--width-mult", "0.0625", "--epochs", "1", "--max-batches", "1", "--synth-classes", "2",
        "--synth-train-per-class", "1", "--synth-val-per-class", "1", "--synth-frames", "8", "--synth-size", "16",
        "--frame-counts", "2", "4", "--batch-size", "1", "--workers", "0", "--quiet"]


@pytest.mark.parametrize("flag,value", BAD, ids=[f"{f} {str(v)[:8]}" for f, v in BAD])
def test_bad_numbers_are_refused_at_parse_time_in_one_short_line(flag, value, tmp_path):
    argv = TINY + [flag] + ([value] if value is not None else []) + ["--out", str(tmp_path / "run")]
    with pytest.raises(ConfigError) as e:
        cli(argv)
    msg = str(e.value)
    option = flag.split("=")[0]
    assert option in msg and ("[" in msg or "(" in msg) and "]" in msg, msg  # names the option and its range
    assert "\n" not in msg and len(msg) < 200, msg[:300]
    assert not (tmp_path / "run").exists()


def test_a_config_built_in_python_is_checked_the_same_way(tmp_path):
    for field, value in [("lr", math.nan), ("lam", math.inf), ("momentum", math.nan), ("warmup_epochs", math.inf),
                         ("lam_ramp", math.nan), ("mix_alpha", 0.0), ("weight_decay", -math.inf), ("epochs", 10**5000)]:
        with pytest.raises(ConfigError, match=f"--{field.replace('_', '-')} must"):
            small = dict(out=str(tmp_path / "run"), width_mult=0.0625, epochs=1, max_batches=1, synth_classes=2,
                         synth_train_per_class=1, synth_val_per_class=1, synth_frames=8, synth_size=16,
                         frame_counts=(2, 4), batch_size=1, workers=0, quiet=True)
            train(TrainConfig(**{**small, field: value}))
    assert not (tmp_path / "run").exists()


def test_help_states_every_range():
    helps = {a.option_strings[0]: a.help for a in build_parser()._actions if a.option_strings}
    for flag in ("--lr", "--momentum", "--weight-decay", "--lam-ramp", "--warmup-epochs", "--mix-alpha", "--lam",
                 "--epochs", "--frame-counts"):
        assert "range [" in helps[flag] or "range (" in helps[flag], helps[flag]


def test_command_line_refusal_is_one_stderr_line_exit_2(tmp_path):
    r = subprocess.run([sys.executable, "-m", "ffn_edge.train", *TINY, "--lr", "nan", "--out", str(tmp_path / "r")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--lr" in r.stderr, r.stderr


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> SyntheticSet:
    return make_synthetic(tmp_path_factory.mktemp("synthetic"), num_classes=2, train_per_class=2, val_per_class=1,
                          frames=8, size=32, seed=0)


def test_training_stops_at_the_first_non_finite_loss_and_saves_nothing(synth, tmp_path, monkeypatch):
    calls = []
    real = train_mod.ffn_loss

    def loss_going_nan(*a, **k):
        calls.append(1)
        loss = real(*a, **k)
        return loss * math.nan if len(calls) >= 2 else loss

    monkeypatch.setattr(train_mod, "ffn_loss", loss_going_nan)
    cfg = TrainConfig(dataset="frames", train_list=str(synth.train_list), val_list=str(synth.val_list),
                      root=str(synth.root), width_mult=0.0625, input_size=32, resize_shorter=32, batch_size=2,
                      workers=0, frame_counts=(2, 4), epochs=2, quiet=True, out=str(tmp_path / "run"))
    with pytest.raises(FFNError, match="loss is nan at epoch 1, batch 2"):
        train(cfg)
    assert len(calls) == 2  # stopped at the first one
    assert not list((tmp_path / "run").glob("*.safetensors"))
