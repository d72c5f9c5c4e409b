"""Where ``ffn-run`` sends each result: a human line or a JSON line on stdout, CSV rows, Prometheus metrics.

stdout carries exactly one of: human lines (the default), JSON lines (``--json``) or CSV (``--csv -``),
so an app reads it without filtering. The JSON line, the CSV row and the metrics are made from one
record (``records.py``, schema v1), so they always agree; the metrics count a record before it is
written, so whoever has read a line can scrape at least its count.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Iterator
from typing import Any

from ...core.deps import require_modules
from ...core.errors import ConfigError
from ..media.inputs import check_output_file
from .csv_out import CsvRecords
from .metrics import Metrics, open_metrics, parse_listen


def add_output_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--csv", default=None, metavar="PATH", help="write each result as a CSV row here (- : stdout, "
                   "not with --json); the same fields as --json (docs/output-schema.md), header once")
    p.add_argument("--metrics-port", default=None, metavar="[HOST:]PORT",
                   help="serve Prometheus metrics at http://HOST:PORT/metrics (default host 0.0.0.0; port 0: a "
                   "free one, printed on stderr); needs prometheus-client")


def check_output_args(args: argparse.Namespace) -> None:
    """Before the bundle loads: stdout given twice, an unwritable CSV path, a bad port, a missing library."""
    if args.csv == "-" and args.json:
        raise ConfigError("--csv - and --json both write to stdout: give --csv a file path, or drop one")
    if args.csv is not None and args.csv != "-":
        check_output_file(args.csv)
    if args.metrics_port is not None:
        parse_listen(args.metrics_port)
        require_modules(["prometheus_client"])


class Outputs:
    """The run's outputs (see the module docstring); ``write`` once per result, ``close`` at the end."""

    def __init__(self, json_lines: bool, csv: CsvRecords | None, metrics: Metrics | None) -> None:
        self.json_lines, self.csv, self.metrics = json_lines, csv, metrics
        self.human = not json_lines and not (csv is not None and csv.stdout)

    def write(self, rec: dict[str, Any] | None, line: str) -> None:
        """One result: its record (None: a camera without frames this round) and its human line."""
        if rec is not None:
            if self.metrics is not None:
                self.metrics.add(rec)
            if self.csv is not None:
                self.csv.write(rec)
            if self.json_lines:
                print(json.dumps(rec), flush=True)
        if self.human:
            print(line, flush=True)

    def events(self, source: str, events: tuple[str, ...] | list[str]) -> None:
        """Source events no record carries (after the last result, a camera without frames): for the metrics."""
        if self.metrics is not None:
            self.metrics.add_events(source, events)

    def close(self) -> None:
        try:
            if self.csv is not None:
                self.csv.close()
        finally:
            if self.metrics is not None:
                self.metrics.close()


@contextlib.contextmanager
def open_outputs(args: argparse.Namespace) -> Iterator[Outputs]:
    """The outputs the flags ask for, closed (CSV flushed, metrics endpoint stopped) however the run ends."""
    metrics = open_metrics(args.metrics_port)
    try:
        csv = None if args.csv is None else CsvRecords(args.csv)
    except BaseException:
        if metrics is not None:
            metrics.close()
        raise
    outputs = Outputs(args.json, csv, metrics)
    try:
        yield outputs
    finally:
        outputs.close()
