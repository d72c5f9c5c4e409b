"""ONNX Runtime GPU backends at their API boundary: provider options, silent CPU fallback, missing packages.

This machine's onnxruntime is the CPU build, which is exactly the situation the checks are for: a
session asked for the CUDA EP that lands on the CPU must be caught, not reported as a GPU backend.
"""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from builders import TINY_CLASSES
from ffn_edge.runtime.backends import base, ort_options
from ffn_edge.runtime.backends import ort as ort_backend
from ffn_edge.runtime.backends.ort import OrtBackend
from ffn_edge.runtime.backends.ort_options import (
    CPU_EP,
    CUDA_EP,
    TRT_EP,
    ort_providers,
    ort_trt_cache_dir,
    with_trt_profiles,
)
from ffn_edge.runtime.backends.select import open_backend

from ffn_edge.bundle.manifest import load_manifest
from ffn_edge.core.errors import ConfigError

FRAMES = (4, 8)


@pytest.fixture
def bundle(tiny_bundle, private_copy) -> Path:
    return private_copy(tiny_bundle)  # ONNX Runtime's TensorRT EP keeps its caches in the bundle


def test_tensorrt_ep_gets_caches_profiles_and_fp16_only_when_named(bundle, tmp_path):
    m = load_manifest(bundle)
    plain = dict(ort_providers("tensorrt", 1, cache_dir=tmp_path)[0][1])
    assert plain["trt_fp16_enable"] == "False" and plain["device_id"] == "1"
    assert plain["trt_engine_cache_enable"] == plain["trt_timing_cache_enable"] == "True"
    assert plain["trt_engine_cache_path"] == plain["trt_timing_cache_path"] == str(tmp_path)
    assert ort_providers("tensorrt", cache_dir=tmp_path, fp16=True)[0][1]["trt_fp16_enable"] == "True"
    g8 = next(g for g in m.graphs if g.frames == 8)
    opts = with_trt_profiles(ort_providers("tensorrt", cache_dir=tmp_path), m, g8)[0][1]
    assert opts["trt_profile_min_shapes"] == "clip:1x8x3x64x64"
    assert opts["trt_profile_opt_shapes"] == "clip:1x8x3x64x64"
    assert opts["trt_profile_max_shapes"] == "clip:8x8x3x64x64"
    assert [ort_options.provider_name(p) for p in ort_providers("tensorrt")] == [TRT_EP, CUDA_EP, CPU_EP]
    assert "ort-tensorrt-fp16" in base.BACKENDS


def test_tensorrt_ep_cache_lives_in_the_bundle_or_the_user_cache_when_read_only(bundle, tmp_path, monkeypatch):
    m = load_manifest(bundle)
    copy = tmp_path / "b.ffn"
    shutil.copytree(bundle, copy)
    assert ort_trt_cache_dir(copy, m) == copy / "engines" / "ort-trt"
    load_manifest(copy, verify=True)  # a cache directory inside does not break verification
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(ort_options.os, "access", lambda path, mode: False)  # a read-only bundle (we run as root)
    ro = ort_trt_cache_dir(bundle, m)
    assert ro.parent == tmp_path / "xdg" / "ffn-edge" / "ort-trt" and ro.is_dir()


def test_a_cuda_session_that_lands_on_the_cpu_is_refused_and_never_pools(bundle, monkeypatch):
    def no_pooling(*a, **k):
        raise AssertionError("weights pooled for a GPU provider")

    monkeypatch.setattr(ort_backend, "optimize_for_sharing", no_pooling)
    with pytest.raises(ConfigError, match="could not start CUDAExecutionProvider.*landed on CPUExecutionProvider"):
        OrtBackend(bundle, load_manifest(bundle), ort_providers("cuda"), threads=1, share_weights=True)


def test_auto_skips_providers_that_are_compiled_in_but_cannot_start(bundle, monkeypatch, caplog, capfd):
    """onnxruntime-gpu on a machine whose GPU cannot be used: auto ends on a pooled CPU backend."""
    monkeypatch.setattr(ort, "get_available_providers", lambda: [TRT_EP, CUDA_EP, CPU_EP])
    with caplog.at_level(logging.WARNING, logger="ffn_edge.runtime"):
        backend = open_backend(bundle, load_manifest(bundle), "auto", threads=1)
    assert backend.name == "onnxruntime[CPUExecutionProvider]" and backend.share_weights
    reasons = [r.getMessage() for r in caplog.records if "cannot start" in r.getMessage()]
    assert [r.split(" cannot")[0] for r in reasons] == ["backend ort-tensorrt", "backend ort-cuda"]
    assert capfd.readouterr().out == ""  # stdout stays clean for --json
    backend.close()
    with pytest.raises(ConfigError, match="^backend 'ort-cuda' cannot start: ONNX Runtime could not start"):
        open_backend(bundle, load_manifest(bundle), "ort-cuda")


