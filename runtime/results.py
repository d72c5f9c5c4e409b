"""What the runtime answers: a graph run, a clip's prediction, a stream decision, an online step.

Plain frozen dataclasses with ``to_json``, below the session and the streams so that every layer
above (streams, summary, CLI, apps) can name them without importing the code that makes them.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.errors import InputError


def rounded(v: float | None, digits: int = 3) -> float | None:
    """``v`` rounded for JSON (ms to the microsecond by default); None stays None."""
    return None if v is None else round(float(v), digits)


def _frame_field() -> Any:
    """The decided frame is the app's (to draw on, show, save): never in equality, repr or to_json."""
    return dataclasses.field(default=None, repr=False, compare=False)


def _wall_time_field() -> Any:
    return dataclasses.field(default_factory=time.time, compare=False)


@dataclasses.dataclass(frozen=True)
class RunResult:
    """One run of a graph: its logits and what it cost."""

    logits: np.ndarray  # (N, K) float32
    frames: int  # frames fed
    subnet: int  # sub-network index that ran
    latency_ms: float  # wall time of the backend run (see Prediction.latency_ms)
    cpu_ms: float  # CPU time of the calling thread during the run (the run's own cost)


@dataclasses.dataclass(frozen=True)
class Prediction:
    """The answer for one clip.

    ``latency_ms`` means one thing everywhere (``predict``, streams, the scheduler, budgets): the wall
    time of the backend run on the n sampled, preprocessed frames, i.e. the part a frame-count decision
    changes. It does not include preprocessing raw frames (``predict``) or capture (streams).
    """

    label: str
    index: int
    score: float  # softmax probability of ``label``
    topk: list[tuple[str, float]]  # (label, probability), best first
    frames: int  # frames fed to the network
    subnet: int  # sub-network index that ran (into manifest.subnet_frame_counts)
    latency_ms: float  # the backend run (see above)
    timestamps: tuple[float, ...]  # of the frames used (seconds; frame indices for plain predict)
    cpu_ms: float | None = None  # CPU time of the calling thread during that run

    @classmethod
    def from_run(cls, class_names: Sequence[str], result: RunResult, stamps: tuple[float, ...],
                 topk: int) -> Prediction:
        """The prediction for a run's first clip: softmax, best class, the ``topk`` best (ties: lower index)."""
        logits = result.logits[0]
        if not np.isfinite(logits).all():
            raise InputError("the network's scores for this clip are not finite (NaN or infinity)")
        z = logits.astype(np.float64) - float(np.max(logits))
        probs = np.exp(z) / np.sum(np.exp(z))
        order = np.argsort(-probs, kind="stable")[: max(1, topk)]
        best = int(order[0])
        return cls(label=class_names[best], index=best, score=float(probs[best]),
                   topk=[(class_names[int(i)], float(probs[i])) for i in order], frames=result.frames,
                   subnet=result.subnet, latency_ms=result.latency_ms, timestamps=stamps, cpu_ms=result.cpu_ms)

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "index": self.index,
            "score": round(self.score, 6),
            "topk": [[lbl, round(s, 6)] for lbl, s in self.topk],
            "frames": self.frames,
            "subnet": self.subnet,
            "latency_ms": round(self.latency_ms, 3),
            "cpu_ms": rounded(self.cpu_ms),
            "timestamps": [round(t, 4) for t in self.timestamps],
        }


@dataclasses.dataclass(frozen=True)
class StreamResult:
    """One decision of a stream: the prediction plus why that frame count and the budget state."""

    decision: int  # 0, 1, 2, ...
    prediction: Prediction
    window: tuple[float, float]  # (start, end) seconds of the video the decision looked at
    frames_available: int  # frames in the window (the prediction sampled ``frames`` of them)
    requested_frames: int  # n the policy asked for (served by the nearest sub-network)
    reason: str  # "fixed", "max", or the scheduler's reasons joined by "," ("warmup", "budget", ...)
    budget_ms: float | None
    within_budget: bool | None  # latency <= budget (None without a budget)
    events: tuple[str, ...]  # source events since the previous decision (lost, reopened, ...)
    reasons: tuple[str, ...] = ()  # the same reasons as a list (scheduler.REASONS, "fixed" or "max")
    predicted_ms: float | None = None  # the scheduler's high-percentile latency prediction for n
    feasible: bool | None = None  # False: even the smallest count was predicted over the budget
    budget: dict[str, Any] = dataclasses.field(default_factory=dict)  # budgets in force + sensor readings
    stamp: float | None = None  # of the frame the decision was made on: the window's newest
    origin: float = 0.0  # the stamp of the source's second 0 (a live source's capture start; files 0)
    frame: np.ndarray | None = _frame_field()  # that frame as read (BGR uint8), with keep_frame=True; else None
    wall_time: float = _wall_time_field()  # time.time() when the result was made (the schema's ISO ``time``)

    @property
    def latency_ms(self) -> float:
        """The run this decision timed (``Prediction.latency_ms``; an online result's step, alike)."""
        return self.prediction.latency_ms

    @property
    def frames(self) -> int:
        """Frames the network looked at (an online result's n, alike)."""
        return self.prediction.frames

    @property
    def t(self) -> float:
        """Seconds into the source of the frame decided on (without its stamp: of the window's end)."""
        return (self.window[1] if self.stamp is None else self.stamp) - self.origin

    def to_json(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            **self.prediction.to_json(),
            "window": [round(self.window[0], 4), round(self.window[1], 4)],
            "frames_available": self.frames_available,
            "requested_frames": self.requested_frames,
            "reason": self.reason,
            "budget_ms": self.budget_ms,
            "within_budget": self.within_budget,
            "events": list(self.events),
            "reasons": list(self.reasons),
            "predicted_ms": rounded(self.predicted_ms),
            "feasible": self.feasible,
            "budget": self.budget,
        }


