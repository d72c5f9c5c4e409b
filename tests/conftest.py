import os

# Tests run on 2 cores; keep torch from oversubscribing them.
os.environ.setdefault("OMP_NUM_THREADS", "2")


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
