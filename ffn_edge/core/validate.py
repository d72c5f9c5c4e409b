"""THE limits and value checks of ffn-edge (torch-free): checkpoint metadata, bundle manifests, frames, options.

Every limit is defined here once and every check is one function, used by the checkpoint loader,
the model registry, the manifest loader, the preprocessor, ``runtime.inputs`` and the exporter, so
bad values are refused before anything is allocated or built. Each check raises ``ValueError``
with one line naming the field; callers re-raise it as their FFNError with the file it came from.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

# ---- limits (one source) -------------------------------------------------------------------------
MAX_FRAME_COUNT = 256  # frames one sub-network / graph / decision may take
MAX_SUBNETS = 16  # sub-networks in one model
MAX_CLASSES = 100_000  # classifier outputs
MAX_CLASS_NAME_CHARS = 512
MIN_WIDTH_MULT, MAX_WIDTH_MULT = 1 / 16, 4.0  # channel multiplier: >= 4 base channels, <= 16x the weights
MIN_SHIFT_DIV, MAX_SHIFT_DIV = 2, 1024  # temporal shift moves 1/shift_div of the channels each way
# Temporal shift direction (``ffn_edge.layers.temporal_shift``): the first is the default, and what a
# checkpoint or manifest without the field was trained with. "causal" models can run online (step graphs).
SHIFT_MODES = ("bidirectional", "causal")
DEFAULT_SHIFT = SHIFT_MODES[0]
# SlowFast's slow-pathway frames: "linspace" (PySlowFast's pack_pathway_output, what its released weights
# were trained on) or "stride" (every alpha-th frame, the only rule before the option existed).
SLOW_FRAME_RULES = ("linspace", "stride")
MAX_WA_INIT_STD = 1.0
MIN_INPUT_SIZE, MAX_INPUT_SIZE = 8, 1024  # network crop side in pixels
MAX_RESIZE_SHORTER = 4096
MAX_NORM_ABS = 1e3  # |mean|, std of the normalisation (pixels on 0..1)
MIN_STD = 1e-6
MAX_FRAME_SIDE = 16384  # pixels, either side of one input frame
MAX_FRAME_PIXELS = 1 << 26  # 67 M pixels (8K x 8K)
MAX_RESIZED_PIXELS = 1 << 24  # larger resized frames are not built whole: only their crop (``preprocess``)
MAX_FRAME_ASPECT = 16.0  # longer / shorter side: bounds the resized frame (shorter side -> resize_shorter)
MAX_CLIP_FRAMES = 100_000  # frames handed to one predict()
MAX_THREADS = 256  # inference / capture threads
MAX_STREAMS = 16  # sources one multi-stream serves (one capture thread each; the allocator's knapsack grows with it)
MAX_TOPK = 1000
MAX_JSON_BYTES = 64 << 20  # manifest.json / checkpoint metadata
MAX_JSON_DEPTH = 64  # nesting of any JSON we read
MAX_SAFETENSORS_HEADER = 100 << 20  # what safetensors itself accepts
MIN_WINDOW_S, MAX_WINDOW_S = 0.1, 60.0  # stream window: at least one frame of a 10 fps source
MIN_STRIDE_MS, MAX_STRIDE_MS = 10.0, 3_600_000.0  # a shorter stride would decide faster than any model runs
MAX_DURATION_S = 10 * 365 * 86400.0
MAX_CPU_SHARE = 1.0  # an online stream's steps: at most all of its wall time
MAX_CUT_THRESHOLD = 1.0  # scene-cut threshold, a total variation distance: in (0, 1] (1: disjoint colour histograms)
MAX_WAIT_S = 3600.0  # a stream's wait for a frame, its first back-off before reopening a source
MAX_OPSET = 100
MAX_FILES = 10_000  # files one bundle may list
MAX_STEP_BUFFERS = 1024  # temporal-shift buffers of one step graph (TSM-ResNet-50: 16)
MAX_BUFFER_CHANNELS = 1 << 16
# INT8 bundles (``ffn-export --int8``; checked on load by ``Manifest.quantization``)
PRECISIONS = ("fp32", "int8")
INT8_SCOPES = ("per-subnet", "shared")  # activation ranges per sub-network, or one table for all
INT8_ACTIVATIONS = ("u8", "s8")  # u8: ORT on x86 without VNNI; s8 (symmetric): what TensorRT takes
INT8_LAYOUTS = ("shared", "folded")  # INT8 weights shared, norms apart / norms folded into per-sub-network copies
CALIB_METHODS = ("MinMax",)
MAX_CALIB_CLIPS = 1024

# ffn-train's numeric options: field -> (int or float, low, high, low end open). The parser takes its
# types and --help ranges from here and ``ffn_edge.train.resolve`` checks a TrainConfig built in Python.
MAX_EPOCHS = 100_000
TRAIN_RANGES: dict[str, tuple[type, float, float, bool]] = {
    "width_mult": (float, MIN_WIDTH_MULT, MAX_WIDTH_MULT, False),
    "dropout": (float, 0.0, 0.99, False),
    "drop_path": (float, 0.0, 0.99, False),
    "shift_div": (int, MIN_SHIFT_DIV, MAX_SHIFT_DIV, False),
    "context": (int, 0, MAX_FRAME_COUNT, False),  # --context: frames of other videos before a clip
    "frames": (int, 1, MAX_FRAME_COUNT, False),
    "frame_counts": (int, 1, MAX_FRAME_COUNT, False),
    "rho": (float, 0.0, 1.0, False),
    "mix_alpha": (float, 0.0, 1000.0, True),  # Beta(0, 0) is undefined
    "lam": (float, 0.0, 1000.0, False),
    "lam_ramp": (float, 0.0, MAX_EPOCHS, False),
    "start_index": (int, 0, 1_000_000_000, False),
    "input_size": (int, MIN_INPUT_SIZE, MAX_INPUT_SIZE, False),
    "resize_shorter": (int, MIN_INPUT_SIZE, MAX_RESIZE_SHORTER, False),
    "synth_classes": (int, 1, 10, False),
    "synth_train_per_class": (int, 1, 100_000, False),
    "synth_val_per_class": (int, 1, 100_000, False),
    "synth_frames": (int, 1, 100_000, False),
    "synth_size": (int, MIN_INPUT_SIZE, MAX_INPUT_SIZE, False),
    "synth_seed": (int, 0, 2**32 - 1, False),
    "batch_size": (int, 1, 65_536, False),
    "lr": (float, 0.0, 1000.0, True),
    "warmup_epochs": (float, 0.0, MAX_EPOCHS, False),
    "epochs": (int, 1, MAX_EPOCHS, False),
    "workers": (int, 0, MAX_THREADS, False),
    "momentum": (float, 0.0, 1.0, False),
    "weight_decay": (float, 0.0, 10.0, False),
    "min_lr": (float, 0.0, 1000.0, False),
    "clip_grad": (float, 0.0, 1e9, False),
    "max_batches": (int, 0, 1_000_000_000, False),
    "stop_after": (int, 0, MAX_EPOCHS, False),
    "seed": (int, 0, 2**32 - 1, False),
}


def check_fields(obj: Any, ranges: dict[str, tuple[type, float, float, bool]], prefix: str = "--") -> None:
    """Every attribute of ``obj`` named in ``ranges`` (None: not given) is finite and in its range.

    Tuple values are checked item by item. The message names the option as a user types it."""
    for field, (kind, lo, hi, lo_open) in ranges.items():
        value = getattr(obj, field, None)
        for v in value if isinstance(value, (tuple, list)) else ([] if value is None else [value]):
            name = prefix + field.replace("_", "-")
            if kind is int:
                check_int(name, v, int(lo), int(hi))
            else:
                check_float(name, v, lo, hi, lo_open=lo_open)


def check_int(name: str, value: Any, lo: int, hi: int) -> int:
    """An int (not a bool, not a float, not a string) in [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {_show(value)}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {_show_int(value)}")
    return value


def check_float(name: str, value: Any, lo: float, hi: float, *, lo_open: bool = False) -> float:
    """A finite real number (int or float, not a bool) in [lo, hi] (or (lo, hi] with ``lo_open``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {_show(value)}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    if v < lo or v > hi or (lo_open and v == lo):
        raise ValueError(f"{name} must be in {'(' if lo_open else '['}{lo:g}, {hi:g}], got {v:g}")
    return v


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {_show(value)}")
    return value


def check_str(name: str, value: Any, max_chars: int = MAX_CLASS_NAME_CHARS, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {_show(value)}")
    if (not value and not allow_empty) or len(value) > max_chars:
        raise ValueError(f"{name} must be a string of 1..{max_chars} characters, got {len(value)}")
    return value


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """One of ``choices`` (exact string match)."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {_show(value)}")
    return value