@dataclasses.dataclass(frozen=True)
class OnlineResult:
    """One step of an online stream: what ran, and the label in force after it."""

    step: int  # 0, 1, 2, ...
    prediction: Prediction | None  # the label in force: fresh if ``warm``, else the last warm one (or None)
    warm: bool  # the label is the mean of the last n logits of the sub-network that ran this step
    subnet: int  # the sub-network that ran
    frames: int  # its n: logits per label, steps per window
    stride_ms: float  # source time between two steps: window / n
    latency_ms: float  # wall time of this step's run (one frame)
    cpu_ms: float  # CPU time of that run
    warm_steps: int  # frames of this sub-network in its logit ring (n once warm)
    switched: bool  # this step is the first of a newly started sub-network (buffers from zeros)
    stamp: float  # of the frame that ran (seconds)
    capture_to_label_ms: float | None  # frame captured -> this result; None for a file read offline
    reason: str
    reasons: tuple[str, ...]
    budget_ms: float | None  # step compute allowed per window (cpu_share x window), None without
    cpu_share: float | None
    within_budget: bool | None  # this step's rate fits: latency_ms x n <= budget_ms
    predicted_ms: float | None  # the scheduler's prediction for the window (n steps)
    feasible: bool | None
    budget: dict[str, Any]
    events: tuple[str, ...]
    cut: bool = False  # this step's frame started a new scene (reset_on_cut): buffers and logit ring restarted
    origin: float = 0.0  # the stamp of the source's second 0 (a live source's capture start; files 0)
    frame: np.ndarray | None = _frame_field()  # the step's frame as read (BGR uint8), with keep_frame=True; else None
    wall_time: float = _wall_time_field()  # time.time() when the result was made (the schema's ISO ``time``)

    @property
    def t(self) -> float:
        """Seconds into the source of the step's frame."""
        return self.stamp - self.origin

    @property
    def window(self) -> tuple[float, float]:
        """(first, last) stamp of the frames behind the label in force (the step's frame alone without one)."""
        return (self.prediction.timestamps[0] if self.prediction else self.stamp), self.stamp

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "prediction": None if self.prediction is None else self.prediction.to_json(),
            **{k: getattr(self, k) for k in ("warm", "subnet", "frames", "warm_steps", "switched", "cut", "reason",
                                             "budget_ms", "cpu_share", "within_budget", "feasible", "budget")},
            "label": None if self.prediction is None else self.prediction.label,
            "stride_ms": rounded(self.stride_ms), "latency_ms": rounded(self.latency_ms),
            "cpu_ms": rounded(self.cpu_ms),
            "stamp": round(self.stamp, 4), "capture_to_label_ms": rounded(self.capture_to_label_ms),
            "reasons": list(self.reasons), "predicted_ms": rounded(self.predicted_ms), "events": list(self.events),
        }


@dataclasses.dataclass(frozen=True)
class MultiResult:
    """One stream's share of a multi-stream round: its result, tagged with its source and the round.

    ``result`` is None when the stream had no frames this round (a lost camera, one not started yet,
    or a file that ended: ``events`` says which). The budget limits the round's latency, the sum of
    its runs (``round_latency_ms``), not each stream's.
    """

    source: str  # the stream's source (its name: also the key for set_weight / remove)
    round: int  # 0, 1, 2, ... (one decision round per stride for every stream)
    result: StreamResult | None
    events: tuple[str, ...]  # source events since the stream's previous result
    batch: int  # streams in the run that served this one (1 without batching)
    weight: float
    round_latency_ms: float  # the round's runs, all streams together
    round_predicted_ms: float | None  # the allocator's prediction for the round (None: warm-up, fixed, max)
    round_within_budget: bool | None  # round_latency_ms <= budget (None without a budget)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source, "round": self.round, "batch": self.batch, "weight": self.weight,
            "round_latency_ms": round(self.round_latency_ms, 3),
            "round_predicted_ms": rounded(self.round_predicted_ms),
            "round_within_budget": self.round_within_budget, "events": list(self.events),
            "result": None if self.result is None else self.result.to_json(),
        }
