"""``ffn-run``: classify a camera, file or stream with a bundle, under a latency budget (no torch).

Human-readable lines go to stderr; with ``--json`` stdout carries exactly one JSON object per
decision (and nothing else), so an app can read it line by line.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from typing import Any

import numpy as np

from ...core.argparsing import Parser
from ...core.defaults import DEFAULT_CUT_THRESHOLD
from ...core.errors import ConfigError, run_cli
from ..media.images import IMAGES_FPS
from ..media.inputs import (
    check_output_file,
    check_stream_options,
    check_video_file,
    check_video_writer,
    require_decisions,
)
from ..results import OnlineResult, StreamResult
from ..session import FFNRuntime
from ..streaming.online_stream import OnlineStream
from ..streaming.options import OnlineOptions, StreamOptions
from ..streaming.stream import Stream
from .multi import add_multi_arguments, check_multi_args, run_multi
from .outputs import add_output_arguments, check_output_args, open_outputs
from .overlay import Window, draw_overlay, gui_missing
from .quiet import quiet_third_party_logs
from .records import record
from .stop import sigterm_as_interrupt
from .summary import RunningSummary

EXAMPLES = """\
examples:
  ffn-run --bundle model.ffn --video cam0 --budget-ms 30
      webcam 0, the frame count chosen to fit 30 ms per decision
  ffn-run --bundle model.ffn --video clip.mp4 --frames 8 --json > decisions.jsonl
      a file, always 8 frames, one JSON object per decision on stdout
  ffn-run --bundle model.ffn --video rtsp://10.0.0.5/stream --window-s 2 --stride-ms 250 --duration 60
      an RTSP camera, 2 s windows, a decision every 250 ms, stop after 60 s
  ffn-run --bundle model.ffn --video "nvarguscamerasrc ! video/x-raw(memory:NVMM) ! nvvidconv ! \\
      video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! appsink" --backend tensorrt
      a Jetson CSI camera (needs an OpenCV built with GStreamer) on the bundle's TensorRT engines
  ffn-run --bundle model.ffn --video cam0 --online --cpu-share 0.25
      online mode (a bundle exported from a causal checkpoint): one frame per step through a step
      graph, a label per step (the mean of the last n frames' logits), n chosen so that the steps
      use at most 25 % of the wall time; the stride is --window-s / n
  ffn-run --bundle model.ffn --video rtsp://10.0.0.5/stream --online --reset-on-cut
      online mode that restarts the shift buffers and the label at a scene cut (a frame whose colour
      histogram jumps from the previous step's; --reset-on-cut 0.5 sets the threshold), so a camera
      switch or an edited video does not carry the previous scene into the next labels
  ffn-run --bundle model.ffn --video clip.mp4 --budget-ms 20 --output annotated.mp4
      write the video with label, score, frames and latency drawn on it
  ffn-run --bundle model.ffn --video cam0 --budget-ms 30 --csv decisions.csv --metrics-port 9464
      each decision as a CSV row (the --json fields), and Prometheus metrics at :9464/metrics
  ffn-run --bundle model.ffn --video cam0 --budget-ms 40 --battery-policy 20:4 --power-w 5 --thermal-c 80:8 --json
      fit 40 ms; at most 4 frames below 20 % battery (unplugged), frames cut while the board draws
      over 5 W, at most 8 frames while a thermal zone is at 80 C or more; each JSON object lists the
      decision's "reasons" (warmup, budget, budget_infeasible, battery, power, thermal, max,
      hysteresis, probe), "predicted_ms", "feasible" and "budget" (budgets in force and sensor readings)

Decisions go to stdout (one line each, or one JSON object each with --json); the summary (decisions,
share within budget, frame-count histogram, latency; constant memory however long it runs) and
source events go to stderr. Latency is the inference run of the n sampled frames (capture and
preprocessing are not in it), the same quantity the budget applies to.
"""




def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="ffn-run",
        description="Run a Frame Flexible Network bundle on live or recorded video; the number of frames "
        "per decision is fixed (--frames) or chosen to fit a latency budget (--budget-ms).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--bundle", required=True, help="bundle directory written by ffn-export")
    p.add_argument("--video", required=True, action="append",
                   help="camN, N or /dev/videoN (a camera), a video file, a folder or glob of images (read in name "
                   f"order at {IMAGES_FPS:g} fps), an rtsp:// or http(s):// URL, or a GStreamer pipeline ending in "
                   "appsink; repeat it for several cameras on one session (README: Several cameras)")
    p.add_argument("--budget-ms", type=float, default=None, help="latency budget per decision (ms)")
    p.add_argument("--battery-policy", default=None, metavar="PERCENT:FRAMES",
                   help="on battery below PERCENT %%, use at most FRAMES frames (e.g. 20:4; no battery: no cap)")
    p.add_argument("--power-w", type=float, default=None, metavar="WATTS",
                   help="board power budget from the Jetson INA3221 rails (e.g. 5; no rails: no cap)")
    p.add_argument("--thermal-c", default=None, metavar="CELSIUS:FRAMES",
                   help="while the hottest thermal zone is at CELSIUS or more, use at most FRAMES frames "
                   "(e.g. 80:8; released 5 C below)")
    p.add_argument("--frames", type=int, default=None, help="fix the frame count (overrides --budget-ms)")
    p.add_argument("--online", action="store_true", help="online mode (causal bundles): one step graph run per "
                   "sampled frame, a label every step from the last n frames, stride --window-s / n")
    p.add_argument("--cpu-share", type=float, default=None, metavar="SHARE",
                   help="--online budget: share of wall time the steps may compute, in (0, 1] (e.g. 0.25)")
    p.add_argument("--reset-on-cut", type=float, nargs="?", const=DEFAULT_CUT_THRESHOLD, default=None,
                   metavar="THRESHOLD", help="--online: at a scene cut restart the shift buffers and the logit ring, "
                   "as a new stream would; a cut is a frame whose colour histogram differs from the previous step's by "
                   "at least THRESHOLD (total variation: the share of pixels that changed colour, in (0, 1]; "
                   "default %(const)g)")
    p.add_argument("--window-s", type=float, default=StreamOptions.window_s, help="seconds of past video each "
                   "decision looks at (--online: the video n frames are spread over; default %(default)g)")
    p.add_argument("--stride-ms", type=float, default=None, help=f"time between decisions (ms; default "
                   f"{StreamOptions.stride_ms:g}; not with --online, whose stride is --window-s / n)")
    p.add_argument("--backend", default="auto", help="auto | onnxruntime | ort-cpu | ort-cuda | ort-tensorrt | "
                   "ort-tensorrt-fp16 | tensorrt (default auto: the best available, reported on stderr)")
    p.add_argument("--device", type=int, default=0, help="GPU index for GPU backends")
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads (default: the CPUs "
                   "this process may use, so taskset is honoured)")
    p.add_argument("--private-weights", action="store_true", help="CPU: give each sub-network session its own "
                   "fused weights (about 10 %% faster, about N times the memory; default: one shared copy)")
    p.add_argument("--topk", type=int, default=StreamOptions.topk, help="classes listed per decision "
                   "(default %(default)d)")
    p.add_argument("--realtime", action="store_true", help="play a file at its frame rate, like a camera")
    p.add_argument("--json", action="store_true", help="one JSON object per decision on stdout, nothing else "
                   "(schema v1, the same in both modes: docs/output-schema.md)")
    add_output_arguments(p)
    p.add_argument("--show", action="store_true", help="show the video with the overlay (q or Esc closes it)")
    p.add_argument("--output", default=None, help="write the annotated video here (e.g. annotated.mp4)")
    p.add_argument("--max-decisions", type=int, default=None, help="stop after this many decisions")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds (wall clock)")
    p.add_argument("-v", "--verbose", action="store_true", help="log backend and source details")
    add_multi_arguments(p)
    return p


MIN_OVERLAY_HEIGHT = 360  # --show / --output frames smaller than this are scaled up for the overlay


class Annotator:
    """Draws each decision (label, score, frames, latency) on the video for --show / --output.

    A file is read a second time, in step with the decisions: the frames up to a decision's window
    end are drawn with the previous decision, so the overlay never shows a result before the video
    it came from. A live source cannot be read twice: its frames are tapped as they are captured
    and drawn with the latest decision.
    """

    def __init__(self, video: str, output: str | None, show: bool, live: bool) -> None:
        import cv2

        self.cv2 = cv2
        if show and sys.platform.startswith("linux") and not (os.environ.get("DISPLAY")
                                                              or os.environ.get("WAYLAND_DISPLAY")):
            raise ConfigError("--show needs a display (DISPLAY / WAYLAND_DISPLAY is not set); use --output instead")
        if show and gui_missing(cv2):
            raise ConfigError(f"--show: {gui_missing(cv2)}")
        self.show, self.output, self.live = show, output, live
        self.window, self.closed = Window(cv2), False  # closed: the user pressed q / Esc in the --show window
        self.writer: Any = None
        self.text: list[str] = []
        self._lock = threading.Lock()  # live: the capture thread draws while the main thread updates
        self.reader: Any = None
        self.index = 0
        self.fps = 30.0
        if not live:
            from ..media.sources import open_capture, parse_source

            self.reader = open_capture(parse_source(video))  # a file or an image sequence, read a second time
            self.fps = capture_fps(self.reader, cv2)

    def update(self, r: StreamResult) -> None:
        """A new decision: (file) draw the frames it covered with the previous one, then switch."""
        if self.reader is not None:
            self._copy_file_frames(until_s=r.window[1])
        p = r.prediction
        with self._lock:
            self.text = [f"{p.label} {p.score:.2f}", f"{p.frames} frames  {p.latency_ms:.1f} ms  {r.reason}"]

    def _copy_file_frames(self, until_s: float) -> None:
        while self.index / self.fps <= until_s + 1e-6:
            ok, image = self.reader.read()
            if not ok:
                return
            self.index += 1
            self.draw(image, self.fps)

    def draw(self, image: np.ndarray, fps: float) -> None:
        """Overlay the current text on ``image``, then write and/or show it."""
        cv2 = self.cv2
        with self._lock:
            text = list(self.text)
        if image.shape[0] < MIN_OVERLAY_HEIGHT:  # too small for readable text: scale up (nearest, exact pixels)
            f = -(-MIN_OVERLAY_HEIGHT // image.shape[0])
            image = cv2.resize(image, None, fx=f, fy=f, interpolation=cv2.INTER_NEAREST)
        draw_overlay(cv2, image, text)
        if self.output:
            if self.writer is None:
                h, w = image.shape[:2]
                self.writer = cv2.VideoWriter(self.output, cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
                if not self.writer.isOpened():
                    raise ConfigError(f"--output {self.output}: OpenCV cannot write this file (try a .mp4 path)")
            self.writer.write(image)
        if self.show and not self.closed:
            try:
                self.closed = not self.window.show(image)
            except cv2.error as e:
                raise ConfigError(f"--show: cannot open a window ({str(e).strip().splitlines()[-1]})") from None

    def opener(self, spec: Any) -> Any:
        """A source opener (live sources) whose captures hand every raw frame to ``draw``."""
        from ..media.sources import open_capture

        return _TappedCapture(open_capture(spec), self)

    def close(self, finished: bool) -> None:
        """Flush the rest of a file that was read to its end, then release everything."""
        if self.reader is not None:
            if finished:
                self._copy_file_frames(until_s=float("inf"))
            self.reader.release()
        if self.writer is not None:
            self.writer.release()
        if self.show:
            self.cv2.destroyAllWindows()


def capture_fps(capture: Any, cv2: Any) -> float:
    """The capture's frame rate for the written video (30 when it reports none or nonsense)."""
    fps = capture.get(cv2.CAP_PROP_FPS)
    return fps if 0 < fps < 1000 else 30.0


class _TappedCapture:
    """A cv2.VideoCapture that also passes each frame it reads to an Annotator."""

    def __init__(self, capture: Any, annotator: Annotator) -> None:
        self.capture, self.annotator = capture, annotator
        self.fps: float | None = None  # asked once, at the first frame (a reopened source is a new capture)

    def isOpened(self) -> bool:  # noqa: N802 - cv2.VideoCapture's name
        return self.capture.isOpened()

    def read(self) -> tuple[bool, Any]:
        ok, frame = self.capture.read()
        if ok and isinstance(frame, np.ndarray) and frame.ndim == 3:
            if self.fps is None:
                self.fps = capture_fps(self.capture, self.annotator.cv2)
            self.annotator.draw(frame.copy(), self.fps)
        return ok, frame

    def get(self, prop_id: int) -> float:
        return self.capture.get(prop_id)

    def release(self) -> None:
        self.capture.release()


# ffn-run flag (its argparse dest) -> the option it sets. A flag left at None (or a switch left off)
# leaves the option at its default: StreamOptions / OnlineOptions hold every default, once.
OPTION_FLAGS = {"window_s": "window_s", "stride_ms": "stride_ms", "frames": "frames", "topk": "topk",
                "budget_ms": "budget_ms", "cpu_share": "cpu_share", "power_w": "power_w",
                "battery_policy": "battery_policy", "thermal_c": "thermal_policy",
                "max_decisions": "max_decisions", "duration": "duration_s", "realtime": "realtime",
                "reset_on_cut": "reset_on_cut"}
API_ONLY_OPTIONS = {"capacity", "wait_timeout_s", "backoff_s", "keep_frame"}  # no flag: library callers' tuning


def stream_options(args: argparse.Namespace) -> StreamOptions | OnlineOptions:
    """The stream's options from the flags; a bad value is a one-line ConfigError naming its flag."""
    _check_mode(args)
    cls = OnlineOptions if args.online else StreamOptions
    values = {}
    for dest, name in OPTION_FLAGS.items():
        value = getattr(args, dest)
        if value is None or value is False:
            continue
        try:
            cls.build(**{name: value})
        except ConfigError as e:
            raise ConfigError(f"--{dest.replace('_', '-')}: {e}") from None
        values[name] = value
    return cls.build(**values)


def _check_mode(args: argparse.Namespace) -> None:
    """Options that belong to one mode only: one line naming the flag."""
    if args.online:
        if args.budget_ms is not None:
            raise ConfigError("--budget-ms is the window mode's latency per decision; --online is budgeted "
                              "with --cpu-share (the share of wall time its steps may compute)")
        if args.stride_ms is not None:
            raise ConfigError("--stride-ms does not apply to --online: its stride is --window-s / n")
    elif args.cpu_share is not None:
        raise ConfigError("--cpu-share budgets --online streams; a window stream takes --budget-ms")
    elif args.reset_on_cut is not None:
        raise ConfigError("--reset-on-cut resets the shift buffers of --online streams; a window stream carries "
                          "no state between decisions")


def online_line(r: OnlineResult) -> str:
    """One online step as a line: what ran, and the label in force (fresh, stale or none yet)."""
    p = r.prediction
    state = "warm " if r.warm else f"stale {r.warm_steps}/{r.frames}" if p else f"none {r.warm_steps}/{r.frames}"
    top = ", ".join(f"{lbl} {s:.2f}" for lbl, s in p.topk) if p else "-"
    return (f"[{r.step:5d}] t={r.t:7.2f}s  sub-network {r.subnet} n={r.frames:<2d} stride {r.stride_ms:6.1f} ms  "
            f"step {r.latency_ms:6.2f} ms  {state:<10s} {r.reason:<10s} {'CUT ' if r.cut else ''}{top}")


def window_line(r: StreamResult) -> str:
    """One window-mode decision as a line."""
    p = r.prediction
    top = ", ".join(f"{lbl} {s:.2f}" for lbl, s in p.topk)
    return (f"[{r.decision:4d}] t={r.t:7.2f}s  {p.frames:2d} frames  {p.latency_ms:7.2f} ms  "
            f"{r.reason:<10s} {top}")


def run(argv: list[str] | None = None) -> int:
    """Parse, open the bundle, stream, print; FFNErrors propagate to run_cli as one line."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="ffn-run: %(message)s")
    quiet_third_party_logs(args.verbose)  # FFmpeg / OpenCV / ORT lines drown our one-line errors
    # Every option, the output path and the source are checked before the (slower) bundle load.
    check_stream_options(threads=args.threads)
    check_multi_args(args)
    check_output_args(args)
    options = stream_options(args)
    if len(args.video) > 1:
        assert isinstance(options, StreamOptions)
        return run_multi(args, options)
    args.video = args.video[0]
    if args.output:
        check_output_file(args.output)
        check_video_writer(args.output)
    from ..media.sources import parse_source

    spec = parse_source(args.video)
    if spec.kind == "file":
        check_video_file(spec.target)
    annotator = Annotator(args.video, args.output, args.show, spec.live) if (args.output or args.show) else None
    summary = RunningSummary()
    with FFNRuntime.open(args.bundle, backend=args.backend, device=args.device, threads=args.threads,
                         share_weights=not args.private_weights) as rt, open_outputs(args) as outputs:
        opener = annotator.opener if annotator and spec.live else None
        if isinstance(options, OnlineOptions):
            stream: Stream | OnlineStream = rt.online_stream(args.video, options, opener=opener)
        else:
            stream = rt.stream(args.video, options, opener=opener)
        finished = False
        try:
            for r in stream:
                if not summary.decisions:  # said once the source works, so a bad source stays a one-line error
                    mode = f"online: step graphs on {rt.step_graphs().name}" if args.online \
                        else f"graphs {list(rt.frame_counts)}"
                    print(f"ffn-run: backend {rt.backend_name}; sub-networks {list(rt.manifest.subnet_frame_counts)}; "
                          f"{mode}", file=sys.stderr)
                summary.add(r)
                if annotator and r.prediction is not None:
                    annotator.update(r)
                if annotator and annotator.closed:  # q / Esc in the --show window: stop, summary as usual
                    break
                outputs.write(record(r, args.video), online_line(r) if isinstance(r, OnlineResult) else window_line(r))
                for e in r.events:
                    print(f"ffn-run: source {e}", file=sys.stderr)
            rest = stream.drain_events()  # after the last decision (e.g. the end of a file)
            outputs.events(args.video, rest)
            for e in rest:
                print(f"ffn-run: source {e}", file=sys.stderr)
            finished = True
            require_decisions(summary.decisions, args.video)  # a source that gave nothing is not a success
        finally:
            stream.close()
            if annotator:
                annotator.close(finished and args.max_decisions is None and args.duration is None)
            if finished or summary.decisions:  # an error before any decision is reported alone, in one line
                online = f"cpu share {args.cpu_share:g}" if args.online and args.cpu_share else None
                print(summary.report(args.cpu_share if args.online else args.budget_ms,
                                     f"step graphs ({rt.step_graphs().name})" if args.online else rt.backend_name,
                                     online),
                      file=sys.stderr)
    return 0


def main() -> None:
    """Console entry point (``ffn-run``): SIGTERM stops it like Ctrl-C (exit 143 / 130, summary printed)."""
    with sigterm_as_interrupt():
        run_cli("ffn-run", run)


if __name__ == "__main__":
    main()
