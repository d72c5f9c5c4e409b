"""Live-stream surfaces for ``fuzz.py``: setters called from other threads while a stream runs, and sources
whose frame size changes mid-file.

``threads``: a window stream, an online stream or a multi-stream runs on the fuzz model while three other
threads call its live setters (``set_budget``, ``set_weight``, ``add``/``remove``, ``close``) with good and
bad values. A bad value must be refused in the calling thread with an FFNError and change nothing; the
stream must keep running (or end, after ``close``) and every label must be finite.

``frames``: an image folder of mixed sizes and kinds (gray, BGRA, 16-bit, 1-pixel-thin, undecodable), an
MJPEG file whose resolution changes between frames, and a capture whose frame shape changes mid-stream,
each through a window stream and an online stream.
"""

from __future__ import annotations

import math
import random
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

JOIN_S = 6.0  # a setter thread still running this long after the stream ended: counted as a hang

BUDGET = [5.0, 20.0, 1000.0, None, 1e-3, 3.6e6, float("nan"), float("inf"), -1.0, 0.0, "x", True, [1], 1e300]
SHARE = [0.01, 0.5, 1.0, None, 1e-6, float("nan"), 2.0, -1.0, 0.0, "x", True]
POWER = [1.5, 10.0, None, float("nan"), -1.0, "x", 0.0]
POLICY = ["20:4", "80:2", None, "x", "101:4", "20:0", 5, "20:4:1", ""]
WEIGHT = [1.0, 0.5, 3.0, float("nan"), -1.0, 0.0, "x", None, 1e300]


def _setter_calls(stream: Any, kind: str, rng: random.Random, names: list[str]) -> list[tuple[str, Any]]:
    """(description, zero-argument call) pairs a thread runs against ``stream``."""
    calls = []
    for _ in range(12):
        r = rng.random()
        if kind == "online":
            v = rng.choice(SHARE)
            call = (f"cpu_share={v!r}", lambda v=v: stream.set_budget(v))
            if r < 0.15:
                call = ("budget_ms=10", lambda: stream.set_budget(budget_ms=10.0))
        else:
            v = rng.choice(BUDGET)
            call = (f"budget_ms={v!r}", lambda v=v: stream.set_budget(v))
        if 0.5 < r < 0.6:
            v = rng.choice(POWER)
            call = (f"power_w={v!r}", lambda v=v: stream.set_budget(power_w=v))
        elif 0.6 < r < 0.7:
            v = rng.choice(POLICY)
            call = (f"battery_policy={v!r}", lambda v=v: stream.set_budget(battery_policy=v))
        elif 0.7 < r < 0.75:
            v = rng.choice(POLICY)
            call = (f"thermal_policy={v!r}", lambda v=v: stream.set_budget(thermal_policy=v))
        elif kind == "multi" and r >= 0.75:
            name = rng.choice(names)
            v = rng.choice(WEIGHT)
            call = rng.choice([(f"set_weight({name}, {v!r})", lambda n=name, v=v: stream.set_weight(n, v)),
                               (f"remove({name})", lambda n=name: stream.remove(n)),
                               (f"add({name})", lambda n=name: stream.add(n))])
        calls.append(call)
    if rng.random() < 0.2:
        calls.insert(rng.randrange(len(calls) + 1), ("close()", stream.close))
    return calls


def _hammer(calls: list[tuple[str, Any]], rng: random.Random, errors: list[str], documented: list[int]) -> None:
    from ffn_edge.core.errors import FFNError

    for what, call in calls:
        time.sleep(rng.random() * 0.02)
        try:
            call()
        except FFNError as e:
            if "\n" in str(e):
                errors.append(f"{what}: multi-line {type(e).__name__}")
            documented.append(1)
        except BaseException as e:  # noqa: BLE001 - what escapes a setter is what this surface counts
            errors.append(f"{what}: {type(e).__name__}: {str(e)[:100]}")


def _labels(results: list[Any]) -> list[Any]:
    out = []
    for r in results:
        if hasattr(r, "results"):  # a multi-stream round
            out += [x.prediction for x in r.results]
        elif getattr(r, "prediction", None) is not None:
            out.append(r.prediction)
    return out


