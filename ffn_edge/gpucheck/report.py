"""What the GPU check found: one record per check, printed as it goes, then written as JSON and Markdown."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from ..core.atomic import atomic_write_bytes

STATUSES = ("ok", "failed", "skipped")


@dataclasses.dataclass
class Check:
    """One check's outcome. ``detail`` is one line (for a skip: ``skipped: <why>``); ``data`` its numbers."""

    name: str
    status: str
    detail: str
    data: dict[str, Any] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")

    def line(self) -> str:
        return f"{self.name}: {self.detail}" if self.status == "skipped" else \
            f"{self.name}: {self.status}: {self.detail} ({self.seconds:.1f} s)"


class Skip(Exception):
    """Raised inside a check: it does not apply here (no CUDA device, a library not installed)."""


class Report:
    """The checks in the order they ran, plus a description of the machine."""

    def __init__(self, environment: dict[str, Any], stream: Any = None) -> None:
        self.environment = environment
        self.checks: list[Check] = []
        self.tables: dict[str, tuple[list[str], list[list[Any]]]] = {}
        self._stream = stream or sys.stdout

    def add(self, check: Check) -> Check:
        self.checks.append(check)
        print(check.line(), file=self._stream, flush=True)
        return check

    def table(self, title: str, header: list[str], rows: list[list[Any]]) -> None:
        """A result table for the Markdown report (and the JSON, under ``tables``)."""
        self.tables[title] = (header, rows)

    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == "failed"]

    def to_json(self) -> dict[str, Any]:
        return {"environment": self.environment, "checks": [dataclasses.asdict(c) for c in self.checks],
                "tables": {t: {"header": h, "rows": r} for t, (h, r) in self.tables.items()},
                "failed": len(self.failed())}

    def to_markdown(self) -> str:
        env = ", ".join(f"{k} {v}" for k, v in self.environment.items())
        out = ["# GPU check", "", env, "", *markdown_table(["check", "status", "detail", "s"],
               [[c.name, c.status, c.detail, f"{c.seconds:.1f}"] for c in self.checks])]
        for title, (header, rows) in self.tables.items():
            out += ["", f"## {title}", "", *markdown_table(header, rows)]
        return "\n".join(out) + "\n"

    def write(self, out: Path) -> tuple[Path, Path]:
        """``gpucheck.json`` and ``gpucheck.md`` in ``out``."""
        out.mkdir(parents=True, exist_ok=True)
        js, md = out / "gpucheck.json", out / "gpucheck.md"
        atomic_write_bytes(js, (json.dumps(self.to_json(), indent=2) + "\n").encode())
        atomic_write_bytes(md, self.to_markdown().encode())
        return js, md


def cell(v: Any) -> str:
    s = f"{v:.3g}" if isinstance(v, float) else str(v)
    return s.replace("|", "\\|").replace("\n", " ")


def markdown_table(header: list[str], rows: list[list[Any]]) -> list[str]:
    return ["| " + " | ".join(map(cell, header)) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(map(cell, r)) + " |" for r in rows)]
