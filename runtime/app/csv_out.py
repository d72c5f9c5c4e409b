"""``ffn-run --csv PATH``: the records as CSV rows, fixed columns (``records.CSV_COLUMNS``), header once.

Written with the csv module, one row per result, flushed as it is written: a run stopped by Ctrl-C
or SIGTERM (``stop.py``: both end in the ``finally`` that closes this) leaves a file of whole rows
that any CSV reader opens; so does one cut short by a crash, but for its last row. ``-`` writes to
stdout (then nothing else goes there).
"""

from __future__ import annotations

import csv
import sys
from typing import IO, Any

from .records import CSV_COLUMNS, csv_row


class CsvRecords:
    """Rows of records on ``path`` (``-``: stdout); ``close`` flushes and closes (not stdout)."""

    def __init__(self, path: str) -> None:
        self.stdout = path == "-"
        self.file: IO[str] = sys.stdout if self.stdout else open(path, "w", newline="", encoding="utf-8")  # noqa: SIM115
        self.writer = csv.writer(self.file, lineterminator="\n")
        self.rows = 0
        self.writer.writerow(CSV_COLUMNS)
        self.file.flush()

    def write(self, rec: dict[str, Any]) -> None:
        self.writer.writerow(csv_row(rec))
        self.file.flush()
        self.rows += 1

    def close(self) -> None:
        if not self.stdout and not self.file.closed:
            self.file.close()
