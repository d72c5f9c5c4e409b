"""--pretrained torchvision:NAME / timm:NAME, tested at the libraries' weight-loading seam with fakes
(PyPI torchvision does not import beside this machine's torch wheel, and tests have no network):
a fake ``torchvision.models`` / ``timm`` module serves a synthetic ImageNet state dict, or fails the
way an offline download fails. The real libraries' download paths are not exercised here."""

from __future__ import annotations

import sys
import types
import urllib.error

import import_sources as S
import pytest
import torch

from ffn_edge.core.errors import ConfigError
from ffn_edge.importers.pretrained import create_model_pretrained
from ffn_edge.models import ModelConfig


def _fake_torchvision(monkeypatch, state=None, error=None) -> None:
    class Weights:
        url = "https://download.pytorch.org/models/resnet50-11ad3fa6.pth"

        def get_state_dict(self, progress: bool = True):
            if error is not None:
                raise error
            return state

    class Enum:
        DEFAULT = Weights()

    def get_model_weights(name: str):
        if name != "resnet50":
            raise ValueError(name)
        return Enum

    tv = types.ModuleType("torchvision")
    tv.models = types.SimpleNamespace(get_model_weights=get_model_weights)
    monkeypatch.setitem(sys.modules, "torchvision", tv)
    monkeypatch.setitem(sys.modules, "torchvision.models", tv.models)


def test_torchvision_resnet50_by_name(monkeypatch) -> None:
    sd = S.torchvision_resnet50(16)
    _fake_torchvision(monkeypatch, state=sd)
    model = create_model_pretrained(ModelConfig("tsm_resnet50", 5, width_mult=0.25), "torchvision:resnet50")
    own = model.state_dict()
    assert torch.equal(own["layer2.1.conv1.layer.weight"], sd["layer2.1.conv1.weight"])
    for k in range(3):  # every sub-network's norm starts from the ImageNet one
        assert torch.equal(own[f"layer1.0.bn2.norms.{k}.running_var"], sd["layer1.0.bn2.running_var"])
    assert own["fc.weight"].shape == (5, 512)  # a new head, not ImageNet's 1000 classes


def test_torchvision_offline_names_the_file_to_place(monkeypatch) -> None:
    _fake_torchvision(monkeypatch, error=urllib.error.URLError("no network"))
    with pytest.raises(ConfigError) as e:
        create_model_pretrained(ModelConfig("tsm_resnet50", 5, width_mult=0.25), "torchvision:resnet50")
    msg = str(e.value)
    assert "\n" not in msg and msg.endswith("checkpoints/resnet50-11ad3fa6.pth") and "place that file at" in msg


def test_torchvision_unknown_model_and_unmapped_arch(monkeypatch) -> None:
    _fake_torchvision(monkeypatch, state={})
    with pytest.raises(ConfigError, match="no model 'resnet5'"):
        create_model_pretrained(ModelConfig("tsm_resnet50", 5), "torchvision:resnet5")
    with pytest.raises(ConfigError, match="torchvision has no table for uniformer_s"):
        create_model_pretrained(ModelConfig("uniformer_s", 5), "torchvision:resnet50")


def test_timm_res2net_by_name(monkeypatch) -> None:
    sd = S.timm_res2net50(16)
    timm = types.ModuleType("timm")
    timm.list_models = lambda pretrained=False: ["res2net50_26w_4s"]
    timm.create_model = lambda name, pretrained=False: types.SimpleNamespace(state_dict=lambda: sd)
    monkeypatch.setitem(sys.modules, "timm", timm)
    model = create_model_pretrained(ModelConfig("tea_resnet50", 5, width_mult=0.25, mta_shift_div=2),
                                    "timm:res2net50_26w_4s")
    assert torch.equal(model.state_dict()["layer3.2.convs.1.weight"], sd["layer3.2.convs.1.weight"])
