"""``ffn-run --metrics-port``: Prometheus metrics of a run, served over HTTP with ``prometheus-client``.

Counted from the same records ``--json`` writes (``records.py``), so a scrape and the JSON lines
agree: decisions (online: steps), the frame counts chosen, the latency, budget misses and the
source's events (reconnects among them), each labelled by source and mode. The metrics live in a
private ``CollectorRegistry``, not the library's global one, so several runtimes in one process (and
tests) never share or clash. ``prometheus-client`` is needed only when the flag is given.
"""

from __future__ import annotations

import sys
from typing import Any

from ...core.deps import require_modules
from ...core.errors import ConfigError
from .records import event_kinds

# ms: the runs a frame-count budget chooses between span about 1 ms (a small model, a GPU) to 200 ms (a board's CPU)
LATENCY_BUCKETS_MS = (1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 75.0, 100.0, 150.0, 200.0)
DEFAULT_HOST = "0.0.0.0"  # noqa: S104 - a Prometheus server scrapes from another machine; HOST:PORT narrows it


def parse_listen(text: str) -> tuple[str, int]:
    """``PORT`` or ``HOST:PORT`` (``0``: a free port) -> (host, port); a bad one is a one-line ConfigError."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or DEFAULT_HOST
    if not (port.isascii() and port.isdigit() and len(port) <= 5) or not 0 <= int(port) <= 65535:
        raise ConfigError(f"--metrics-port {text!r}: expected PORT or HOST:PORT with a port in 0..65535")
    return host, int(port)


class Metrics:
    """The run's counters and latency histogram, on a private registry, served at ``http://host:port/metrics``."""

    def __init__(self) -> None:
        require_modules(["prometheus_client"])
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        by = ("source", "mode")
        r = self.registry
        self.decisions = Counter("ffn_decisions", "Results: window-mode decisions, online-mode steps", by, registry=r)
        self.frames = Counter("ffn_frames_chosen", "Results by the frame count the network used", (*by, "frames"),
                              registry=r)
        self.latency = Histogram("ffn_latency_ms", "Latency of the run each result timed (ms): the clip run "
                                 "(window) or the step run (online)", by, buckets=LATENCY_BUCKETS_MS, registry=r)
        self.misses = Counter("ffn_budget_misses", "Results over their budget (within_budget false)", by, registry=r)
        self.reconnects = Counter("ffn_source_reconnects", "Times a lost live source was reopened", ("source",),
                                  registry=r)
        self.events = Counter("ffn_source_events", "Source events by kind (opened, lost, retry, reopened, "
                              "rejected, finished, error, stuck)", ("source", "kind"), registry=r)
        self.server: Any = None
        self.port: int | None = None

    def serve(self, host: str, port: int) -> int:
        """Start the HTTP endpoint (a daemon thread); returns the port (the one picked for 0)."""
        from prometheus_client import start_http_server

        try:
            self.server, _ = start_http_server(port, addr=host, registry=self.registry)
        except OSError as e:
            raise ConfigError(f"--metrics-port: cannot listen on {host}:{port} ({e.strerror or e})") from None
        self.port = int(self.server.server_port)
        return self.port

    def add(self, rec: dict[str, Any]) -> None:
        """Count one record (the one also written as a JSON line / CSV row)."""
        source, mode = rec["source"], rec["mode"]
        self.decisions.labels(source, mode).inc()
        self.frames.labels(source, mode, str(rec["frames"])).inc()
        self.latency.labels(source, mode).observe(rec["latency_ms"])
        if rec["within_budget"] is False:
            self.misses.labels(source, mode).inc()
        self.add_events(source, rec["events"])

    def add_events(self, source: str, events: list[str] | tuple[str, ...]) -> None:
        """Source events outside a record (after the last one, or a camera with no frames in a round)."""
        for kind in event_kinds(events):
            self.events.labels(source, kind).inc()
            if kind == "reopened":
                self.reconnects.labels(source).inc()

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def open_metrics(listen: str | None) -> Metrics | None:
    """``--metrics-port``: the metrics, served (the port on stderr), or None without the flag."""
    if listen is None:
        return None
    host, port = parse_listen(listen)
    metrics = Metrics()
    port = metrics.serve(host, port)
    print(f"ffn-run: metrics on http://{host}:{port}/metrics", file=sys.stderr)
    return metrics
