"""The daemon's one door to its observers: metrics, notifications and retention.

The pipeline calls a handful of methods here at its transitions; what each observer does with
them (count, notify, sweep) stays out of the pipeline's code. Nothing here may block the pipeline:
notifications go to their own thread, retention sweeps to their own worker, whose failures are
logged (`task_failed`) like every pool task's.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import structlog

from dropbox_importer.config import Config
from dropbox_importer.dropbox.layout import DropboxLayout
from dropbox_importer.marketo.client import MarketoClient
from dropbox_importer.observe.leadership import LeadershipCollector
from dropbox_importer.observe.metrics import Metrics, MetricsServer
from dropbox_importer.observe.notify import Notifier, settled_event
from dropbox_importer.observe.retention import RetentionSchedule, journal_horizon, sweep
from dropbox_importer.pipeline.journal import Journal
from dropbox_importer.pipeline.records import FileRecord
from dropbox_importer.threads import Workers
from dropbox_importer.web.server import WebServer

log = structlog.get_logger(__name__)


class Observers:
    """Metrics, notifications and retention for one daemon run."""

    def __init__(self, config: Callable[[], Config], journal: Journal) -> None:
        self._config = config
        self._journal = journal
        self.metrics = Metrics()
        self._server: MetricsServer | None = None
        self._web: WebServer | None = None
        self._notifier = Notifier(
            lambda name: (
                self._config().dropboxes[name].notify if name in self._config().dropboxes else None
            ),
            smtp=lambda: self._config().smtp,
        )
        self._retention = RetentionSchedule()
        self._sweeper = Workers("retention", 1)

    def start(self) -> None:
        """Start the notifier and, when configured, the metrics endpoint."""
        self.metrics.watch_states(
            lambda: {state.value: n for state, n in self._journal.counts().items()}
        )
        self._notifier.start()
        metrics = self._config().metrics
        if metrics is not None:
            self._server = self.metrics.serve(metrics)
        self._start_web()

    def _start_web(self) -> None:
        web = self._config().web
        if web is None:
            return
        try:
            self._web = WebServer.start(web, self._config)
        except OSError as exc:
            # The pipeline matters more than its page: run without it, loudly.
            log.error("web_listen_failed", listen=f"{web.host}:{web.port}", error=str(exc))

    def reconfigure(self, previous: Config) -> None:
        """After a reload: start, stop or move the metrics endpoint and the status page."""
        config = self._config()
        if config.metrics != previous.metrics:
            if self._server is not None:
                with contextlib.suppress(OSError):
                    self._server.stop()
                self._server = None
                log.info("metrics_stopped")
            if config.metrics is not None:
                try:
                    self._server = self.metrics.serve(config.metrics)
                except OSError as exc:
                    listen = f"{config.metrics.host}:{config.metrics.port}"
                    log.error("metrics_listen_failed", listen=listen, error=str(exc))
        if config.web != previous.web:
            if self._web is not None:
                with contextlib.suppress(OSError):
                    self._web.stop()
                self._web = None
                log.info("web_stopped")
            self._start_web()

    def instance_started(self, name: str, client: MarketoClient) -> None:
        """Expose an instance's client counters (calls, errors, limiter waits)."""
        self.metrics.watch_clients(name, client)

    def leadership_started(
        self, host: str, leading: Callable[[], bool], lease_seconds: float
    ) -> None:
        """Expose leadership: whether this daemon leads, the journal's epoch, the hosts seen."""
        self.metrics.registry.register(
            LeadershipCollector(
                host, leading, self._journal, lease_seconds, lambda: datetime.now(UTC)
            )
        )

    def dropbox_started(self, name: str, waiting: Callable[[], int]) -> None:
        """Expose how many files wait in a drop box's inbox."""
        self.metrics.watch_waiting(name, waiting)

    def batch_created(self, instance: str) -> None:
        """A batch entered Marketo's queue (or was adopted after a restart)."""
        self.metrics.batch_created(instance)

    def batch_finished(self, instance: str, status: str) -> None:
        """A batch left it: Complete, Failed, or lost."""
        self.metrics.batch_finished(instance, status)

    def file_settled(self, record: FileRecord) -> None:
        """Count the file's outcome and rows, and notify whoever asked to be told."""
        if not record.state.terminal or record.destination_path is None:
            return
        try:
            event = settled_event(record.destination_path)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("settled_event_unreadable", file=record.name, error=str(exc))
            return
        event["file_id"] = record.id
        box = self._config().dropboxes.get(record.dropbox)
        if box is not None:
            # Where the file is now, as the partner sees its drop box (e-mails say this).
            with contextlib.suppress(ValueError):
                event["location"] = record.destination_path.relative_to(box.root).as_posix()
        counts = event["counts"]
        self.metrics.file_settled(record.dropbox, event["outcome"])
        self.metrics.rows(
            record.dropbox,
            counts["leads_processed"],
            counts["rows_failed"] + counts["rows_failed_locally"],
            counts["rows_with_warning"],
        )
        self._notifier.file_settled(event)

    def tick(self, now: float, layouts: Mapping[str, DropboxLayout]) -> None:
        """Start a retention sweep and journal compaction when one is due."""
        if not self._retention.due(now):
            return
        self._retention.ran(now)
        boxes = dict(layouts)
        self._sweeper.submit("retention_sweep", lambda: self._sweep(boxes))

    def _sweep(self, layouts: Mapping[str, DropboxLayout]) -> None:
        config = self._config()
        for name, layout in layouts.items():
            box = config.dropboxes.get(name)
            if box is None or box.retention is None:
                continue
            try:
                report = sweep(layout, box.retention, datetime.now(UTC), dropbox=name)
            except Exception:  # one drop box's folders must not stop the others' sweep
                log.exception("retention_sweep_failed", dropbox=name)
                continue
            log.info("retention_swept", dropbox=name, **vars(report))
        horizon = journal_horizon([box.retention for box in config.dropboxes.values()])
        try:
            self._journal.compact(horizon)
        except Exception:
            log.exception("journal_compaction_failed")

    def stop(self) -> None:
        """Give pending notifications a last try, stop sweeping and serving metrics."""
        self._notifier.stop(timeout=3)
        self._sweeper.stop(time.monotonic())
        if self._server is not None:
            with contextlib.suppress(OSError):
                self._server.stop()
        if self._web is not None:
            with contextlib.suppress(OSError):
                self._web.stop()