def run_threads(i: int, work: Path, case: Path) -> tuple[str, str]:
    from fuzz import _runtime
    from fuzz_bundles import _session

    rng = random.Random(130_000 + i)
    kind = ["window", "online", "multi"][i % 3]
    clip = str(work / "clip.avi")
    names = [clip, str(case / "b.avi"), str(case / "missing.avi")]
    shutil.copy(clip, names[1])
    if kind == "online":
        rt = _session(work, "causal.ffn")  # opened once per process, not per case
        stream = rt.online_stream(clip, max_decisions=12, window_s=0.5)
    elif kind == "multi":
        stream = _runtime(work).streams(names[:2], max_decisions=6, window_s=0.5, stride_ms=100)
    else:
        stream = _runtime(work).stream(clip, max_decisions=8, window_s=0.5, stride_ms=100)
    errors: list[str] = []
    documented: list[int] = []
    threads = [threading.Thread(target=_hammer, args=(_setter_calls(stream, kind, rng, names), rng, errors,
                                                      documented), daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        results = list(stream)
    finally:
        for t in threads:
            t.join(JOIN_S)
        stream.close()
    if any(t.is_alive() for t in threads):
        return "hang", f"{kind}: a setter thread is still running"
    if errors:
        return "undocumented", f"{kind}: {errors[0]}"
    if any(p is not None and not math.isfinite(p.score) for p in _labels(results)):
        return "silent", f"{kind}: a non-finite label"
    return ("documented", f"{kind}: {len(documented)} setter calls refused") if documented else ("ok", kind)


# ---- frame size changing mid-file ----------------------------------------------------------------------------
def _image(rng: np.random.Generator) -> tuple[str, np.ndarray | bytes]:
    """(extension, image or raw bytes) of one file of a mixed folder."""
    h, w = int(rng.choice([1, 2, 16, 48, 97, 240])), int(rng.choice([1, 3, 32, 64, 131, 320]))
    kind = int(rng.integers(7))
    if kind == 0:
        return ".png", rng.integers(0, 256, (h, w), dtype=np.uint8)
    if kind == 1:
        return ".png", rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    if kind == 2:
        return ".png", rng.integers(0, 65536, (h, w, 3), dtype=np.uint16)
    if kind == 3:
        return ".jpg", b"\xff\xd8 not a jpeg"
    if kind == 4:
        return ".png", b""
    return ".jpg", rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _mixed_folder(case: Path, rng: np.random.Generator) -> str:
    import cv2

    folder = case / "frames"
    folder.mkdir()
    for j in range(int(rng.integers(1, 30))):
        ext, img = _image(rng)
        path = folder / f"{j:04d}{ext}"
        if isinstance(img, bytes):
            path.write_bytes(img)
        else:
            cv2.imwrite(str(path), img)
    return str(folder)


def _mjpeg(case: Path, rng: np.random.Generator) -> str:
    """Concatenated JPEGs whose size changes (an MJPEG stream as a camera or a muxer writes it)."""
    import cv2

    sizes = [(48, 64), (96, 128), (240, 320), (16, 16), (64, 48)]
    parts = []
    size = sizes[0]
    for _ in range(int(rng.integers(10, 40))):
        if rng.random() < 0.2:
            size = sizes[int(rng.integers(len(sizes)))]
        ok, buf = cv2.imencode(".jpg", rng.integers(0, 256, (*size, 3), dtype=np.uint8))
        parts.append(buf.tobytes())
    path = case / "changing.mjpeg"
    path.write_bytes(b"".join(parts))
    return str(path)


class ResizingCapture:
    """A capture whose frames change shape (and sometimes channel count or dtype) mid-stream."""

    def __init__(self, rng: np.random.Generator) -> None:
        shapes = [(48, 64, 3), (240, 320, 3), (480, 640, 3), (1, 64, 3), (48, 64), (48, 64, 4), (16, 2000, 3)]
        self.frames = [shapes[int(rng.integers(len(shapes)))] for _ in range(int(rng.integers(5, 40)))]
        self.index, self.opened = 0, True

    def isOpened(self) -> bool:  # noqa: N802 - cv2.VideoCapture's name
        return self.opened

    def read(self) -> tuple[bool, Any]:
        if self.index >= len(self.frames):
            return False, None
        shape = self.frames[self.index]
        self.index += 1
        return True, np.full(shape, 90 + self.index, np.uint8)

    def get(self, prop: int) -> float:
        import cv2

        return {cv2.CAP_PROP_FPS: 10.0, cv2.CAP_PROP_POS_MSEC: 100.0 * self.index}.get(prop, 0.0)

    def release(self) -> None:
        self.opened = False


def run_frames(i: int, work: Path, case: Path) -> tuple[str, str]:
    from fuzz import _runtime
    from fuzz_bundles import _session

    rng = np.random.default_rng(140_000 + i)
    which = ["folder", "mjpeg", "capture"][i % 3]
    online = bool(i % 2)
    opener = None
    if which == "folder":
        source = _mixed_folder(case, rng)
    elif which == "mjpeg":
        source = _mjpeg(case, rng)
    else:
        capture = ResizingCapture(rng)
        source, opener = str(work / "clip.avi"), (lambda spec: capture)
    if online:
        rt = _session(work, "causal.ffn")  # opened once per process, not per case
        results = list(rt.online_stream(source, max_decisions=12, window_s=0.5, opener=opener))
    else:
        results = list(_runtime(work).stream(source, max_decisions=4, window_s=0.5, stride_ms=200, opener=opener))
    if any(p is not None and not math.isfinite(p.score) for p in _labels(results)):
        return "silent", f"{which}: a non-finite label"
    return "ok", f"{which} online={online}: {len(results)} results"


def _preload() -> None:
    import cv2  # noqa: F401 - imported before any case's alarm
    import ffn_edge.runtime  # noqa: F401


PRELOAD = {"threads": _preload, "frames": _preload}
RUNNERS = {"threads": run_threads, "frames": run_frames}
