"""The optional Prometheus endpoint: what the daemon did, and what its Marketo clients did.

Everything lives in one `CollectorRegistry` of our own (never the process-wide default), so
several can coexist in one process and nothing a library registers leaks into our endpoint.
Counters the daemon drives (files, rows, batches) are ordinary prometheus_client metrics; the
Marketo clients already count their calls, so a collector reads `client.stats()` at scrape time
instead of the daemon copying numbers across.

The Marketo instance label is `marketo_instance`, not `instance`: Prometheus gives every scraped
series its own `instance` label (the target's host:port) and would rename ours on a clash.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Protocol, TypeVar

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from dropbox_importer.config.model import MetricsConfig
from dropbox_importer.marketo.models import ClientStats

log = structlog.get_logger(__name__)

PREFIX = "dropbox_importer"
T = TypeVar("T")


class HasStats(Protocol):
    """What the metrics need of a Marketo client: a snapshot of its counters."""

    def stats(self) -> ClientStats:
        """A snapshot of calls, retries, errors and waits so far."""
        ...


class ClientsCollector(Collector):
    """Reads every watched client's stats() when Prometheus scrapes, never in between."""

    def __init__(self) -> None:
        self._clients: dict[str, HasStats] = {}
        self._lock = threading.Lock()

    def watch(self, instance: str, client: HasStats) -> None:
        """Report `client` under `instance` (a restarted client replaces the old one)."""
        with self._lock:
            self._clients[instance] = client

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        """One family per ClientStats field, one sample per instance (and endpoint or code)."""
        with self._lock:
            clients = dict(self._clients)
        snapshots: dict[str, ClientStats] = {}
        for instance, client in clients.items():
            try:
                snapshots[instance] = client.stats()
            except Exception as exc:  # a broken client must not break the whole scrape
                log.warning("metrics_stats_failed", instance=instance, error=str(exc))
        yield from _labelled(
            snapshots, "api_calls", "calls sent to Marketo", "endpoint", "calls_by_endpoint"
        )
        yield from _labelled(
            snapshots, "api_errors", "Marketo error answers by code", "code", "errors_by_code"
        )
        yield from _labelled(
            snapshots, "api_retries", "calls retried, by reason", "reason", "retries_by_reason"
        )
        for field, help_text in _PLAIN_COUNTERS.items():
            family = CounterMetricFamily(
                f"{PREFIX}_{field}", help_text, labels=["marketo_instance"]
            )
            for instance, stats in snapshots.items():
                family.add_metric([instance], float(getattr(stats, field)))
            yield family
        queued = GaugeMetricFamily(
            f"{PREFIX}_import_jobs_queued",
            "import jobs this daemon has queued or importing at Marketo",
            labels=["marketo_instance"],
        )
        for instance, stats in snapshots.items():
            queued.add_metric([instance], float(stats.queued_imports))
        yield queued


# ClientStats fields exposed as-is, one counter each (the _total suffix is added on output).
_PLAIN_COUNTERS = {
    "limiter_waits": "calls that waited for the call limiter (100 per 20 s, 10 in flight)",
    "limiter_wait_seconds": "time calls spent waiting for the call limiter",
    "queue_waits": "imports that waited for a free slot in Marketo's import queue",
    "queue_wait_seconds": "time imports spent waiting for a queue slot",
    "token_fetches": "access tokens fetched from the identity service",
    "ambiguous_create_retries": "creates retried after an answer that never came",
}


def _labelled(
    snapshots: Mapping[str, ClientStats], name: str, help_text: str, label: str, field: str
) -> Iterator[CounterMetricFamily]:
    family = CounterMetricFamily(f"{PREFIX}_{name}", help_text, labels=["marketo_instance", label])
    for instance, stats in snapshots.items():
        counts: Mapping[str, int] = getattr(stats, field)
        for key, value in sorted(counts.items()):
            family.add_metric([instance, key], float(value))
    yield family