def check_list(name: str, value: Any, lo: int, hi: int) -> list[Any]:
    """A JSON array (list or tuple) with lo..hi items."""
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{name} must be a list, got {_show(value)}")
    if not lo <= len(value) <= hi:
        raise ValueError(f"{name} must have {lo}..{hi} items, got {len(value)}")
    return list(value)


def check_frame_counts(name: str, value: Any) -> tuple[int, ...]:
    """Sub-network frame counts: 1..MAX_SUBNETS distinct integers in [1, MAX_FRAME_COUNT], ascending."""
    counts = [check_int(f"{name}[{i}]", v, 1, MAX_FRAME_COUNT)
              for i, v in enumerate(check_list(name, value, 1, MAX_SUBNETS))]
    if counts != sorted(set(counts)):
        raise ValueError(f"{name} must be distinct and ascending, got {counts}")
    return tuple(counts)


def check_model_config(d: Any, known_arches: Sequence[str] | None = None) -> dict[str, Any]:
    """A ModelConfig as a dict (checkpoint metadata, bundle manifest): every field's type and range."""
    if not isinstance(d, dict):
        raise ValueError(f"model config must be an object, got {_show(d)}")
    fields = {"arch", "num_classes", "frame_counts", "specialised_norm", "weight_alteration", "dropout",
              "shift_div", "width_mult", "shift", "slow_frames", "mta_shift_div", "drop_path", "wa_init_std"}
    unknown = sorted(set(d) - fields)
    if unknown:
        raise ValueError(f"unknown model config keys: {unknown}")
    if "arch" not in d or "num_classes" not in d:
        raise ValueError("model config needs arch and num_classes")
    out = dict(d)
    arch = check_str("arch", d["arch"], 64)
    if known_arches is not None and arch not in known_arches:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(sorted(known_arches))}")
    check_int("num_classes", d["num_classes"], 1, MAX_CLASSES)
    if "frame_counts" in d:
        out["frame_counts"] = check_frame_counts("frame_counts", d["frame_counts"])
    for flag in ("specialised_norm", "weight_alteration"):
        if flag in d:
            check_bool(flag, d[flag])
    if "dropout" in d:
        check_float("dropout", d["dropout"], 0.0, 0.99)
    if "shift_div" in d:
        check_int("shift_div", d["shift_div"], MIN_SHIFT_DIV, MAX_SHIFT_DIV)
    if "width_mult" in d:
        check_float("width_mult", d["width_mult"], MIN_WIDTH_MULT, MAX_WIDTH_MULT)
    if "shift" in d:
        check_choice("shift", d["shift"], SHIFT_MODES)
    if "slow_frames" in d:
        check_choice("slow_frames", d["slow_frames"], SLOW_FRAME_RULES)
    if "mta_shift_div" in d:
        check_int("mta_shift_div", d["mta_shift_div"], MIN_SHIFT_DIV, MAX_SHIFT_DIV)
    if "drop_path" in d:
        check_float("drop_path", d["drop_path"], 0.0, 0.99)
    if "wa_init_std" in d:
        check_float("wa_init_std", d["wa_init_std"], 0.0, MAX_WA_INIT_STD)
    return out


