"""The import queue: FIFO, at most `max_importing` jobs at once, timed like Marketo but faster."""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from dropbox_importer.sandbox.database import LeadDatabase
from dropbox_importer.sandbox.jobs import LEADS, Job
from dropbox_importer.sandbox.rows import BatchFailedError, ImportRequest, RowReport, process
from dropbox_importer.sandbox.settings import SandboxSettings

log = structlog.get_logger(__name__)

FIRST_BATCH_ID = 3401  # Adobe's examples show ids in the 3400s


class ListInProgressError(Exception):
    """A create for a listId that already has a job in the queue (Marketo's 1019)."""


@dataclass(frozen=True)
class Speed:
    """How fast imports run: a job takes job_overhead_seconds + rows / rows_per_second."""

    rows_per_second: float
    job_overhead_seconds: float

    def duration(self, rows: int) -> float:
        """Simulated seconds to import this many rows."""
        return self.job_overhead_seconds + rows / self.rows_per_second


@dataclass
class Batch:
    """One import job and everything the status, failures and warnings calls report."""

    batch_id: int
    request: ImportRequest | Job  # a lead import, or a program member or custom object job
    payload: bytes
    size: int
    created: float
    doomed: bool = False  # a fault decided at creation that this batch ends Failed
    status: str = "Queued"
    started: float | None = None
    finished: float | None = None
    start_sequence: int | None = None
    due: float | None = None  # when the simulated import ends, known once rows are processed
    report: RowReport | None = None
    failure: str | None = None
    forgotten: bool = False  # past its retention on request: answered as an unknown id
    owner: str = "api"  # who created it: "api" (a client over HTTP) or "other" (other.py)

    def counts(self, now: float, speed: Speed) -> tuple[int, int, int]:
        """(leads processed, rows failed, rows with warning) so far, growing with the clock.

        A batch failed as a whole has none, unless it failed half-way (strict): then the rows
        it processed before failing count.
        """
        report = self.report
        if report is None or self.started is None:
            return 0, 0, 0
        if self.status in ("Complete", "Failed"):
            done = report.rows
        else:
            elapsed = now - self.started - speed.job_overhead_seconds
            done = min(report.rows, max(0, int(elapsed * speed.rows_per_second)))
        failed = bisect_left(report.failures, done, key=lambda item: item[0])
        warned = bisect_left(report.warnings, done, key=lambda item: item[0])
        return done - failed, failed, warned

    @property
    def kind(self) -> str:
        """What the batch imports: jobs.LEADS, PROGRAM_MEMBERS or CUSTOM_OBJECTS."""
        return LEADS if isinstance(self.request, ImportRequest) else self.request.kind

    def message(self) -> str:
        """Marketo's human-readable `message` for the current state."""
        if self.status == "Queued":
            return "Queued for processing"
        if self.status == "Importing":
            return "Import in progress"
        if self.failure is not None:
            return self.failure
        report = self.report
        assert report is not None
        into_list = isinstance(self.request, ImportRequest) and self.request.list_id is not None
        members = f" ({report.members} members)" if into_list else ""
        if report.failures:
            return (
                f"Import completed with errors, {report.imported} records imported{members}, "
                f"{len(report.failures)} failed"
            )
        return f"Import succeeded, {report.imported} records imported{members}"


