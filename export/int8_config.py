"""What ``--int8`` asks for (torch-free, so ``ffn-export`` checks its options before importing torch).

``QuantConfig``: how graphs are quantized (``quantize``); ``Int8Options``: that plus where the
calibration clips come from and the export-time agreement threshold (``int8``). Every INT8 default
is defined here once.
"""

from __future__ import annotations

import dataclasses

from ..core.validate import CALIB_METHODS, INT8_ACTIVATIONS, INT8_LAYOUTS, INT8_SCOPES
from .calib import DEFAULT_CALIB_CLIPS, SYNTHETIC, CalibSource, check_calib_clips
from .errors import ExportError

DEFAULT_SCOPE = INT8_SCOPES[0]
# u8 activations with s8 weights and 7-bit weight range: ONNX Runtime's advice for x86 without VNNI
# (this machine); s8 (symmetric) activations are what TensorRT's explicit quantization accepts.
DEFAULT_ACTIVATIONS = "u8"
METHOD = CALIB_METHODS[0]
DEFAULT_LAYOUT = "shared"
LAYOUT_RATIONALE = ("it meets the bytes, latency and top-1 goals on TSM-ResNet-50 (0.26x FP32 bytes, 0.51-0.52x "
                    "latency); folded was 2-5%% faster but 0.50x bytes (benchmarks/int8.py, README 'INT8')")
# Top-1 agreement with the FP32 graph below which an INT8 export is refused. Not 1.0: clips whose two
# best logits are nearly tied may flip under any rounding; a broken calibration (every clip the same
# class, the failure edge users report) lands far below.
DEFAULT_MIN_AGREEMENT = 0.9


@dataclasses.dataclass(frozen=True)
class QuantConfig:
    """How graphs are quantized; recorded in the manifest."""

    scope: str = DEFAULT_SCOPE
    activations: str = DEFAULT_ACTIVATIONS
    layout: str = DEFAULT_LAYOUT  # see LAYOUT_RATIONALE
    reduce_range: bool = True

    def __post_init__(self) -> None:
        if self.scope not in INT8_SCOPES:
            raise ExportError(f"calibration scope must be one of {', '.join(INT8_SCOPES)}, got {self.scope!r}")
        if self.activations not in INT8_ACTIVATIONS:
            raise ExportError(f"--int8-activations must be one of {', '.join(INT8_ACTIVATIONS)}, "
                              f"got {self.activations!r}")
        if self.layout not in INT8_LAYOUTS:
            raise ExportError(f"--int8-layout must be one of {', '.join(INT8_LAYOUTS)}, got {self.layout!r}")


def check_min_agreement(value: float) -> None:
    """A share in [0, 1] (also refuses NaN)."""
    if not 0.0 <= value <= 1.0:
        raise ExportError(f"--int8-min-agreement must be in [0, 1] (a share of the verification clips), got {value}")


@dataclasses.dataclass(frozen=True)
class Int8Options:
    """Everything ``--int8`` adds to an export."""

    calib: CalibSource = CalibSource(SYNTHETIC)
    calib_clips: int = DEFAULT_CALIB_CLIPS
    config: QuantConfig = QuantConfig()
    min_agreement: float = DEFAULT_MIN_AGREEMENT

    def __post_init__(self) -> None:
        check_calib_clips(self.calib_clips)
        check_min_agreement(self.min_agreement)
