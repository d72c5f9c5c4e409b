"""The last ways out that were not one line: a FIFO or corrupt benchmark cache, ``set_budget(budget_ms=)``
on an online stream, an --output OpenCV cannot write, a y4m file with a printable header, an output
location the user may not write, a huge camera index, an integer option's error echoing its value."""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path

import pytest
import torch
from ffn_edge.runtime.app import cli as run_cli_mod
from ffn_edge.runtime.control.budgets import KEEP
from ffn_edge.runtime.media.inputs import check_video_file, check_video_writer
from ffn_edge.runtime.media.sources import parse_source
from ffn_edge.runtime.streaming.online_stream import OnlineStream

from ffn_edge.checkpoint import CheckpointMeta, save_checkpoint
from ffn_edge.core.errors import ConfigError, SourceError
from ffn_edge.models import ModelConfig, create_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def in_thread(fn, timeout=20):
    """fn() in a thread: its result or exception; fails the test if it hangs."""
    box: list = []

    def go():
        try:
            box.append(("ok", fn()))
        except BaseException as e:  # noqa: BLE001 - inspected by the caller
            box.append(("raised", e))

    t = threading.Thread(target=go, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), "hung"
    return box[0]


def test_a_fifo_where_a_benchmark_cache_goes_is_one_line_not_a_hang(tmp_path):
    import reproduce

    os.mkfifo(tmp_path / "eval.json")
    kind, value = in_thread(lambda: reproduce.cached_eval(tmp_path / "eval.json", [4], lambda: {"frames": [4]}))
    assert kind == "raised" and isinstance(value, ConfigError) and "\n" not in str(value), value
    kind, value = in_thread(lambda: reproduce.write_cache(tmp_path / "eval.json", {}))
    assert kind == "raised" and isinstance(value, ConfigError), value


@pytest.mark.parametrize("text", ["{nope", "[]", '{"frames": 4}', "1" * 100_000, ""])
def test_a_corrupt_benchmark_cache_is_recomputed(tmp_path, text, capsys):
    import reproduce

    (tmp_path / "eval.json").write_text(text)
    got = reproduce.cached_eval(tmp_path / "eval.json", [4], lambda: {"frames": [4], "top1": [1.0]})
    assert got["top1"] == [1.0]
    assert json.loads((tmp_path / "eval.json").read_text())["frames"] == [4]


class _Policy:
    def __init__(self):
        self.calls = []

    def set_budget(self, budget_ms=KEEP, **kw):
        self.calls.append((budget_ms, kw))


class _Online:
    window_ms = 1000.0

    def __init__(self):
        self.policy = _Policy()


def test_online_stream_set_budget_with_budget_ms_is_one_line_naming_cpu_share():
    """An online stream is budgeted in compute: budget_ms= (the window mode's keyword) is refused in one line
    that names the keyword to use, never a TypeError; cpu_share= sets the step compute per window."""
    s = _Online()
    with pytest.raises(ConfigError, match=r"set_budget\(cpu_share=\.\.\.\)") as e:
        OnlineStream.set_budget(s, budget_ms=20)
    assert "\n" not in str(e.value)
    OnlineStream.set_budget(s, cpu_share=0.1)
    assert [c[0] for c in s.policy.calls] == [pytest.approx(100.0)]


@pytest.mark.parametrize("name", ["out.txt", "out", "out.json"])
def test_an_output_opencv_cannot_write_is_refused_before_any_inference(tmp_path, name, monkeypatch, capsys):
    with pytest.raises(ConfigError, match="OpenCV cannot write"):
        check_video_writer(tmp_path / name)
    opened = []
    monkeypatch.setattr(run_cli_mod.FFNRuntime, "open", lambda *a, **k: opened.append(1))
    video = tmp_path / "v.mp4"
    video.write_bytes(b"\0\0\0\x18ftypmp42" + bytes(range(256)) * 4)
    with pytest.raises(SystemExit) as e:
        sys.argv = ["ffn-run", "--bundle", str(tmp_path), "--video", str(video), "--output", str(tmp_path / name)]
        run_cli_mod.main()
    assert e.value.code == 2 and not opened
    assert "OpenCV cannot write" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mp4"]  # nothing written beside it


