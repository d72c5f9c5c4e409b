"""Session fixtures: the tiny checkpoint, its bundles (fp32, causal with step graphs, INT8), a video and the
synthetic set, each built once per test run and shared by every test (and every pytest-xdist worker).

The shared folders are read-only by contract: a test that changes a bundle takes ``private_copy(bundle)``
first. Each fixture checks at the end of the session that no file of it was written.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

# Keep torch and ONNX Runtime from oversubscribing the cores: the usable CPUs shared among pytest-xdist workers.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
os.environ.setdefault("OMP_NUM_THREADS", str(max(1, len(os.sched_getaffinity(0)) // _WORKERS)))

import builders  # noqa: E402 - after the thread setting, which torch reads at import
from builders import (  # noqa: E402
    CAUSAL_CLASSES,
    CAUSAL_FRAMES,
    CAUSAL_SIZE,
    INT8_CLASSES,
    INT8_FRAMES,
    INT8_RESIZE,
    INT8_SIZE,
    TINY_CLASSES,
    TINY_FRAMES,
    TINY_RESIZE,
    TINY_SIZE,
)


@contextmanager
def _shared(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], object]) -> Iterator[Path]:
    """Build ``name`` once for the run, hand it out, then check that no test wrote into it."""
    root = builders.shared_root(tmp_path_factory.getbasetemp())
    path = builders.built_once(root, name, build)
    before = builders.fingerprint(path)
    yield path
    assert builders.fingerprint(path) == before, f"a test wrote into the shared {name}: use private_copy"


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Iterator[Path]:
    """TSM-MobileNetV2 x0.35 at 64 px, sub-networks for 4 and 8 frames, 5 classes, perturbed so they differ:
    ``m.safetensors`` and its bundle ``m.ffn`` (exported without the parity check: the exporter's tests do it)."""

    def build(d: Path) -> None:
        from ffn_edge.export import export_bundle

        ckpt = builders.save_tiny_checkpoint(d / "m.safetensors", "tsm_mobilenetv2", TINY_CLASSES, TINY_FRAMES,
                                             0.35, TINY_SIZE, TINY_RESIZE, perturb={})
        export_bundle(ckpt, TINY_FRAMES, d / "m.ffn", verify=False)

    with _shared(tmp_path_factory, "tiny", build) as d:
        yield d


@pytest.fixture(scope="session")
def tiny_ckpt(tiny_dir) -> Path:
    return tiny_dir / "m.safetensors"


@pytest.fixture(scope="session")
def tiny_bundle(tiny_dir) -> Path:
    return tiny_dir / "m.ffn"


@pytest.fixture(scope="session")
def tiny_model(tiny_ckpt):
    """The torch model of ``tiny_ckpt`` (eval mode): the reference the bundle is compared with."""
    from ffn_edge.checkpoint import load_checkpoint

    return load_checkpoint(tiny_ckpt)[0].eval()


@pytest.fixture(scope="session")
def int8_dir(tmp_path_factory) -> Iterator[Path]:
    """TSM-ResNet-18 x0.25 at 32 px, sub-networks for 4 and 8 frames, 5 classes, perturbed: ``m.safetensors``
    and its --int8 bundle ``m.ffn`` (default u8 activations, per-sub-network calibration on 4 clips, shared layout;
    agreement with fp32 measured, not enforced). ResNet-18: its convolutions are what INT8 tests count."""

    def build(d: Path) -> None:
        from ffn_edge.export import export_bundle
        from ffn_edge.export.int8_config import Int8Options, QuantConfig

        ckpt = builders.save_tiny_checkpoint(d / "m.safetensors", "tsm_resnet18", INT8_CLASSES, INT8_FRAMES, 0.25,
                                             INT8_SIZE, INT8_RESIZE, perturb=builders.STRONG)
        opts = Int8Options(calib_clips=4, config=QuantConfig(layout="shared"), min_agreement=0.0)
        export_bundle(ckpt, INT8_FRAMES, d / "m.ffn", int8=opts, verify=True, n_verify=4)

    with _shared(tmp_path_factory, "int8", build) as d:
        yield d


@pytest.fixture(scope="session")
def int8_ckpt(int8_dir) -> Path:
    return int8_dir / "m.safetensors"


@pytest.fixture(scope="session")
def int8_bundle(int8_dir) -> Path:
    return int8_dir / "m.ffn"


@pytest.fixture(scope="session")
def causal_ckpt_and_bundle(tmp_path_factory) -> Iterator[tuple[Path, Path]]:
    """A causal TSM-ResNet-18 x0.125 at 32 px, sub-networks for 2 and 4 frames, 3 classes: the checkpoint and
    its bundle, which carries the per-frame step graphs online mode runs."""

    def build(d: Path) -> None:
        from ffn_edge.export import export_bundle

        ckpt = builders.save_tiny_checkpoint(d / "c.safetensors", "tsm_resnet18", CAUSAL_CLASSES, CAUSAL_FRAMES,
                                             0.125, CAUSAL_SIZE, CAUSAL_SIZE, shift="causal",
                                             perturb=builders.STRONG)
        export_bundle(ckpt, CAUSAL_FRAMES, d / "c.ffn", verify=False)

    with _shared(tmp_path_factory, "causal", build) as d:
        yield d / "c.safetensors", d / "c.ffn"


@pytest.fixture(scope="session")
def causal_bundle(causal_ckpt_and_bundle) -> Path:
    return causal_ckpt_and_bundle[1]


@pytest.fixture(scope="session")
def video(tmp_path_factory) -> Iterator[Path]:
    """3 s at 30 fps, 64 x 64: the synthetic set's clips of classes 0, 1, 2, one second each."""
    with _shared(tmp_path_factory, "video", lambda d: builders.synthetic_video(d / "clips.mp4")) as d:
        yield d / "clips.mp4"


@pytest.fixture(scope="session")
def synth(tmp_path_factory):
    """The synthetic set at its smallest: 4 classes, 3 training and 2 validation clips each, 16 frames of 32 px."""
    from ffn_edge.data import SyntheticSet, make_synthetic

    def build(d: Path) -> None:
        make_synthetic(d, num_classes=4, train_per_class=3, val_per_class=2, frames=16, size=32, seed=0)

    with _shared(tmp_path_factory, "synthetic", build) as root:
        # the lists name clips relative to the root, so the set is the same after the rename into place
        names = (root / "classes.txt").read_text(encoding="utf-8").splitlines()
        yield SyntheticSet(root, root / "train.txt", root / "val.txt", root / "classes.txt", names)


@pytest.fixture
def private_copy(tmp_path) -> Callable[[Path], Path]:
    """``private_copy(bundle)``: a copy of a shared bundle in this test's tmp_path, free to change."""

    def copy(src: Path, name: str | None = None) -> Path:
        out = tmp_path / (name or Path(src).name)
        shutil.copytree(src, out, symlinks=True)
        return out

    return copy


def _no_cuda_device() -> str | None:
    """Why tests marked ``gpu`` cannot run here, or None."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    return None if torch.cuda.is_available() else "needs a CUDA GPU (pytest -m gpu on a GPU machine)"


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` skip without a CUDA device (``pytest -m gpu`` / ``./run.sh test-gpu`` select them)."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if gpu_items and (why := _no_cuda_device()):
        import pytest

        for item in gpu_items:
            item.add_marker(pytest.mark.skip(reason=why))
