"""The input contract of ``predict`` and ``stream``, as checks that run before any work (no torch).

``predict(frames, n=None, topk=5, timestamps=None)`` accepts exactly:

* ``frames`` — T >= 1 frames (T <= MAX_CLIP_FRAMES), all of ONE kind:

  - raw video frames: uint8 arrays (h, w) gray, (h, w, 1), (h, w, 3) BGR or (h, w, 4) BGRA, each
    within ``validate.check_frame_shape`` (side, pixel and aspect limits; sizes may differ between
    frames), given as a list/tuple of arrays or as one uint8 array (T, h, w[, c]);
  - preprocessed frames: float32 (3, H, W) with (H, W) the bundle's input size, given as a
    list/tuple or one float32 array (T, 3, H, W); their values must be finite (checked on the
    frames actually sampled, ``check_finite``).

  Anything else — another type or dtype, a mixed list (uint8 and float32, or arrays and other
  objects), a wrong shape, an empty clip — raises ``InputError``.
* ``n`` — None (the exported count nearest to T) or an int in [1, MAX_FRAME_COUNT];
* ``topk`` — an int in [1, MAX_TOPK];
* ``timestamps`` — None or T finite numbers.

Every violation raises ``InputError`` (an FFNError and a ValueError) with one line. Stream and
CLI options are checked by ``check_stream_options`` (ConfigError); ``check_output_file`` and
``check_video_file`` check paths before a model is loaded; ``require_decisions`` turns a source
that gave no decision into a SourceError (``runtime.quiet`` silences FFmpeg's own lines).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ...core import validate as V
from ...core.errors import ConfigError, InputError, SourceError
from .scene_cut import check_cut_threshold

ClipKind = Literal["raw", "preprocessed"]


def check_run_clip(clip: Any, n: int, fed: int) -> None:
    """``FFNRuntime.run``'s clip: an array (N, fed, 3, H, W) for the graph that serves n frames (shape and
    values are the graph's to check); InputError otherwise."""
    if not isinstance(clip, np.ndarray) or clip.ndim != 5 or clip.shape[1] != fed:
        got = clip.shape if isinstance(clip, np.ndarray) else type(clip).__name__
        raise InputError(f"{n} frames are served with {fed} frames: run() takes (N, {fed}, 3, H, W), got {got}")


def check_clip(frames: Any, size: tuple[int, int]) -> ClipKind:
    """Check ``frames`` against the contract above (cheap: shapes and dtypes only); returns its kind."""
    if isinstance(frames, np.ndarray):
        return _check_array(frames, size)
    if not isinstance(frames, (list, tuple)):
        raise InputError(f"frames must be a list of image arrays or one numpy array, got {type(frames).__name__}")
    _check_count(len(frames))
    first = frames[0]
    if not isinstance(first, np.ndarray):
        raise InputError(f"frames[0] is {type(first).__name__}, expected a numpy image array")
    kind: ClipKind = "preprocessed" if first.dtype == np.float32 else "raw"
    for i, f in enumerate(frames):
        if not isinstance(f, np.ndarray):
            raise InputError(f"frames[{i}] is {type(f).__name__}, expected a numpy image array")
        if kind == "preprocessed":
            if f.dtype != np.float32:
                raise InputError(f"frames[{i}] is {f.dtype} but frames[0] is float32: a clip is all raw uint8 "
                                 "frames or all preprocessed float32 frames")
            if f.shape != (3, *size):
                raise InputError(f"frames[{i}]: preprocessed frames must be (3, {size[0]}, {size[1]}) float32, "
                                 f"got {f.shape}")
        else:
            _check_raw(f, f"frames[{i}]")
    return kind


def _check_count(total: int) -> None:
    if total < 1:
        raise InputError("predict() needs at least one frame")
    if total > V.MAX_CLIP_FRAMES:
        raise InputError(f"a clip has at most {V.MAX_CLIP_FRAMES} frames, got {total}")


def _check_raw(f: np.ndarray, what: str) -> None:
    if f.dtype != np.uint8:
        raise InputError(f"{what} has dtype {f.dtype}: raw frames are uint8 (preprocessed ones float32)")
    if f.ndim == 2 or (f.ndim == 3 and f.shape[2] in (1, 3, 4)):
        try:
            V.check_frame_shape(f.shape[0], f.shape[1])
        except ValueError as e:
            raise InputError(f"{what}: {e}") from None
        return
    raise InputError(f"{what} of shape {f.shape} is not an image ((h, w), (h, w, 1), (h, w, 3) BGR or "
                     "(h, w, 4) BGRA)")