class CallbackCollector(Collector):
    """Gauges whose value the daemon computes when asked: inbox waits and files by state."""

    def __init__(self) -> None:
        self._waiting: dict[str, Callable[[], int]] = {}
        self._states: Callable[[], Mapping[str, int]] | None = None
        self._lock = threading.Lock()

    def watch_waiting(self, dropbox: str, count: Callable[[], int]) -> None:
        """Report `count()` as the files waiting in `dropbox`'s inbox."""
        with self._lock:
            self._waiting[dropbox] = count

    def watch_states(self, counts: Callable[[], Mapping[str, int]]) -> None:
        """Report `counts()` (state -> files, e.g. Journal.counts) as files by state."""
        with self._lock:
            self._states = counts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Call every callback now; one that raises is left out of this scrape."""
        with self._lock:
            waiting, states = dict(self._waiting), self._states
        family = GaugeMetricFamily(
            f"{PREFIX}_files_waiting",
            "files seen in the inbox, not yet claimed (still being written or settling)",
            labels=["dropbox"],
        )
        for dropbox, count in waiting.items():
            value = _safely(count, dropbox)
            if value is not None:
                family.add_metric([dropbox], float(value))
        yield family
        by_state = GaugeMetricFamily(
            f"{PREFIX}_files", "claimed files by journal state", labels=["state"]
        )
        counts = _safely(states, "states") if states is not None else None
        for state, value in sorted((counts or {}).items()):
            by_state.add_metric([str(state)], float(value))
        yield by_state


def _safely(callback: Callable[[], T], what: str) -> T | None:
    try:
        return callback()
    except Exception as exc:  # a scrape must answer even if one number can't be had
        log.warning("metrics_callback_failed", what=what, error=str(exc))
        return None


class Metrics:
    """Every metric of the daemon in one registry; the daemon calls these as things happen."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.clients = ClientsCollector()
        self.callbacks = CallbackCollector()
        self.registry.register(self.clients)
        self.registry.register(self.callbacks)
        self._lock = threading.Lock()
        self._in_flight_counts: dict[str, int] = {}
        self._files = Counter(
            f"{PREFIX}_files_settled",
            "files that reached done/ or failed/",
            ["dropbox", "outcome"],
            registry=self.registry,
        )
        self._last_settled = Gauge(
            f"{PREFIX}_last_settled_timestamp_seconds",
            "when a file of this drop box last reached done/ or failed/ (Unix time)",
            ["dropbox", "outcome"],
            registry=self.registry,
        )
        self._rows = Counter(
            f"{PREFIX}_rows",
            "rows Marketo imported, failed or warned about (failed includes rows refused here)",
            ["dropbox", "outcome"],
            registry=self.registry,
        )
        self._created = Counter(
            f"{PREFIX}_batches_created",
            "import batches created at Marketo",
            ["marketo_instance"],
            registry=self.registry,
        )
        self._finished = Counter(
            f"{PREFIX}_batches_finished",
            "import batches that reached Complete or Failed",
            ["marketo_instance", "status"],
            registry=self.registry,
        )
        self._in_flight = Gauge(
            f"{PREFIX}_batches_in_flight",
            "import batches created and not yet finished",
            ["marketo_instance"],
            registry=self.registry,
        )

    def file_settled(self, dropbox: str, outcome: str) -> None:
        """Count one file settled as done or failed."""
        self._files.labels(dropbox, outcome).inc()
        self._last_settled.labels(dropbox, outcome).set(time.time())

    def rows(self, dropbox: str, imported: int, failed: int, warned: int) -> None:
        """Add one settled file's row counts."""
        for outcome, count in (("imported", imported), ("failed", failed), ("warned", warned)):
            self._rows.labels(dropbox, outcome).inc(max(count, 0))

    def batch_created(self, instance: str) -> None:
        """Count a batch Marketo accepted (also for a batch adopted after a restart)."""
        self._created.labels(instance).inc()
        self._move_in_flight(instance, +1)

    def batch_finished(self, instance: str, status: str = "Complete") -> None:
        """Count a batch that reached a final status; it leaves the in-flight gauge."""
        self._finished.labels(instance, status).inc()
        self._move_in_flight(instance, -1)

    def _move_in_flight(self, instance: str, step: int) -> None:
        with self._lock:
            # A batch created before a restart and not adopted must not take the gauge below 0.
            count = max(self._in_flight_counts.get(instance, 0) + step, 0)
            self._in_flight_counts[instance] = count
            self._in_flight.labels(instance).set(count)

    def watch_clients(self, instance_name: str, client: HasStats) -> None:
        """Read `client.stats()` under `instance_name` at every scrape."""
        self.clients.watch(instance_name, client)

    def watch_waiting(self, dropbox: str, count: Callable[[], int]) -> None:
        """Report `count()` (e.g. the readiness tracker's waiting) at every scrape."""
        self.callbacks.watch_waiting(dropbox, count)

    def watch_states(self, counts: Callable[[], Mapping[str, int]]) -> None:
        """Report `counts()` (e.g. Journal.counts) as files by state at every scrape."""
        self.callbacks.watch_states(counts)

    def serve(self, listen: MetricsConfig) -> MetricsServer:
        """Start the HTTP endpoint on its own thread; stop() it at shutdown."""
        return MetricsServer.start(self.registry, listen.host, listen.port)


class MetricsServer:
    """A running /metrics endpoint (any path answers) on a daemon thread."""

    def __init__(self, server: _Stoppable, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @classmethod
    def start(cls, registry: CollectorRegistry, host: str, port: int) -> MetricsServer:
        """Listen on host:port (0 picks a free port); OSError if the address is taken."""
        server, thread = start_http_server(port, addr=host, registry=registry)
        log.info("metrics_listening", host=host, port=server.server_port)
        return cls(server, thread)

    @property
    def port(self) -> int:
        """The port listened on (useful when 0 was asked)."""
        return int(self._server.server_port)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop answering, close the socket and wait for the thread to end."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout)


class _Stoppable(Protocol):
    server_port: int

    def shutdown(self) -> None: ...

    def server_close(self) -> None: ...
