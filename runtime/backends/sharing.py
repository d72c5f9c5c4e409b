"""One copy of the shared weights for every ONNX Runtime session (CPU EP).

ORT normally gives every session its own copy of the weights — the copy it loads, plus the copy its
optimiser rewrites (x86 NCHWc weight layout) — so N sub-networks cost N models. Instead each graph is
optimised once at open (all ORT optimisations except the fusions that would bake a sub-network's norm
into a shared convolution), saved to a temporary file, and its large tensors (now identical across
sub-networks) are pooled by content and handed to every session as the same ``OrtValue``
(``SessionOptions.add_initializer``); the sessions also share one activation arena (they run one at a
time). Where the exporter gave a sub-network its own copy of an early convolution with the norm folded
in (``--fold-budget``), that copy is pooled like any tensor: one per sub-network, shared by graphs of
the same sub-network, never mistaken for another's (pooling is by content, dtype and shape). Simply
adding the bundle's weights with ``add_initializer`` is not enough: the NCHWc re-layout still copies
them per session, and turning it off costs ~35 % latency on x86. ``benchmarks/runtime_latency.py``
measures RSS and latency of both modes.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...bundle.manifest import resolve
from ...bundle.onnx_refs import ExternalTensor, read_external_tensors
from ...core.errors import BundleError
from .ort_options import COPYING_OPTIMIZERS, import_onnxruntime, session_options

log = logging.getLogger("ffn_edge.runtime")

# Tensors from this size up are pooled; smaller ones (per-channel norm constants, which differ per
# sub-network anyway: 2048 channels x 4 B = 8 KiB) stay inside each graph.
POOL_MIN_BYTES = 16384


def external_tensors(graph_path: Path) -> list[ExternalTensor]:
    """The external initializers of an ONNX graph file (name, dtype, shape, file, offset, length)."""
    try:
        return read_external_tensors(graph_path.read_bytes())
    except ValueError as e:
        raise BundleError(f"{graph_path}: not a readable ONNX graph ({e})") from None


class TensorPool:
    """External tensors deduplicated by content: equal bytes become ONE OrtValue for every session.

    Each external file is memory-mapped read-only; a tensor whose bytes were already seen reuses
    the first OrtValue. A map is kept (its new tensors used in place) only when those new tensors
    are at least half of it; otherwise they are copied out and the map is dropped, so the pages of
    the duplicates (touched to hash them) leave this process's RSS. That is the case for a graph
    whose only new tensors are its sub-network's own convolution copies (``--fold-budget``): keeping
    its map for them would keep a whole second copy of the shared weights resident. OrtValues built
    here do not own their memory: the pool keeps the arrays alive.
    """

    def __init__(self) -> None:
        self._by_digest: dict[bytes, tuple[Any, np.ndarray]] = {}
        self.tensors_seen = 0
        self.bytes_seen = 0
        self.bytes_kept = 0

    def add_graph(self, graph_path: Path, so: Any) -> None:
        """Hand every external tensor of ``graph_path`` to ``so`` (SessionOptions) from the pool."""
        ort = import_onnxruntime()

        maps: dict[Path, np.memmap] = {}
        refs: list[tuple[str, bytes]] = []
        fresh: dict[bytes, tuple[ExternalTensor, Path, np.ndarray]] = {}
        for t in external_tensors(graph_path):
            file = resolve(graph_path.parent, t.location)
            if file not in maps:
                maps[file] = np.memmap(file, dtype=np.uint8, mode="r")
            data = maps[file]
            if t.offset < 0 or t.offset + t.length > data.size:
                raise BundleError(f"{file.name}: tensor {t.name} lies outside the file")
            raw = data[t.offset : t.offset + t.length]
            digest = hashlib.sha1(memoryview(raw), usedforsecurity=False).digest() + t.dtype.str.encode() \
                + repr(t.shape).encode()
            self.tensors_seen += 1
            self.bytes_seen += t.length
            refs.append((t.name, digest))
            if digest not in self._by_digest:
                fresh.setdefault(digest, (t, file, raw))
        fresh_bytes = {f: sum(t.length for t, tf, _ in fresh.values() if tf == f) for f in maps}
        for digest, (t, file, raw) in fresh.items():
            if t.offset % t.dtype.itemsize or 2 * fresh_bytes[file] < maps[file].size:
                raw = raw.copy()  # unaligned, or not worth keeping the map for: an own copy
            array = raw.view(t.dtype).reshape(t.shape)
            self._by_digest[digest] = (ort.OrtValue.ortvalue_from_numpy(array), array)
            self.bytes_kept += t.length
        for name, digest in refs:
            so.add_initializer(name, self._by_digest[digest][0])

    @property
    def tensor_count(self) -> int:
        return len(self._by_digest)


def optimize_for_sharing(graph: Path, out_dir: Path, threads: int | None, providers: Sequence[Any]) -> Path:
    """Optimise ``graph`` once (ORT_ENABLE_ALL minus the copying fusions) and save it with external data.

    The saved graph's large tensors (convolution weights already in the layout this CPU runs
    fastest, e.g. x86 NCHWc blocks) are identical for every sub-network, so a TensorPool shares
    them; the saved graph then loads with no further optimisation. The file is specific to this
    machine and ORT version, which is why it is made at open time and never shipped.
    """
    ort = import_onnxruntime()

    out = out_dir / graph.name
    so = session_options(threads, shared=False, optimization="all")
    so.optimized_model_filepath = str(out)
    so.add_session_config_entry("session.optimized_model_external_initializers_file_name", f"{graph.stem}.bin")
    so.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes",
                                str(POOL_MIN_BYTES))
    so.log_severity_level = 4  # ORT warns that an NCHWc-optimised file is hardware specific: we know
    ort.InferenceSession(str(graph), so, providers=list(providers), disabled_optimizers=list(COPYING_OPTIMIZERS))
    return out


_env_arena_lock = threading.Lock()
_env_arena_registered = False


def register_shared_arena() -> None:
    """Register one CPU arena in ORT's (process-wide) environment for sessions that opt in.

    Without it every session grows its own activation arena to its own peak, so N sub-networks hold
    N arenas although the runtime runs one at a time. Only sessions created with
    ``session.use_env_allocators`` (``session_options(share_weights=True)``) use it; other ORT users
    in the process are not affected. Idempotent.
    """
    global _env_arena_registered
    ort = import_onnxruntime()

    with _env_arena_lock:
        if _env_arena_registered:
            return
        info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
        try:
            ort.create_and_register_allocator(info, None)
        except Exception as e:  # already registered by another user of the environment: reuse it
            log.debug("shared ORT arena not registered: %s", e)
        _env_arena_registered = True
