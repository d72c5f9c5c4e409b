"""Silence the libraries' own stderr lines (FFmpeg via OpenCV, OpenCV, ONNX Runtime) unless verbose.

A corrupt video makes FFmpeg print one line per damaged macroblock (104 on one corrupt test
file), drowning the one-line error the CLI promises. FFmpeg's level is read once, when OpenCV first
opens an FFmpeg capture (``OPENCV_FFMPEG_LOGLEVEL``; -8 is AV_LOG_QUIET), so call this at CLI start,
before any source opens. Our own warnings (logging "ffn_edge.*") are not affected.
"""

from __future__ import annotations

import os

AV_LOG_QUIET = -8
ORT_ERROR = 3  # onnxruntime severities: 0 verbose, 1 info, 2 warning, 3 error, 4 fatal


def quiet_third_party_logs(verbose: bool = False) -> None:
    """Unless ``verbose``: FFmpeg and OpenCV silent, ONNX Runtime errors only (process-wide).

    OpenCV is silenced, not just kept to errors: its "errors" (e.g. a camera index out of range) are
    what our own one-line SourceError already says.
    """
    if verbose:
        return
    os.environ["OPENCV_FFMPEG_LOGLEVEL"] = str(AV_LOG_QUIET)
    os.environ["OPENCV_LOG_LEVEL"] = "SILENT"
    import cv2

    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    import onnxruntime

    onnxruntime.set_default_logger_severity(ORT_ERROR)
