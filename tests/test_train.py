"""ffn-train / ffn-eval on a tiny synthetic set (tsm_resnet18 at 1/8 width, 32 px): training, --resume, --init,
evaluation, DDP."""

import dataclasses
import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ffn_edge import evaluate as ffn_eval
from ffn_edge.checkpoint import CheckpointMeta, load_checkpoint, read_meta, save_checkpoint
from ffn_edge.core.errors import ConfigError, FFNError
from ffn_edge.data import SyntheticSet
from ffn_edge.losses import distill_kl, ffn_loss
from ffn_edge.models import ModelConfig, create_model, perturb_like_trained
from ffn_edge.train import TrainConfig, build_models, mix_low_into_high, resolve, train

torch.set_num_threads(1)  # the machine is shared: one thread is faster than two contended ones
TINY = ["--width-mult", "0.125", "--input-size", "32", "--batch-size", "4", "--workers", "0", "--quiet"]


def tiny(synth: SyntheticSet, out: Path, **kw) -> TrainConfig:
    """A TrainConfig for the tiny model on the tiny set, ``kw`` overriding."""
    base = dict(dataset="frames", train_list=str(synth.train_list), val_list=str(synth.val_list),
                root=str(synth.root), width_mult=0.125, input_size=32, resize_shorter=32, batch_size=4, workers=0,
                epochs=1, quiet=True, out=str(out))
    return TrainConfig(**{**base, **kw})


def run_cli(module: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}, timeout=120)


def test_kl_is_zero_when_subnetworks_agree() -> None:
    logits = torch.randn(5, 7)
    target = torch.randint(0, 7, (5,))
    assert distill_kl([logits.clone(), logits.clone()], logits).abs().item() < 1e-6
    torch.testing.assert_close(ffn_loss([logits, logits, logits], target), torch.nn.functional.cross_entropy(logits,
                                                                                                             target))


def test_kl_gives_the_teacher_no_gradient() -> None:
    student, teacher = torch.randn(4, 6, requires_grad=True), torch.randn(4, 6, requires_grad=True)
    distill_kl([student], teacher).backward()
    assert teacher.grad is None and student.grad is not None and student.grad.abs().sum() > 0


def test_no_distill_is_ce_on_every_subnetwork() -> None:
    logits = [torch.randn(3, 5) for _ in range(3)]
    y = torch.tensor([0, 1, 2])
    ce = torch.nn.functional.cross_entropy
    torch.testing.assert_close(ffn_loss(logits, y, distill=False), sum(ce(x, y) for x in logits))


def test_mixed_sampling_mixes_four_consecutive_frames() -> None:
    high, low = torch.zeros(2, 16, 3, 4, 4), torch.ones(2, 4, 3, 4, 4)
    mixed = mix_low_into_high(high, low, 0.25, start=5)
    assert mixed[:, 5:9].eq(0.25).all() and mixed[:, :5].eq(0).all() and mixed[:, 9:].eq(0).all()


