"""Output schema v1: the one record ``ffn-run`` writes per result, the same in window and online mode.

Every record has the ``COMMON`` fields, in the same names and types in both modes (a window stream's
decision, an online stream's step, one camera's share of a multi-stream round), plus the extras of
its mode, named by their prefix: ``window_*`` (window mode), ``online_*`` (online mode) and
``multi_*`` (several ``--video``). ``--json`` writes records as JSON lines, ``--csv`` as rows of
``CSV_COLUMNS`` (``csv_row``), ``--metrics-port`` counts them. docs/output-schema.md describes each
field; the tables here are what the tests hold both modes to.

The API's result objects (``StreamResult``, ``OnlineResult``, ``MultiResult``) keep their richer
``to_json``; a record is what a deployment reads, stable across versions of ffn-edge within one
``schema`` number.
"""

from __future__ import annotations

import datetime
import json
import re
from typing import Any

from ..results import MultiResult, OnlineResult, Prediction, StreamResult, rounded

SCHEMA_VERSION = 1
MODES = ("window", "online")
NONE = type(None)

# name -> the JSON types its value may have (int means a JSON integer, never a boolean)
COMMON: dict[str, tuple[type, ...]] = {
    "schema": (int,),  # SCHEMA_VERSION
    "mode": (str,),  # "window" | "online"
    "source": (str,),  # the --video as given (a URL's password masked)
    "time": (str,),  # wall clock when the result was made, ISO 8601 with UTC offset
    "t": (float,),  # seconds into the source of the frame the result was decided on
    "seq": (int,),  # window: decision number; online: step number (from 0)
    "label": (str, NONE),  # the label in force (online: None until the first warm label)
    "class_index": (int, NONE),
    "score": (float, NONE),  # softmax probability of label
    "topk": (list,),  # [[label, probability], ...] best first ([] without a label)
    "frames": (int,),  # frames the network used: window n, online the running sub-network's n
    "subnet": (int,),  # sub-network index that ran
    "latency_ms": (float,),  # window: the clip run; online: this step's run
    "cpu_ms": (float, NONE),  # CPU time of that run
    "budget_ms": (float, NONE),  # window: latency per decision; online: step compute per window
    "within_budget": (bool, NONE),
    "predicted_ms": (float, NONE),  # the scheduler's prediction for the chosen n (None in warm-up, fixed, max)
    "feasible": (bool, NONE),
    "reason": (str,),  # the reasons joined by ","
    "reasons": (list,),
    "budget": (dict,),  # budgets in force and sensor readings
    "events": (list,),  # source events since the previous record ("kind: message")
}
WINDOW: dict[str, tuple[type, ...]] = {
    "window_start": (float,),  # seconds into the source
    "window_end": (float,),
    "window_frames": (int,),  # frames in the window (``frames`` of them were sampled)
    "window_requested_frames": (int,),  # n the policy asked for (served by the nearest sub-network)
    "window_sampled_t": (list,),  # seconds into the source of the sampled frames
}
ONLINE: dict[str, tuple[type, ...]] = {
    "online_warm": (bool,),  # the label is fresh: the mean of the running sub-network's last n logits
    "online_warm_steps": (int,),  # frames of that sub-network in its logit ring (n once warm)
    "online_switched": (bool,),  # this step started a new sub-network (buffers from zeros)
    "online_cut": (bool,),  # this step's frame started a new scene (--reset-on-cut): buffers and ring restarted
    "online_stride_ms": (float,),  # source time between two steps (window / n)
    "online_cpu_share": (float, NONE),  # the compute share in force
    "online_capture_to_label_ms": (float, NONE),  # frame captured -> this result (None: a file read offline)
    "online_label_start": (float, NONE),  # seconds into the source of the frames behind the label
    "online_label_end": (float, NONE),
}
MULTI: dict[str, tuple[type, ...]] = {
    "multi_round": (int,),  # the decision round (== seq)
    "multi_batch": (int,),  # streams in the run that served this one
    "multi_weight": (float,),
    "multi_round_latency_ms": (float,),  # the round's runs, all streams together (what its budget limits)
    "multi_round_predicted_ms": (float, NONE),
    "multi_round_within_budget": (bool, NONE),
}
EXTRAS = {"window": WINDOW, "online": ONLINE}
CSV_COLUMNS = (*COMMON, *WINDOW, *ONLINE, *MULTI)  # fixed: a cell of another mode's field is empty