class ImportQueue:
    """Holds every batch; one scheduler thread moves them Queued -> Importing -> Complete/Failed."""

    def __init__(
        self,
        settings: SandboxSettings,
        db: LeadDatabase,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """An empty queue importing into `db`."""
        self.settings = settings
        self.db = db
        self._clock = clock
        self.clock = clock
        self.speed = Speed(settings.rows_per_second, settings.job_overhead_seconds)
        self._wall_offset = time.time() - clock()
        self._cond = threading.Condition()
        self._batches: dict[int, Batch] = {}
        self._queued: deque[Batch] = deque()
        self._importing: list[Batch] = []
        self._next_id = FIRST_BATCH_ID
        self._starts = 0
        self.peak_importing = 0
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="sandbox-imports", daemon=True)

    def start(self) -> None:
        """Start the scheduler thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the scheduler thread and wait for it."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def create(
        self,
        request: ImportRequest | Job,
        payload: bytes,
        doomed: bool,
        *,
        list_busy_from: tuple[str, ...] = (),
        owner: str = "api",
    ) -> Batch | None:
        """Queue a new batch; None when the queue is full (Marketo's 1016).

        With `list_busy_from` (statuses such as "Queued", "Importing"), a create whose listId
        has a job in one of them raises ListInProgressError (Marketo's 1019). `owner` tells
        the API's batches from the other integration's (other.py) in `snapshot`.
        """
        with self._cond:
            if len(self._queued) + len(self._importing) >= self.settings.max_queued_jobs:
                return None
            if (
                isinstance(request, ImportRequest)
                and request.list_id is not None
                and list_busy_from
            ):
                jobs = [*self._importing, *self._queued]
                if any(
                    isinstance(b.request, ImportRequest)
                    and b.request.list_id == request.list_id
                    and b.status in list_busy_from
                    for b in jobs
                ):
                    raise ListInProgressError(request.list_id)
            batch = Batch(
                self._next_id, request, payload, len(payload), self._clock(), doomed, owner=owner
            )
            self._next_id += 1
            self._batches[batch.batch_id] = batch
            self._queued.append(batch)
            self._cond.notify_all()
        log.debug("sandbox_batch_queued", batch_id=batch.batch_id, bytes=batch.size)
        return batch

    def find(self, batch_id: int) -> Batch | None:
        """The batch with this id, or None if unknown or past its retention."""
        with self._cond:
            batch = self._batches.get(batch_id)
        if batch is None or batch.forgotten:
            return None
        if self._clock() - batch.created > self.settings.batch_retention_seconds:
            return None
        return batch

    def list_of(self, batch_id: int) -> int | None:
        """The static list a lead batch imports into (None: none, or no such batch)."""
        with self._cond:
            batch = self._batches.get(batch_id)
        request = None if batch is None else batch.request
        return request.list_id if isinstance(request, ImportRequest) else None

    def ended(self, batch_id: int) -> bool:
        """True once the batch is Complete or Failed (or unknown)."""
        with self._cond:
            batch = self._batches.get(batch_id)
            return batch is None or batch.status in ("Complete", "Failed")

    def forget(self, batch_ids: list[int]) -> list[int]:
        """Treat these batches as past their retention from now on; return the ids known."""
        with self._cond:
            known = [i for i in batch_ids if i in self._batches]
            for batch_id in known:
                self._batches[batch_id].forgotten = True
        return known

    def status(self, batch: Batch) -> dict[str, Any]:
        """The batch as `GET /bulk/v1/leads/batch/{id}.json` reports it."""
        with self._cond:
            processed, failed, warned = batch.counts(self._clock(), self.speed)
            return {
                "batchId": batch.batch_id,
                "importId": str(batch.batch_id),
                "status": batch.status,
                "numOfLeadsProcessed": processed,
                "numOfRowsFailed": failed,
                "numOfRowsWithWarning": warned,
                "message": batch.message(),
            }

    def snapshot(self) -> list[dict[str, Any]]:
        """Every batch with parameters, counts and timestamps, for `/sandbox/batches.json`."""
        with self._cond:
            batches = sorted(self._batches.values(), key=lambda b: b.batch_id)
        out = []
        for batch in batches:
            item = self.status(batch)
            request = batch.request
            if isinstance(request, ImportRequest):
                item.update(
                    lookupField=request.lookup_field,
                    listId=request.list_id,
                    partitionName=request.partition,
                )
            else:
                item.update(request.to_json())
            item.update(
                kind=batch.kind,
                format=request.format,
                bytes=batch.size,
                rows=batch.report.rows if batch.report else None,
                startSequence=batch.start_sequence,
                created=self._wall(batch.created),
                started=self._wall(batch.started),
                finished=self._wall(batch.finished),
                expired=batch.forgotten
                or self._clock() - batch.created > self.settings.batch_retention_seconds,
                owner=batch.owner,
            )
            out.append(item)
        return out

    def _wall(self, moment: float | None) -> str | None:
        if moment is None:
            return None
        return datetime.fromtimestamp(moment + self._wall_offset, UTC).isoformat()

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._stopping:
                    return
                now = self._clock()
                self._settle(now)
                pending = [b for b in self._importing if b.due is None]
                if not pending:
                    dues = [b.due for b in self._importing if b.due is not None]
                    self._cond.wait(max(0.0, min(dues) - now) if dues else None)
                    continue
            for batch in pending:
                self._process(batch)

    def _settle(self, now: float) -> None:
        """Finish due batches, then start queued ones in FIFO order into free slots."""
        for batch in [b for b in self._importing if b.due is not None and b.due <= now]:
            self._importing.remove(batch)
            batch.status = "Failed" if batch.failure is not None else "Complete"
            batch.finished = now
            if not self.settings.keep_uploads:
                batch.payload = b""
            log.debug("sandbox_batch_finished", batch_id=batch.batch_id, status=batch.status)
        while self._queued and len(self._importing) < self.settings.max_importing:
            batch = self._queued.popleft()
            batch.status, batch.started = "Importing", now
            batch.start_sequence = self._starts
            self._starts += 1
            self._importing.append(batch)
            self.peak_importing = max(self.peak_importing, len(self._importing))
            log.debug("sandbox_batch_started", batch_id=batch.batch_id)

    def _process(self, batch: Batch) -> None:
        """Import the rows (outside the queue lock) and set when the simulated import ends."""
        settings = self.settings
        rules = settings.rules
        report: RowReport | None = None
        failure: str | None = None
        # Strict: a doomed batch fails half-way, its first rows imported and counted.
        limit = max(1, batch.payload.count(b"\n") // 2) if batch.doomed else None
        if batch.doomed and not rules.failed_batches_carry_rows:
            failure = "Import failed: system error"
        else:
            request = batch.request
            try:
                if isinstance(request, ImportRequest):
                    report = process(
                        batch.payload,
                        self.db,
                        request,
                        settings.unknown_column,
                        rules,
                        limit=limit,
                    )
                else:
                    report = request.process(
                        batch.payload, settings.unknown_column, rules, limit=limit
                    )
                if batch.doomed:
                    failure = "Import failed: system error"
            except BatchFailedError as exc:
                failure = str(exc)
            except Exception as exc:  # a sandbox bug must fail the batch, never the thread
                log.exception("sandbox_batch_crashed", batch_id=batch.batch_id)
                failure = f"Import failed: internal error ({type(exc).__name__})"
        with self._cond:
            assert batch.started is not None
            batch.report, batch.failure = report, failure
            batch.due = batch.started + self.speed.duration(report.rows if report else 0)
            self._cond.notify_all()

    def set_speed(self, speed: Speed) -> None:
        """Change the import speed now; batches already importing are re-timed from their start."""
        with self._cond:
            self.speed = speed
            for batch in self._importing:
                if batch.due is not None and batch.started is not None:
                    rows = batch.report.rows if batch.report else 0
                    batch.due = batch.started + speed.duration(rows)
            self._cond.notify_all()