def _check_array(frames: np.ndarray, size: tuple[int, int]) -> ClipKind:
    if frames.ndim < 3:
        raise InputError(f"a frame array must be (T, h, w[, c]) uint8 or (T, 3, H, W) float32, got {frames.shape}")
    _check_count(frames.shape[0])
    if frames.dtype == np.float32:
        if frames.shape[1:] != (3, *size):
            raise InputError(f"preprocessed frames must be (T, 3, {size[0]}, {size[1]}) float32, got {frames.shape}")
        return "preprocessed"
    if frames.ndim > 4:
        raise InputError(f"a frame array must be (T, h, w[, c]), got {frames.shape}")
    _check_raw(frames[0], "frames")
    return "raw"


def check_finite(clip: np.ndarray, limit: float | None = None) -> None:
    """The model input (the sampled, preprocessed frames) holds no NaN or infinity, and no |value| over
    ``limit`` (``preprocessed_limit``: finite but huge values overflow float32 inside the network)."""
    if not np.isfinite(clip).all():
        raise InputError("frames contain NaN or infinite values")
    if limit is not None and clip.size and float(np.max(np.abs(clip))) > limit:
        raise InputError(f"preprocessed frames hold values up to {float(np.max(np.abs(clip))):.3g}; this bundle's "
                         f"normalisation gives at most {limit / PREPROCESSED_MARGIN:.3g} (allowed: {limit:.3g})")


PREPROCESSED_MARGIN = 4.0  # how far past the normalised range of 0..1 pixels a preprocessed value may go


def preprocessed_limit(mean: tuple[float, ...], std: tuple[float, ...]) -> float:
    """The largest |value| a preprocessed frame may hold: PREPROCESSED_MARGIN x what (pixel - mean) / std
    gives for pixels on 0..1."""
    return PREPROCESSED_MARGIN * max(max(abs(m), abs(1.0 - m)) / s for m, s in zip(mean, std, strict=True))


def check_predict_args(total: int, n: Any = None, topk: Any = 5, timestamps: Any = None) -> None:
    """``n``, ``topk`` and ``timestamps`` of ``predict`` for a clip of ``total`` frames."""
    try:
        if n is not None:
            V.check_int("n", n, 1, V.MAX_FRAME_COUNT)
        V.check_int("topk", topk, 1, V.MAX_TOPK)
    except ValueError as e:
        raise InputError(str(e)) from None
    if timestamps is None:
        return
    try:
        stamps = np.asarray(timestamps, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError("timestamps must be numbers") from None
    if stamps.shape != (total,):
        raise InputError(f"timestamps must be {total} numbers (one per frame), got shape {stamps.shape}")
    if not np.isfinite(stamps).all():
        raise InputError("timestamps must be finite")


STREAM_OPTION_CHECKS: dict[str, Callable[[Any], Any]] = {  # name -> check (ValueError), limits in core.validate
    "window_s": lambda v: V.check_float("window (s)", v, V.MIN_WINDOW_S, V.MAX_WINDOW_S),
    "stride_ms": lambda v: V.check_float("stride (ms)", v, V.MIN_STRIDE_MS, V.MAX_STRIDE_MS),
    "duration_s": lambda v: V.check_float("duration (s)", v, 0.0, V.MAX_DURATION_S, lo_open=True),
    "threads": V.check_threads,
    "frames": lambda v: V.check_int("frames", v, 1, V.MAX_FRAME_COUNT),
    "budget_ms": lambda v: V.check_float("budget (ms)", v, 0.0, V.MAX_STRIDE_MS, lo_open=True),
    "cpu_share": lambda v: V.check_float("cpu share", v, 0.0, V.MAX_CPU_SHARE, lo_open=True),
    "power_w": lambda v: V.check_float("power (W)", v, 0.0, 1e6, lo_open=True),
    "max_decisions": lambda v: V.check_int("max decisions", v, 1, 1 << 62),
    "topk": lambda v: V.check_int("topk", v, 1, V.MAX_TOPK),
    "realtime": lambda v: V.check_bool("realtime", v),
    "keep_frame": lambda v: V.check_bool("keep_frame", v),
    "wait_timeout_s": lambda v: V.check_float("wait timeout (s)", v, 0.0, V.MAX_WAIT_S, lo_open=True),
    "backoff_s": lambda v: V.check_float("backoff (s)", v, 0.0, V.MAX_WAIT_S, lo_open=True),
    "capacity": lambda v: V.check_int("capacity", v, 1, V.MAX_CLIP_FRAMES),
    "reset_on_cut": lambda v: check_cut_threshold(v, "reset-on-cut threshold"),
}


def check_stream_options(**options: Any) -> None:
    """Stream / ``ffn-run`` options by name: finite, positive and bounded (``None`` means not given).

    ``StreamOptions`` / ``OnlineOptions`` (``streaming/options.py``) call this with all their fields on
    creation; the session calls ``check_stream_options(threads=threads)`` alone.
    """
    for name, value in options.items():
        if name not in STREAM_OPTION_CHECKS:
            raise TypeError(f"check_stream_options: no stream option {name!r}")
        if value is None:
            continue
        try:
            STREAM_OPTION_CHECKS[name](value)
        except ValueError as e:
            raise ConfigError(str(e)) from None


def check_output_file(path: str | os.PathLike[str]) -> None:
    """An output file can be written (checked before the model loads): not a directory, directory writable."""
    p = Path(path)
    if p.exists():
        mode = os.stat(p).st_mode
        if stat.S_ISDIR(mode):
            raise ConfigError(f"{p}: is a directory, expected an output file")
        if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)):
            raise ConfigError(f"{p}: exists and is not a file")
        writable = os.access(p, os.W_OK)
    else:
        if not p.parent.is_dir():
            raise ConfigError(f"{p}: directory {p.parent} does not exist")
        writable = os.access(p.parent, os.W_OK | os.X_OK)
    if not writable:
        raise ConfigError(f"{p}: not writable")