def iso_time(wall: float) -> str:
    """``time.time()`` as ISO 8601 with the UTC offset, to the millisecond (datetime.fromisoformat reads it)."""
    return datetime.datetime.fromtimestamp(wall, datetime.timezone.utc).isoformat(timespec="milliseconds")


def public_source(source: str) -> str:
    """The source as given, with a URL's password masked (records and metrics labels travel further)."""
    return re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://[^/@:]*):[^/@]*@", r"\1:***@", source)


def _label(p: Prediction | None) -> dict[str, Any]:
    if p is None:
        return {"label": None, "class_index": None, "score": None, "topk": []}
    return {"label": p.label, "class_index": p.index, "score": round(p.score, 6),
            "topk": [[lbl, round(s, 6)] for lbl, s in p.topk]}


def _common(mode: str, source: str, r: StreamResult | OnlineResult, seq: int, p: Prediction | None,
            subnet: int, cpu_ms: float | None) -> dict[str, Any]:
    return {"schema": SCHEMA_VERSION, "mode": mode, "source": public_source(source), "time": iso_time(r.wall_time),
            "t": round(float(r.t), 4), "seq": seq, **_label(p), "frames": r.frames, "subnet": subnet,
            "latency_ms": round(float(r.latency_ms), 3), "cpu_ms": rounded(cpu_ms), "budget_ms": rounded(r.budget_ms),
            "within_budget": r.within_budget, "predicted_ms": rounded(r.predicted_ms), "feasible": r.feasible,
            "reason": r.reason, "reasons": list(r.reasons), "budget": r.budget, "events": list(r.events)}


def window_record(r: StreamResult, source: str) -> dict[str, Any]:
    """A window-mode decision as a schema v1 record."""
    p, o = r.prediction, r.origin
    return {**_common("window", source, r, r.decision, p, p.subnet, p.cpu_ms),
            "window_start": round(r.window[0] - o, 4), "window_end": round(r.window[1] - o, 4),
            "window_frames": r.frames_available, "window_requested_frames": r.requested_frames,
            "window_sampled_t": [round(s - o, 4) for s in p.timestamps]}


def online_record(r: OnlineResult, source: str) -> dict[str, Any]:
    """An online-mode step as a schema v1 record: the label in force, the step that ran."""
    p, o = r.prediction, r.origin
    return {**_common("online", source, r, r.step, p, r.subnet, r.cpu_ms),
            "online_warm": r.warm, "online_warm_steps": r.warm_steps, "online_switched": r.switched,
            "online_cut": r.cut,
            "online_stride_ms": round(r.stride_ms, 3), "online_cpu_share": rounded(r.cpu_share, 6),
            "online_capture_to_label_ms": rounded(r.capture_to_label_ms),
            "online_label_start": None if p is None else round(p.timestamps[0] - o, 4),
            "online_label_end": None if p is None else round(p.timestamps[-1] - o, 4)}


def multi_record(m: MultiResult) -> dict[str, Any] | None:
    """One camera's decision of a multi-stream round (window mode) as a record; None when it had no frames."""
    if m.result is None:
        return None
    return {**window_record(m.result, m.source), "events": list(m.events), "multi_round": m.round,
            "multi_batch": m.batch, "multi_weight": float(m.weight),
            "multi_round_latency_ms": round(m.round_latency_ms, 3),
            "multi_round_predicted_ms": rounded(m.round_predicted_ms),
            "multi_round_within_budget": m.round_within_budget}


def record(result: StreamResult | OnlineResult, source: str) -> dict[str, Any]:
    """The record of a single stream's result, either mode."""
    return online_record(result, source) if isinstance(result, OnlineResult) else window_record(result, source)


def event_kinds(events: list[str] | tuple[str, ...]) -> list[str]:
    """The kinds of source events ("reopened: cam0: ..." -> "reopened")."""
    return [e.split(":", 1)[0] for e in events]


def csv_cell(name: str, value: Any) -> str:
    """A record's value in one CSV cell: topk as ``label:p;label:p``, other lists ``;``-joined (events as a
    JSON array: their messages may hold any character), objects as JSON, None empty, booleans true/false."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if name == "topk":
        return ";".join(f"{label}:{p}" for label, p in value)
    if name == "events" or isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    return str(value)


def csv_row(rec: dict[str, Any]) -> list[str]:
    """A record as a row of CSV_COLUMNS."""
    return [csv_cell(name, rec.get(name)) for name in CSV_COLUMNS]