def test_a_y4m_file_with_a_printable_header_is_not_refused_as_text(tmp_path):
    import cv2

    w, h = 16, 16
    frame = b"FRAME\n" + b"A" * (w * h * 3 // 2)  # printable luma and chroma bytes
    path = tmp_path / "v.y4m"
    path.write_bytes(f"YUV4MPEG2 W{w} H{h} F25:1 Ip A1:1 C420jpeg\n".encode() + frame * 3)
    check_video_file(path)
    cap = cv2.VideoCapture(str(path))
    assert cap.read()[0]  # OpenCV decodes it
    cap.release()
    plain = tmp_path / "notes.txt"
    plain.write_text("hello\n" * 10)
    with pytest.raises(SourceError, match="text file"):
        check_video_file(plain)


def test_an_output_location_that_refuses_writing_is_one_line(tmp_path, monkeypatch, capsys):
    """As root every folder is writable, so the write itself is made to fail at its real seam."""
    from ffn_edge.export import bundle as bundle_mod
    from ffn_edge.export import cli as export_cli

    cfg = ModelConfig("tsm_resnet18", 3, frame_counts=(2,), width_mult=0.0625)
    save_checkpoint(tmp_path / "m.safetensors", create_model(cfg).eval(),
                    CheckpointMeta(cfg, ["a", "b", "c"], input_size=32, resize_shorter=36))

    def denied(out):
        raise PermissionError(13, "Permission denied", str(out.parent))

    monkeypatch.setattr(bundle_mod, "staging_dir", denied)
    monkeypatch.setattr(sys, "argv", ["ffn-export", "--ckpt", str(tmp_path / "m.safetensors"), "--frames", "2",
                                      "--out", str(tmp_path / "ro" / "b.ffn"), "--no-verify"])
    with torch.no_grad(), pytest.raises(SystemExit) as e:
        export_cli.main()
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and "Permission denied" in err, err


@pytest.mark.parametrize("text", ["cam" + "9" * 100_000, "cam99999999999999999999", "cam1024"])
def test_a_huge_camera_index_is_one_short_line(text):
    with pytest.raises(SourceError, match=r"camera index must be in \[0, 1023\]") as e:
        parse_source(text)
    assert len(str(e.value)) < 200


def test_a_long_missing_source_is_not_echoed_whole():
    with pytest.raises(SourceError) as e:
        parse_source("x" * 100_000)
    assert len(str(e.value)) < 300


def test_an_integer_option_error_does_not_echo_the_whole_value(tmp_path, capsys):
    with pytest.raises(SystemExit):
        sys.argv = ["ffn-run", "--bundle", str(tmp_path), "--video", "cam0", "--topk", "7" * 100_000]
        run_cli_mod.main()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and len(err) < 300, err[:400]


@pytest.mark.parametrize("argv", [["--frames", "9" * 100_000], ["--out", "/tmp/" + "x" * 300 + "/b.ffn"],
                                  ["--opset", "7" * 5000]])
def test_export_errors_stay_short_whatever_the_value(tmp_path, argv, monkeypatch, capsys):
    from ffn_edge.export import cli as export_cli

    base = {"--ckpt": str(tmp_path / "missing.safetensors"), "--frames": "2", "--out": str(tmp_path / "b.ffn")}
    base.update(dict(zip(argv[::2], argv[1::2], strict=True)))
    monkeypatch.setattr(sys, "argv", ["ffn-export", *[x for kv in base.items() for x in kv]])
    with pytest.raises(SystemExit) as e:
        export_cli.main()
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and len(err) < 600, err[:700]