def check_preprocessing(input_size: Any, resize_shorter: Any, mean: Any, std: Any) -> None:
    """Crop side, resize side (>= the crop), 3 finite means and 3 finite positive stds."""
    size = check_int("input_size", input_size, MIN_INPUT_SIZE, MAX_INPUT_SIZE)
    check_int("resize_shorter", resize_shorter, size, MAX_RESIZE_SHORTER)
    for i, v in enumerate(check_list("mean", mean, 3, 3)):
        check_float(f"mean[{i}]", v, -MAX_NORM_ABS, MAX_NORM_ABS)
    for i, v in enumerate(check_list("std", std, 3, 3)):
        check_float(f"std[{i}]", v, MIN_STD, MAX_NORM_ABS)


def check_class_names(names: Any, num_classes: int) -> list[str]:
    """Exactly ``num_classes`` non-empty strings (a decision indexes this list with the argmax)."""
    items = check_list("class_names", names, 1, MAX_CLASSES)
    if len(items) != num_classes:
        raise ValueError(f"{len(items)} class names for {num_classes} classes (one name per classifier output)")
    return [check_str(f"class_names[{i}]", v) for i, v in enumerate(items)]


def check_frame_shape(height: int, width: int) -> None:
    """A frame's size: both sides in [1, MAX_FRAME_SIDE], pixels and aspect ratio bounded."""
    if height < 1 or width < 1:
        raise ValueError(f"frame is empty ({height}x{width})")
    if max(height, width) > MAX_FRAME_SIDE or height * width > MAX_FRAME_PIXELS:
        raise ValueError(f"frame of {width}x{height} pixels is larger than the limit "
                         f"({MAX_FRAME_SIDE} per side, {MAX_FRAME_PIXELS} pixels)")
    if max(height, width) > MAX_FRAME_ASPECT * min(height, width):
        raise ValueError(f"frame of {width}x{height} pixels has an aspect ratio over {MAX_FRAME_ASPECT:g}:1")


def check_threads(threads: Any) -> int | None:
    """Inference threads: None (the backend's default) or an int in [1, MAX_THREADS]."""
    return None if threads is None else check_int("threads", threads, 1, MAX_THREADS)


def json_depth(value: Any) -> int:
    """Nesting depth of parsed JSON, computed without recursion."""
    depth, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            depth = max(depth, d)
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            depth = max(depth, d)
            stack.extend((x, d + 1) for x in v)
    return depth


def _show_int(value: int) -> str:
    """An int for a message: whole when short, else its size (``str`` of a huge int raises, or floods)."""
    if abs(value) < 10**40:
        return str(value)
    return f"an integer of about {int(value.bit_length() * math.log10(2))} digits"


def _show(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        text = _show_int(value)
    else:
        try:
            text = repr(value)[:200]
        except ValueError:  # holds an int too long to print
            text = "(too large to show)"
    return f"{type(value).__name__} {text[:40]}{'...' if len(text) > 40 else ''}"
