"""StepRunner: a causal bundle's step graphs, one frame at a time, shift buffers held here (torch-free).

Each sub-network keeps its own buffers (``manifest.StepSpec``): zeros after ``reset``, then the
previous frame's shifted channels. Feeding a clip's n frames to sub-network k from a reset and
averaging the returned logits gives sub-network k's clip-graph logits for that clip. Which
sub-network runs and how labels are formed from per-frame logits is the caller's (online mode of
the stream, a later step). CPU ONNX Runtime sessions, one per step graph.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .backends import import_onnxruntime, session_options
from .errors import BundleError, InputError
from .manifest import StepGraph, load_manifest, resolve, step_spec


class StepRunner:
    """Per-frame logits from a causal bundle's step graphs, with per-sub-network shift buffers."""

    def __init__(self, bundle: str | os.PathLike[str], threads: int | None = None) -> None:
        ort = import_onnxruntime()
        self.bundle = Path(bundle)
        self.manifest = load_manifest(self.bundle, verify=True)
        spec = step_spec(self.manifest)
        if spec is None:
            raise BundleError(f"{self.bundle}: no step graphs (export a checkpoint trained with --shift causal)")
        self.spec = spec
        self.size = self.manifest.input.size
        self._graphs: dict[int, StepGraph] = {g.subnet: g for g in spec.graphs}
        self._sessions: dict[int, Any] = {}
        for k, g in self._graphs.items():
            try:
                self._sessions[k] = ort.InferenceSession(str(resolve(self.bundle, g.file)),
                                                         session_options(threads, shared=False),
                                                         providers=["CPUExecutionProvider"])
            except Exception as e:  # ORT raises its own types
                raise BundleError(f"{self.bundle / g.file}: ONNX Runtime cannot load the graph: "
                                  f"{(str(e).strip().splitlines() or [type(e).__name__])[0][:200]}") from None
        self._state: dict[int, dict[str, np.ndarray]] = {}
        self.reset()

    @property
    def subnets(self) -> tuple[int, ...]:
        return tuple(sorted(self._graphs))

    def reset(self, subnet: int | None = None) -> None:
        """Zero the buffers of ``subnet`` (None: every sub-network): the next frame starts a new stream."""
        for k in self.subnets if subnet is None else (self._subnet(subnet),):
            self._state[k] = {b.input: np.zeros((1, *b.shape), np.float32) for b in self._graphs[k].buffers}

    def step(self, frame: np.ndarray, subnet: int) -> np.ndarray:
        """Logits (classes,) of one preprocessed frame (3, H, W) float32 on ``subnet``; its buffers advance."""
        k = self._subnet(subnet)
        want = (3, *self.size)
        if not isinstance(frame, np.ndarray) or frame.dtype != np.float32 or frame.shape != want:
            got = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
            raise InputError(f"step() takes one preprocessed float32 frame of shape {want}, got {got}")
        if not np.isfinite(frame).all():
            raise InputError("step() frame has NaN or infinite values")
        g = self._graphs[k]
        out = self._sessions[k].run([self.spec.output_name, *(b.output for b in g.buffers)],
                                    {self.spec.input_name: frame[None], **self._state[k]})
        self._state[k] = {b.input: o for b, o in zip(g.buffers, out[1:], strict=True)}
        return out[0][0]

    def _subnet(self, subnet: int) -> int:
        if isinstance(subnet, bool) or not isinstance(subnet, int) or subnet not in self._graphs:
            raise InputError(f"no step graph for sub-network {subnet!r} (have {list(self.subnets)})")
        return subnet
