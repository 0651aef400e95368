"""Another integration on the same instance: it keeps jobs of its own in the import queue.

Marketo's import queue (2 importing, 10 queued) and its call limits are shared with every other
integration on the instance: a CRM sync, a webinar connector. In production the daemon never has the
queue to itself: its creates meet 1016 when the others fill the queue, its jobs wait behind theirs,
and a list one of them imports to answers 1019. This thread plays such a neighbour inside the
sandbox: it keeps `jobs` jobs of its own queued or importing, each of `rows` leads (one of them at a
time into `list_id`, if set, as a list sync would), and creates the next as soon as one ends (it
learns of an end at once, which presses harder than a real neighbour could); a create refused (1016,
1019, a call limit) is tried again `poll_seconds` later. It spends one status call every
`poll_seconds`. Its calls go through the sandbox's call limits like anyone's, so they use part of
the 100 calls per window, but are counted apart from the API's: what the daemon is answered stays
readable in `/sandbox/stats.json`.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import structlog

from dropbox_importer.sandbox.imports import ImportQueue, ListInProgressError
from dropbox_importer.sandbox.limits import Admission, CallLimiter
from dropbox_importer.sandbox.rows import ImportRequest
from dropbox_importer.sandbox.settings import OtherIntegrationSettings

log = structlog.get_logger(__name__)

OWNER = "other"
# How often the neighbour looks whether it may create a job: it reacts to a freed slot about as
# fast as a well-written client would.
TICK_SECONDS = 0.05


def payload(job: int, rows: int) -> bytes:
    """A CSV of `rows` leads the neighbour's job `job` imports (addresses of its own)."""
    lines = ["email,firstName,leadSource"]
    lines += [f"other-{job:06d}-{n:05d}@example.com,Other,other integration" for n in range(rows)]
    return ("\n".join(lines) + "\n").encode()


class OtherIntegration:
    """The neighbour's thread; `settings` may change while it runs (`update`)."""

    def __init__(
        self,
        settings: OtherIntegrationSettings,
        queue: ImportQueue,
        limiter: CallLimiter,
        *,
        list_busy_from: tuple[str, ...] = (),
        partition: str = "",
    ) -> None:
        """A neighbour creating into `queue`, its calls admitted by `limiter`."""
        self.settings = settings
        self._queue = queue
        self._limiter = limiter
        self._list_busy_from = list_busy_from
        self._partition = partition
        self._cond = threading.Condition()
        self._stopping = False
        self._mine: list[int] = []  # its batches not yet seen ended, oldest first
        # Its next job into the list waits until this (the clock's time): a list sync learns
        # that its list job ended at its next status call, then creates the next one.
        self._list_free_at = 0.0
        self._jobs = 0
        self.counts: Counter[str] = Counter()
        self._thread = threading.Thread(target=self._run, name="sandbox-other", daemon=True)

    def start(self) -> None:
        """Start the thread (it idles while `jobs` is 0)."""
        self._thread.start()

    def stop(self) -> None:
        """Stop creating; its jobs in the queue run to their end."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def update(self, settings: OtherIntegrationSettings) -> None:
        """Change the load from now on; jobs already created run on."""
        with self._cond:
            self.settings = settings
            self._cond.notify_all()
        log.info("sandbox_other_integration_changed", jobs=settings.jobs, rows=settings.rows)

    def to_json(self) -> dict[str, Any]:
        """Its settings, its jobs in flight and what it was answered."""
        with self._cond:
            s = self.settings
            return {
                "jobs": s.jobs,
                "rows": s.rows,
                "list_id": s.list_id,
                "poll_seconds": s.poll_seconds,
                "in_flight": len(self._mine),
                "counts": dict(self.counts),
            }

    def _run(self) -> None:
        next_poll = next_create = 0.0
        clock = self._queue.clock
        while True:
            with self._cond:
                if self._stopping:
                    return
                settings = self.settings
                if settings.jobs == 0 and not self._mine:
                    self._cond.wait()
                    continue
            self._forget_ended()
            now = clock()
            if now >= next_poll and self._mine:
                self._poll()
                next_poll = now + settings.poll_seconds
            while now >= next_create and len(self._mine) < settings.jobs:
                if not self._create(settings):
                    # Refused (1016, 1019, a limit): tried again at its polling pace, as a
                    # client that backs off would.
                    next_create = now + settings.poll_seconds
                    break
            with self._cond:
                if not self._stopping:
                    self._cond.wait(TICK_SECONDS)

    def _admitted(self) -> Admission | None:
        """One call of ours through the instance's limits (None: refused, counted)."""
        admitted = self._limiter.admit()
        if isinstance(admitted, Admission):
            return admitted
        self.counts[admitted] += 1
        return None

    def _create(self, settings: OtherIntegrationSettings) -> bool:
        """One create; True when it queued a job."""
        admitted = self._admitted()
        if admitted is None:
            return False
        self._jobs += 1
        # One job of its own for the list at a time, as a client mindful of 1019 does, the
        # next one after a status call saw the last one end.
        listed = (
            settings.list_id is not None
            and self._queue.clock() >= self._list_free_at
            and not any(self._queue.list_of(b) == settings.list_id for b in self._mine)
        )
        list_id = settings.list_id if listed else None
        request = ImportRequest("csv", "email", list_id, self._partition)
        created = None
        refused = "1016"  # what None from the queue means: no room
        try:
            created = self._queue.create(
                request,
                payload(self._jobs, settings.rows),
                False,
                list_busy_from=self._list_busy_from,
                owner=OWNER,
            )
        except ListInProgressError:
            refused = "1019"
        finally:
            # As in Marketo, a refused create does not count against the limits.
            admitted.release(counted=created is not None)
        if created is None:
            self.counts[refused] += 1
            return False
        self.counts["created"] += 1
        with self._cond:
            self._mine.append(created.batch_id)
        return True

    def _poll(self) -> None:
        """One status call of its own, loading the call window as a real neighbour does."""
        admitted = self._admitted()
        if admitted is not None:
            admitted.release(counted=True)
            self.counts["status"] += 1

    def _forget_ended(self) -> None:
        """Its jobs that ended free their place at once: it replaces them without delay, but
        its list job only `poll_seconds` later (the status call that would have seen it end),
        so that the list is free in between, as it is between a real list sync's jobs."""
        with self._cond:
            ended = [b for b in self._mine if self._queue.ended(b)]
            if any(self._queue.list_of(b) is not None for b in ended):
                self._list_free_at = self._queue.clock() + self.settings.poll_seconds
            self._mine = [b for b in self._mine if b not in ended]
