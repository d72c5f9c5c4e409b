"""Output schema v1 (``app/records.py``): ffn-run's JSON lines, CSV rows and Prometheus metrics.

Window and online mode, and several cameras, write records with the same required fields in the same
types; ``time`` is ISO 8601 with an offset, ``t`` seconds into the source; ``--csv`` holds the same
records; ``--metrics-port`` serves counts that equal what the JSON lines said.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from ffn_edge.runtime.app import cli
from ffn_edge.runtime.app import metrics as metrics_mod
from ffn_edge.runtime.app.records import COMMON, CSV_COLUMNS, EXTRAS, MULTI, NONE, ONLINE, WINDOW, public_source

from ffn_edge.core.errors import ConfigError, run_cli

WINDOW_ARGS = ["--frames", "4", "--stride-ms", "250", "--window-s", "0.5", "--max-decisions", "5", "--threads", "1"]
ONLINE_ARGS = ["--online", "--frames", "4", "--window-s", "0.5", "--max-decisions", "8", "--threads", "1"]


def _run(capsys, bundle: Path, video: Path, *flags: str) -> tuple[list[str], str]:
    assert cli.run(["--bundle", str(bundle), "--video", str(video), *flags]) == 0
    out, err = capsys.readouterr()
    return out.splitlines(), err


def _json(capsys, bundle, video, *flags) -> list[dict]:
    return [json.loads(line) for line in _run(capsys, bundle, video, "--json", *flags)[0]]


def _check_types(rec: dict, table: dict) -> None:
    for key, types in table.items():
        value = rec[key]
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        assert ok, f"{key}={value!r} is not {types}"


@pytest.fixture(scope="module")
def both_modes(causal_bundle, video) -> dict[str, list[dict]]:
    """Each mode's JSON lines, from ffn-run as a user runs it (a module fixture cannot take capsys)."""
    out = {}
    for mode, flags in (("window", WINDOW_ARGS), ("online", ONLINE_ARGS)):
        proc = subprocess.run([sys.executable, "-m", "ffn_edge.runtime.app.cli", "--bundle", str(causal_bundle),
                               "--video", str(video), "--json", *flags], capture_output=True, text=True, timeout=300,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert proc.returncode == 0, proc.stderr
        out[mode] = [json.loads(line) for line in proc.stdout.splitlines()]
    return out


def test_both_modes_write_the_same_required_fields_in_the_same_types(both_modes) -> None:
    for mode, records in both_modes.items():
        assert records, mode
        for rec in records:
            assert rec["schema"] == 1 and rec["mode"] == mode
            expected = set(COMMON) | set(EXTRAS[mode])
            assert set(rec) == expected, f"{mode}: {set(rec) ^ expected}"
            _check_types(rec, COMMON)
            _check_types(rec, EXTRAS[mode])
    window, online = both_modes["window"][-1], both_modes["online"][-1]
    assert set(window) - set(WINDOW) == set(online) - set(ONLINE)  # a key renamed in one mode fails here
    assert {k: type(window[k]) for k in COMMON if window[k] is not None} == \
           {k: type(online[k]) for k in COMMON if online[k] is not None}
    assert "latency_ms" in COMMON and not any(k.endswith("latency_ms") for k in (*WINDOW, *ONLINE))  # one latency


def test_time_is_iso_with_an_offset_and_t_moves_forward(both_modes, video) -> None:
    for mode, records in both_modes.items():
        times = [datetime.datetime.fromisoformat(r["time"]) for r in records]
        assert all(t.utcoffset() is not None for t in times)
        assert times == sorted(times)
        assert abs((times[-1] - datetime.datetime.now(datetime.timezone.utc)).total_seconds()) < 600
        ts = [r["t"] for r in records]
        assert all(b > a for a, b in zip(ts, ts[1:], strict=False)), (mode, ts)
        assert [r["seq"] for r in records] == list(range(len(records)))
        assert {r["source"] for r in records} == {str(video)}
    window = both_modes["window"]
    assert window[0]["window_end"] == 0.5 and window[1]["window_end"] == 0.75  # media time of the file
    assert all(r["window_sampled_t"][-1] <= r["t"] <= r["window_end"] + 1e-6 for r in window)
    online = both_modes["online"]
    # a step every window / n = 0.125 s: the first frame at or after it
    assert [r["t"] for r in online[:3]] == [0.0, round(4 / 30, 4), round(8 / 30, 4)]
    assert online[0]["label"] is None and online[0]["topk"] == [] and online[-1]["label"] in ("a", "b", "c")


def test_several_cameras_write_one_record_each_with_its_source(causal_bundle, video, tmp_path, capsys) -> None:
    other = tmp_path / "copy.mp4"
    other.write_bytes(video.read_bytes())
    records = _json(capsys, causal_bundle, video, "--video", str(other), *WINDOW_ARGS[:6], "--max-decisions", "2",
                    "--threads", "1")
    assert [(r["seq"], r["source"]) for r in records] == [(0, str(video)), (0, str(other)), (1, str(video)),
                                                           (1, str(other))]
    for rec in records:
        assert set(rec) == set(COMMON) | set(WINDOW) | set(MULTI) and rec["mode"] == "window"
        _check_types(rec, {**COMMON, **WINDOW, **MULTI})
        assert rec["multi_round"] == rec["seq"] and rec["multi_batch"] == 2


def test_a_url_password_never_reaches_a_record() -> None:
    assert public_source("rtsp://admin:s3cret@10.0.0.5/stream") == "rtsp://admin:***@10.0.0.5/stream"
    assert public_source("rtsp://10.0.0.5/a:b@c") == "rtsp://10.0.0.5/a:b@c"
    assert public_source("/data/clip.mp4") == "/data/clip.mp4"


# -- --csv -----------------------------------------------------------------------------------------
def test_csv_holds_the_json_records_in_fixed_columns(causal_bundle, video, tmp_path, capsys) -> None:
    path = tmp_path / "out.csv"
    records = _json(capsys, causal_bundle, video, *ONLINE_ARGS, "--csv", str(path))
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == list(CSV_COLUMNS) and len(rows) == len(records) + 1
    assert all(len(row) == len(CSV_COLUMNS) for row in rows)
    for row, rec in zip(rows[1:], records, strict=True):
        cell = dict(zip(CSV_COLUMNS, row, strict=True))
        assert cell["seq"] == str(rec["seq"]) and cell["label"] == (rec["label"] or "")
        assert cell["topk"] == ";".join(f"{lbl}:{p}" for lbl, p in rec["topk"])
        assert float(cell["latency_ms"]) == rec["latency_ms"] and cell["window_start"] == ""
        assert cell["online_warm"] == ("true" if rec["online_warm"] else "false")
        assert json.loads(cell["budget"]) == rec["budget"] and json.loads(cell["events"]) == rec["events"]


def test_csv_on_stdout_is_all_that_stdout_carries(causal_bundle, video, capsys) -> None:
    lines, err = _run(capsys, causal_bundle, video, *WINDOW_ARGS, "--csv", "-")
    rows = list(csv.reader(io.StringIO("\n".join(lines))))
    assert rows[0] == list(CSV_COLUMNS) and len(rows) == 6 and {r[1] for r in rows[1:]} == {"window"}
    assert "5 decisions" in err
    with pytest.raises(ConfigError, match="both write to stdout"):
        cli.run(["--bundle", str(causal_bundle), "--video", str(video), "--csv", "-", "--json"])
    with pytest.raises(ConfigError, match="does not exist"):
        cli.run(["--bundle", str(causal_bundle), "--video", str(video), "--csv", "/nonexistent/dir/x.csv"])


def test_sigterm_leaves_a_csv_of_whole_rows(causal_bundle, video, tmp_path) -> None:
    path = tmp_path / "live.csv"
    proc = subprocess.Popen(
        [sys.executable, "-c", "from ffn_edge.runtime.app.cli import main; main()", "--bundle", str(causal_bundle),
         "--video", str(video), "--realtime", "--frames", "2", "--window-s", "0.5", "--stride-ms", "250",
         "--csv", str(path), "--json", "--threads", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    first: list[str] = []
    reader = threading.Thread(target=lambda: first.extend(proc.stdout.readline() for _ in range(2)), daemon=True)
    reader.start()
    reader.join(120)
    assert len(first) == 2 and first[1].startswith("{"), proc.stderr.read() if proc.poll() is not None else "none"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    printed = len(first) + len(out.splitlines())
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == list(CSV_COLUMNS) and all(len(r) == len(CSV_COLUMNS) for r in rows)
    assert printed <= len(rows) - 1 <= printed + 1  # the row is written before its JSON line


# -- --metrics-port --------------------------------------------------------------------------------
def _scrape(port: int) -> dict[tuple[str, tuple], float]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:  # noqa: S310 - local
        text = r.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.fixture
def kept_open(monkeypatch):
    """The run's Metrics left serving after ffn-run returns, so the test scrapes the finished run over HTTP."""
    pytest.importorskip("prometheus_client")
    opened: list[metrics_mod.Metrics] = []
    real_close = metrics_mod.Metrics.close
    monkeypatch.setattr(metrics_mod.Metrics, "close", lambda self: opened.append(self))
    yield opened
    for m in opened:
        real_close(m)


@pytest.mark.parametrize("flags", [WINDOW_ARGS, ONLINE_ARGS], ids=["window", "online"])
def test_metrics_count_what_the_json_lines_said(flags, causal_bundle, video, capsys, kept_open) -> None:
    budget = ["--budget-ms", "0.01"] if "--online" not in flags else ["--cpu-share", "0.0001"]
    flags = [f for f in flags if f not in ("--frames", "4")]  # the scheduler chooses, under a budget always missed
    lines, err = _run(capsys, causal_bundle, video, "--json", "--metrics-port", "127.0.0.1:0", *flags, *budget)
    records = [json.loads(line) for line in lines]
    (m,) = kept_open
    assert f"metrics on http://127.0.0.1:{m.port}/metrics" in err
    got = _scrape(m.port)
    src, mode = str(video), records[0]["mode"]
    by = (("mode", mode), ("source", src))
    assert got[("ffn_decisions_total", by)] == len(records)
    for n, count in Counter(r["frames"] for r in records).items():
        assert got[("ffn_frames_chosen_total", tuple(sorted((*by, ("frames", str(n))))))] == count
    assert got[("ffn_latency_ms_count", by)] == len(records)
    assert got[("ffn_latency_ms_sum", by)] == pytest.approx(sum(r["latency_ms"] for r in records), abs=0.01)
    misses = sum(r["within_budget"] is False for r in records)
    assert misses > 0 and got[("ffn_budget_misses_total", by)] == misses
    opened = sum(e.startswith("opened:") for r in records for e in r["events"])
    assert opened == 1 and got[("ffn_source_events_total", (("kind", "opened"), ("source", src)))] == opened


def test_metrics_count_reconnects_on_a_private_registry() -> None:
    pytest.importorskip("prometheus_client")
    a, b = metrics_mod.Metrics(), metrics_mod.Metrics()  # two runtimes in one process: no clash
    try:
        port = a.serve("127.0.0.1", 0)
        b.serve("127.0.0.1", 0)
        a.add_events("cam0", ["lost: cam0: read failed", "reopened: cam0: reopened after 2 attempt(s)",
                              "reopened: cam0: reopened after 1 attempt(s)"])
        got = _scrape(port)
        assert got[("ffn_source_reconnects_total", (("source", "cam0"),))] == 2
        assert got[("ffn_source_events_total", (("kind", "lost"), ("source", "cam0")))] == 1
        assert ("ffn_source_reconnects_total", (("source", "cam0"),)) not in _scrape(b.port)
    finally:
        a.close()
        b.close()


def test_metrics_without_the_library_is_the_one_line_install_hint(causal_bundle, video, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(SystemExit) as e:
        run_cli("ffn-run", lambda: cli.run(["--bundle", str(causal_bundle), "--video", str(video),
                                            "--metrics-port", "0"]))
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and "pip install 'prometheus-client" in err


@pytest.mark.parametrize("bad", ["http", "70000", "host:", "-1", "1" * 5000, "\u00b2", "0" * 6 + "80"])
def test_a_bad_metrics_port_is_one_line(bad, causal_bundle, video) -> None:
    with pytest.raises(ConfigError, match="--metrics-port"):
        cli.run(["--bundle", str(causal_bundle), "--video", str(video), "--metrics-port", bad])


def test_the_none_type_marks_optional_fields() -> None:
    assert NONE in COMMON["label"] and NONE not in COMMON["latency_ms"]  # online has no label before it is warm


def test_a_file_played_in_real_time_ends_after_its_last_frame(causal_bundle, tmp_path, capsys) -> None:
    """Once a real-time file has ended its capture no longer paces the loop: the decisions must stop, not
    repeat the last window as fast as the CPU goes (hundreds of records of the same frames)."""
    import cv2
    import numpy as np

    path = tmp_path / "one_second.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (32, 32))
    for i in range(30):
        writer.write(np.full((32, 32, 3), 8 * i, np.uint8))
    writer.release()
    lines, _ = _run(capsys, causal_bundle, path, "--realtime", "--frames", "2", "--window-s", "0.5", "--stride-ms",
                    "250", "--json", "--threads", "1")
    records = [json.loads(line) for line in lines]
    assert 1 <= len(records) <= 4  # windows end at about 0.5, 0.75, 1.0 s of the file (one more if it lags)
    assert len({r["t"] for r in records}) == len(records)