@pytest.mark.slow
def test_few_steps_of_ffn_training_lower_the_loss(synth: SyntheticSet, tmp_path: Path) -> None:
    rec = train(tiny(synth, tmp_path, epochs=4, dropout=0.0, lr=0.05, warmup_epochs=0))
    losses = [json.loads(s)["train_loss"] for s in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert len(losses) == 4 and rec["epoch"] == 4
    assert losses[-1] < losses[0]
    model, meta = load_checkpoint(tmp_path / "best.safetensors")
    assert model.frame_counts == (4, 8, 16) and meta.extra["method"] == "ffn"


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
@pytest.mark.slow
def test_resume_reproduces_the_uninterrupted_run(synth: SyntheticSet, tmp_path: Path, optimizer: str) -> None:
    train(tiny(synth, tmp_path / "a", epochs=2, optimizer=optimizer))
    train(tiny(synth, tmp_path / "b", epochs=2, optimizer=optimizer, stop_after=1))  # "killed" after epoch 1
    assert read_meta(tmp_path / "b" / "last.safetensors").extra["epoch"] == 1
    train(tiny(synth, tmp_path / "b", epochs=2, optimizer=optimizer, resume=True))
    a, b = load_file(tmp_path / "a" / "last.safetensors"), load_file(tmp_path / "b" / "last.safetensors")
    assert a.keys() == b.keys() and any(k.startswith("optimizer.") for k in a)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert len((tmp_path / "b" / "log.jsonl").read_text().splitlines()) == 2


@pytest.mark.slow
def test_resume_refuses_changed_options(synth: SyntheticSet, tmp_path: Path) -> None:
    train(tiny(synth, tmp_path, epochs=2, stop_after=1, max_batches=1))
    with pytest.raises(FFNError, match="lr"):
        train(tiny(synth, tmp_path, epochs=2, max_batches=1, lr=0.5, resume=True))


@pytest.mark.slow
def test_causal_shift_is_trained_and_recorded(synth: SyntheticSet, tmp_path: Path) -> None:
    train(tiny(synth, tmp_path, epochs=2, stop_after=1, max_batches=1, shift="causal"))
    model, meta = load_checkpoint(tmp_path / "last.safetensors")
    assert meta.config.shift == "causal" and meta.extra["train_config"]["shift"] == "causal"
    assert {m.mode for m in model.modules() if hasattr(m, "shift_div")} == {"causal"}
    with pytest.raises(FFNError, match="shift"):
        train(tiny(synth, tmp_path, epochs=2, max_batches=1, resume=True))  # the default is bidirectional


@pytest.mark.parametrize("method", ["st", "mixed", "proportional"])
@pytest.mark.slow
def test_baselines_train_a_plain_single_subnetwork_model(synth: SyntheticSet, tmp_path: Path, method: str) -> None:
    train(tiny(synth, tmp_path, method=method, rho=1.0, max_batches=2))
    model, meta = load_checkpoint(tmp_path / "last.safetensors")
    assert model.frame_counts == (16,) and meta.extra["method"] == method
    assert not meta.config.specialised_norm and not meta.config.weight_alteration


@pytest.mark.slow
def test_finetune_starts_from_the_init_checkpoint(synth: SyntheticSet, tmp_path: Path) -> None:
    train(tiny(synth, tmp_path / "st16", method="st", max_batches=1))
    train(tiny(synth, tmp_path / "ft", method="finetune", init=str(tmp_path / "st16" / "last.safetensors"),
               max_batches=1))
    assert load_checkpoint(tmp_path / "ft" / "last.safetensors")[0].frame_counts == (4,)


@pytest.mark.slow
def test_no_weight_sharing_saves_one_st_checkpoint_per_count_and_evaluates(synth: SyntheticSet, tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture) -> None:
    train(tiny(synth, tmp_path, weight_sharing=False, max_batches=1))
    paths = [str(tmp_path / f"last_f{n}.safetensors") for n in (4, 8, 16)]
    assert [load_checkpoint(p)[0].frame_counts for p in paths] == [(4,), (8,), (16,)]
    assert ffn_eval.cli(["--ckpt", *paths, "--frames", "2", "6", "12", "--json", "--workers", "0"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["served_by"] == [[[0, 4]], [[1, 8]], [[2, 16]]]  # the ST model trained nearest
    assert ffn_eval.cli(["--ckpt", *paths, "--frames", "8", "--ensemble", "--json", "--workers", "0"]) == 0
    assert json.loads(capsys.readouterr().out)["served_by"] == [[[0, 4], [1, 8], [2, 16]]]


@pytest.mark.slow
def test_ffn_eval_table_json_and_plot(synth: SyntheticSet, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    train(tiny(synth, tmp_path, max_batches=1))
    ckpt = str(tmp_path / "last.safetensors")
    assert ffn_eval.cli(["--ckpt", ckpt, "--frames", "2", "4", "6", "12", "20", "--workers", "0",
                         "--plot", str(tmp_path / "acc.png")]) == 0
    table = capsys.readouterr().out
    assert "top-1" in table and "@4f" in table and (tmp_path / "acc.png").stat().st_size > 0
    assert ffn_eval.cli(["--ckpt", ckpt, "--frames", "6", "20", "--json", "--workers", "0"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["frames"] == [6, 20] and res["served_by"] == [[[0, 8]], [[0, 16]]] and res["num_videos"] == 8
    assert all(0 <= v <= 100 for v in res["top1"] + res["top5"])


@pytest.mark.parametrize(("module", "args", "message"), [
    ("ffn_edge.train", ["--frame-counts", "4", "4"], "distinct"),
    ("ffn_edge.train", ["--method", "finetune"], "--init"),
    ("ffn_edge.train", ["--method", "st", "--no-distill"], "ablations"),
    ("ffn_edge.train", ["--dataset", "frames"], "--train-list"),
    ("ffn_edge.evaluate", ["--ckpt", "/nonexistent.safetensors"], "not found"),
])
def test_bad_arguments_give_one_line_and_exit_2(module: str, args: list[str], message: str,
                                                monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(sys, "argv", [module, *args])
    with pytest.raises(SystemExit) as exit_info:
        importlib.import_module(module).main()  # the console entry point, run_cli included
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    assert len(err.strip().splitlines()) == 1 and message in err


@pytest.mark.slow
def test_ddp_two_cpu_processes_write_the_same_checkpoint_format(synth: SyntheticSet, tmp_path: Path) -> None:
    cfg = tiny(synth, tmp_path / "ddp", batch_size=2, max_batches=2)
    args = [f"--{k.replace('_', '-')}={v}" for k, v in dataclasses.asdict(cfg).items()
            if k in ("dataset", "train_list", "val_list", "root", "out", "batch_size", "max_batches", "epochs")]
    r = run_cli("torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "ffn_edge.train",
                *TINY, *args)
    assert r.returncode == 0, r.stderr[-2000:]
    train(tiny(synth, tmp_path / "single", max_batches=1))
    ddp, meta = load_checkpoint(tmp_path / "ddp" / "last.safetensors")
    single = load_checkpoint(tmp_path / "single" / "last.safetensors")[0]
    assert ddp.state_dict().keys() == single.state_dict().keys() and meta.extra["method"] == "ffn"
    assert len((tmp_path / "ddp" / "log.jsonl").read_text().splitlines()) == 1  # rank 0 only


# -- --resume of a run directory that was moved or copied; a new run when there is nothing to resume ----------


def _resumable(synth: SyntheticSet, out: Path, **kw) -> TrainConfig:
    """Two epochs of the smallest model, for the --resume checks."""
    base = dict(dataset="frames", train_list=str(synth.train_list), val_list=str(synth.val_list),
                root=str(synth.root), width_mult=0.0625, input_size=32, resize_shorter=32, batch_size=2, workers=0,
                frame_counts=(2, 4), epochs=2, quiet=True, out=str(out))
    return TrainConfig(**{**base, **kw})


@pytest.mark.slow
def test_resume_of_a_moved_run_matches_the_uninterrupted_run(synth, tmp_path):
    train(_resumable(synth, tmp_path / "a"))
    train(_resumable(synth, tmp_path / "b", stop_after=1))
    shutil.move(tmp_path / "b", tmp_path / "moved")
    train(_resumable(synth, tmp_path / "moved", resume=True))
    assert read_meta(tmp_path / "moved" / "last.safetensors").extra["epoch"] == 2
    a, b = load_file(tmp_path / "a" / "last.safetensors"), load_file(tmp_path / "moved" / "last.safetensors")
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.slow
def test_resume_with_nothing_to_resume_starts_a_new_run(synth, tmp_path, capsys):
    train(_resumable(synth, tmp_path / "fresh", epochs=1, resume=True))
    assert read_meta(tmp_path / "fresh" / "last.safetensors").extra["epoch"] == 1
    assert "nothing to resume" in capsys.readouterr().err


@pytest.mark.slow
def test_resume_still_refuses_changed_options(synth, tmp_path):
    train(_resumable(synth, tmp_path / "c", stop_after=1))
    with pytest.raises(FFNError, match="lr"):
        train(_resumable(synth, tmp_path / "c", lr=0.5, resume=True))


# -- --init for --method ffn: a causal FFN starts from a bidirectional one's weights (online mode) ------------


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
