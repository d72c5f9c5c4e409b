"""A bundle means what it was exported as: huge integers in manifest.json are one line, each graph's
declared input (frames, size) is checked against the manifest at open, and a digest catches an edit of
what decides the numbers while class names stay editable; version 1 bundles (no digest) still open."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from ffn_edge.export import export_bundle
from ffn_edge.runtime import FFNRuntime

from ffn_edge.bundle.manifest import MEANING_KEY, load_manifest, seal
from ffn_edge.checkpoint import CheckpointMeta, save_checkpoint
from ffn_edge.core.errors import BundleError
from ffn_edge.models import ModelConfig, create_model


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    cfg = ModelConfig("tsm_resnet18", 3, frame_counts=(2, 4), width_mult=0.0625)
    d = tmp_path_factory.mktemp("meaning")
    save_checkpoint(d / "m.safetensors", create_model(cfg).eval(),
                    CheckpointMeta(cfg, ["a", "b", "c"], input_size=32, resize_shorter=36))
    return Path(export_bundle(d / "m.safetensors", (2, 4), d / "b.ffn", verify=False))


@pytest.fixture
def copy(exported, tmp_path) -> Path:
    out = tmp_path / "b.ffn"
    shutil.copytree(exported, out)
    return out


def rewrite(bundle: Path, text_or_change, sealed: bool = False) -> None:
    path = bundle / "manifest.json"
    if isinstance(text_or_change, str):
        path.write_text(text_or_change)
        return
    d = json.loads(path.read_text())
    text_or_change(d)
    path.write_text(json.dumps(seal(d) if sealed else d))


def refused(bundle: Path, *texts: str) -> str:
    with pytest.raises(BundleError) as e:
        FFNRuntime.open(bundle, threads=1, warmup=False)
    msg = str(e.value)
    assert "\n" not in msg and len(msg) < 400, msg[:500]
    for t in texts:
        assert t in msg, msg
    return msg


@pytest.mark.parametrize("key", ['"format_version": 2', '"resize_shorter": 36', '"num_classes": 3'])
def test_a_100000_digit_integer_is_one_line(copy, key):
    text = (copy / "manifest.json").read_text()
    assert key in text
    rewrite(copy, text.replace(key, key.split(":")[0] + ": " + "7" * 100_000))
    refused(copy, "integer of 100000 digits")


def test_swapped_graph_files_are_caught_by_their_declared_frame_count(copy):
    def swap(d):
        a, b = d["graphs"][0]["file"], d["graphs"][1]["file"]
        d["graphs"][0]["file"], d["graphs"][1]["file"] = b, a
    rewrite(copy, swap, sealed=True)
    refused(copy, "takes 2 frames, the manifest routes 4 to it")


def test_a_crop_size_the_graphs_do_not_take_is_caught_at_open(copy):
    rewrite(copy, lambda d: d["input"].update(size=[40, 40], resize_shorter=44), sealed=True)
    refused(copy, "the manifest says (N, T, 3, 40, 40)")


@pytest.mark.parametrize("change", [
    lambda d: d["graphs"].reverse() or [g.update(subnet=1 - g["subnet"]) for g in d["graphs"]],
    lambda d: d["input"].update(mean=[0.5, 0.5, 0.5]),
    lambda d: d["input"].update(resize_shorter=40),
    lambda d: d["extra"]["frame_map"]["2"].update(subnet=1),
    lambda d: d["model_config"].update(dropout=0.1),
], ids=["subnets swapped", "mean", "resize", "frame map", "model config"])
def test_an_edit_of_what_decides_the_numbers_is_caught(copy, change):
    rewrite(copy, change)
    refused(copy, "edited after export")


def test_class_names_and_notes_stay_editable(copy, exported):
    def rename(d):
        d["class_names"] = ["wave", "clap", "jump"]
        d["extra"]["description"] = "my notes"
    rewrite(copy, rename)
    clip = np.random.default_rng(0).integers(0, 255, (4, 40, 48, 3), dtype=np.uint8)
    with FFNRuntime.open(copy, threads=1, warmup=False) as rt, FFNRuntime.open(exported, threads=1, warmup=False) as r0:
        p, p0 = rt.predict(clip), r0.predict(clip)
    assert p.label == ["wave", "clap", "jump"][p0.index] and p.index == p0.index
    assert [s for _, s in p.topk] == [s for _, s in p0.topk]


def test_a_version_1_bundle_without_digest_still_opens(copy):
    def old(d):
        d.pop(MEANING_KEY)
        d["format_version"] = 1
    rewrite(copy, old)
    assert load_manifest(copy).graphs


def test_a_truncated_weight_file_is_one_line_without_onnxruntime_error_lines(copy, capfd):
    """With verification off the graph load itself fails: the BundleError is the only thing said."""
    weights = copy / "weights.bin"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    capfd.readouterr()
    with pytest.raises(BundleError, match="cannot load the graph"), \
            FFNRuntime.open(copy, threads=1, warmup=False, verify=False) as rt:
        rt.predict(np.zeros((4, 40, 48, 3), np.uint8))
    err = capfd.readouterr().err
    assert "onnxruntime" not in err and "[E:" not in err, err[:300]
