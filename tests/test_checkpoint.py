import pytest
import torch

from ffn_edge.checkpoint import CheckpointError, CheckpointMeta, load_checkpoint, read_meta, save_checkpoint
from ffn_edge.models import ModelConfig, create_model


@pytest.fixture
def ckpt(tmp_path):
    cfg = ModelConfig("tsm_mobilenetv2", 3, width_mult=0.35)
    model = create_model(cfg).eval()
    with torch.no_grad():  # make every sub-network differ from the initial state
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    path = tmp_path / "model.safetensors"
    save_checkpoint(path, model, CheckpointMeta(cfg, ["a", "b", "c"], input_size=32, resize_shorter=36,
                                                extra={"epoch": 3}))
    return path, model


def test_round_trip_identical_outputs(ckpt) -> None:
    path, model = ckpt
    loaded, meta = load_checkpoint(path)
    assert meta.class_names == ["a", "b", "c"] and meta.extra == {"epoch": 3}
    assert meta.config.frame_counts == (4, 8, 16)
    for t in (2, 4, 8, 16):
        x = torch.randn(2, t, 3, 32, 32)
        assert torch.equal(model(x), loaded(x))
    assert read_meta(path).input_size == 32


def test_missing_file(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.safetensors")


def test_truncated(ckpt, tmp_path) -> None:
    path, _ = ckpt
    bad = tmp_path / "trunc.safetensors"
    bad.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="trunc.safetensors: not a readable"):
        load_checkpoint(bad)


def test_corrupted_data_detected(ckpt, tmp_path) -> None:
    path, _ = ckpt
    data = bytearray(path.read_bytes())
    data[-50] ^= 0xFF
    bad = tmp_path / "flip.safetensors"
    bad.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum"):
        load_checkpoint(bad)


def test_foreign_files(tmp_path) -> None:
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(CheckpointError, match="without ffn-edge metadata"):
        load_checkpoint(foreign)
    pickle = tmp_path / "model.pth"
    torch.save({"w": torch.zeros(2)}, pickle)
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_checkpoint(pickle)
    with pytest.raises(CheckpointError):
        read_meta(pickle)


def test_errors_are_one_line(tmp_path) -> None:
    (tmp_path / "x.safetensors").write_bytes(b"\x00" * 3)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(tmp_path / "x.safetensors")
    assert "\n" not in str(e.value) and "x.safetensors" in str(e.value)