def check_video_writer(path: str | os.PathLike[str], fourcc: str = "mp4v") -> None:
    """OpenCV can write a video of this kind (its container, from the suffix) here: probed with a tiny
    writer in a private temporary folder, so nothing beside ``path`` is touched and no model runs first."""
    import shutil
    import tempfile

    import cv2

    folder = tempfile.mkdtemp(prefix="ffn-writer-probe-")
    try:
        probe = os.path.join(folder, "probe" + Path(path).suffix)
        writer = cv2.VideoWriter(probe, cv2.VideoWriter_fourcc(*fourcc), 10.0, (16, 16))
        ok = writer.isOpened()
        writer.release()
    except cv2.error:
        ok = False
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if not ok:
        raise ConfigError(f"--output {path}: OpenCV cannot write a {Path(path).suffix or 'suffix-less'} video "
                          "(try a .mp4 path)")


TEXT_SNIFF_BYTES = 4096
VIDEO_MAGIC = (b"YUV4MPEG2 ",)  # formats whose header is text (followed by raw frames)


def check_video_file(path: str | os.PathLike[str]) -> None:
    """A path given as a video file exists, is not a directory, is not empty and is not plain text.

    FFmpeg "decodes" a text file as a video of garbage frames; its first 4 KiB being printable
    UTF-8 text identifies it (no video container starts like that). Devices and FIFOs pass
    (cameras, pipes); only regular files are sniffed.
    """
    p = Path(path)
    try:
        st = os.stat(p)
    except OSError:
        raise SourceError(f"{p}: video file not found") from None
    if stat.S_ISDIR(st.st_mode):
        raise SourceError(f"{p}: is a directory, not a video file")
    if not stat.S_ISREG(st.st_mode):
        return
    if st.st_size == 0:
        raise SourceError(f"{p}: empty file, not a video")
    with open(p, "rb") as f:
        head = f.read(TEXT_SNIFF_BYTES)
    if head.startswith(VIDEO_MAGIC):
        return
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 4:  # not just a character cut at the end of the sniffed bytes
            return
        text = head[: e.start].decode("utf-8")
    if all(c.isprintable() or c in "\t\r\n\f" for c in text):
        raise SourceError(f"{p}: is a text file, not a video")


def require_decisions(count: int, source: str) -> None:
    """A stream that ended with no decision read no usable frame: an error, not a quiet exit 0."""
    if count < 1:
        raise SourceError(f"{source}: no decodable frame (0 decisions): not a video this OpenCV/FFmpeg can read")