def test_ort_fallback_prints_stay_off_stdout(bundle, monkeypatch, capfd):
    real = ort.InferenceSession

    def printing_session(*a, **k):  # what ORT's InferenceSession does when a provider fails to start
        print("EP Error: ... Falling back to ['CPUExecutionProvider'] and retrying.")
        return real(*a, **k)

    monkeypatch.setattr(ort, "InferenceSession", printing_session)
    OrtBackend(bundle, load_manifest(bundle), [CPU_EP], threads=1).close()
    out = capfd.readouterr()
    assert out.out == "" and "Falling back" in out.err


def test_missing_onnxruntime_says_what_to_install(bundle, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ConfigError, match=r"^backend 'ort-cpu' cannot start: ONNX Runtime is not installed: "
                                          r"pip install onnxruntime \(CPU\) or onnxruntime-gpu"):
        open_backend(bundle, load_manifest(bundle), "ort-cpu")


def test_explicit_backend_that_cannot_start_exits_2_with_one_line(bundle, tmp_path):
    import subprocess

    script = ("import sys; from ffn_edge.core.errors import run_cli; from ffn_edge.runtime.backends.select import "
              "open_backend; from ffn_edge.bundle.manifest import load_manifest; "
              f"run_cli('t', lambda: open_backend({str(bundle)!r}, load_manifest({str(bundle)!r}), 'tensorrt'))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("t: error: backend 'tensorrt' cannot start: ")


def test_cpu_backend_still_pools_and_runs(bundle):
    backend = open_backend(bundle, load_manifest(bundle), "ort-cpu", threads=1)
    assert backend.share_weights and backend.pool is not None
    assert backend.run(4, np.zeros((1, 4, 3, 64, 64), np.float32)).shape == (1, len(TINY_CLASSES))
    backend.close()


def test_a_provider_library_that_cannot_load_is_named(tmp_path):
    from ffn_edge.runtime.backends.ort_libs import provider_load_error

    assert provider_load_error("CPUExecutionProvider") is None
    why = provider_load_error(CUDA_EP, capi=tmp_path)
    assert why.startswith("libonnxruntime_providers_cuda.so is not in this onnxruntime (the CPU build")
    (tmp_path / "libonnxruntime_providers_tensorrt.so").write_bytes(b"not a shared library")
    why = provider_load_error(TRT_EP, capi=tmp_path)
    assert "libonnxruntime_providers_tensorrt.so" in why and "\n" not in why  # the loader's own one line
    libc = Path("/lib/x86_64-linux-gnu/libc.so.6")
    if libc.is_file():  # a library that loads: nothing to report
        shutil.copy(libc, tmp_path / "libonnxruntime_providers_cuda.so")
        assert provider_load_error(CUDA_EP, capi=tmp_path) is None


def test_a_session_on_the_cpu_names_the_provider_library_that_did_not_load(bundle, monkeypatch):
    monkeypatch.setattr(ort_backend, "provider_load_error", lambda ep: f"libcublasLt.so.12: cannot open ({ep})")
    with pytest.raises(ConfigError, match=r"landed on CPUExecutionProvider: its library does not load: "
                                          r"libcublasLt.so.12: cannot open \(CUDAExecutionProvider\)\)$"):
        OrtBackend(bundle, load_manifest(bundle), ort_providers("cuda"), threads=1, share_weights=False)


def test_a_gpu_session_preloads_the_cuda_wheels_quietly_and_a_cpu_one_does_not(bundle, monkeypatch, capsys):
    """onnxruntime-gpu[cuda,cudnn] brings CUDA and cuDNN as wheels, which ONNX Runtime finds only after
    ``preload_dlls``; what that prints must not reach stdout (a --json stream) or add stderr lines."""
    calls = []

    def preload():
        calls.append(1)
        print("WARNING: libcudnn.so.9 not found in nvidia site-packages")

    monkeypatch.setattr(ort, "preload_dlls", preload, raising=False)
    OrtBackend(bundle, load_manifest(bundle), ort_providers("cpu"), threads=1, share_weights=False).close()
    assert calls == []
    with pytest.raises(ConfigError):  # this onnxruntime lands a CUDA session on the CPU
        OrtBackend(bundle, load_manifest(bundle), ort_providers("cuda"), threads=1, share_weights=False)
    assert calls == [1]
    out = capsys.readouterr()
    assert "libcudnn" not in out.out + out.err
