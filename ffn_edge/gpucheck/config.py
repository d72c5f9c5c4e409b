"""Sizes of the GPU check: one source for its defaults (meant to stay under 8 minutes on one GPU; untimed)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class CheckConfig:
    """What the check trains and measures. ``device`` cpu runs the torch parts on the CPU (to test the check)."""

    device: str = "auto"
    arch: str = "tsm_resnet18"
    width: float = 1.0
    frames: tuple[int, ...] = (4, 8, 16)
    classes: int = 10
    synth_size: int = 64  # training crops are 7/8 of it
    synth_frames: int = 48
    train_per_class: int = 24
    val_per_class: int = 8
    batch_size: int = 8
    epochs: int = 10  # 10 classes x 24 videos / batch 8 = 30 steps an epoch: 300 steps
    workers: int = 4
    size: int = 224  # latency and memory: input crop, batch 1
    runs: int = 50  # timed runs per method and frame count
    warmup: int = 10
    clips: int = 4  # clips per frame count for the parity checks
    compile: bool = True
    timeout_s: int = 300  # per training / evaluation process

    @property
    def steps(self) -> int:
        return self.epochs * -(-self.classes * self.train_per_class // self.batch_size)


# Tiny sizes, for testing the check itself on a CPU in seconds.
TINY = dict(width=0.125, frames=(2, 4), classes=3, synth_size=32, synth_frames=8, train_per_class=2,
            val_per_class=1, batch_size=2, epochs=1, workers=0, size=32, runs=2, warmup=1, clips=2, compile=False)
