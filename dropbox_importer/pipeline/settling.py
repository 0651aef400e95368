"""Handing finished files to the settler: each file once at a time, on workers, retried.

A settle can fail for a while (a read-only or full `done/`, a download that failed): the file
then waits in processing/ (or SETTLING, its destination recorded) and is tried again with a
doubling delay, up to five minutes. The first failure of a folder is reported once
(`Problems`, stage `settle`); the retries log at debug until the cause changes.

Bounded memory: a file id is held only while its settle runs or waits for a retry.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable

import structlog

from dropbox_importer.dropbox.layout import SettleError
from dropbox_importer.pipeline.journal import Journal
from dropbox_importer.pipeline.problems import Problems
from dropbox_importer.pipeline.reasons import FileChanged
from dropbox_importer.pipeline.records import FileRecord
from dropbox_importer.pipeline.settle import Settler
from dropbox_importer.threads import Workers

log = structlog.get_logger(__name__)

RETRY_FIRST_SECONDS = 1.0
RETRY_MAX_SECONDS = 300.0


class SettleQueue:
    """Runs `settler.settle` for finished files on `workers`; `settled(record)` after each."""

    def __init__(
        self,
        settler: Settler,
        journal: Journal,
        workers: Workers,
        *,
        problems: Problems,
        settled: Callable[[FileRecord], None],
        clock: Callable[[], float] = time.monotonic,
        on_changed: Callable[[int, str], None] | None = None,
    ) -> None:
        self._settler = settler
        self._journal = journal
        self._workers = workers
        self._problems = problems
        self._settled = settled
        self._on_changed = on_changed
        self._clock = clock
        self._lock = threading.Lock()
        self._in_hand: set[int] = set()
        # file id -> (when to try again, tries failed, the rejection, the last error)
        self._retries: dict[int, tuple[float, int, str | None, str]] = {}

    @property
    def held(self) -> int:
        """File ids held now (settling or waiting for a retry): bounded by the files in flight."""
        with self._lock:
            return len(self._in_hand | self._retries.keys())

    def hand(self, file_id: int, rejection: str | None) -> None:
        """Settle the file on a worker unless its settle is already running or waiting."""
        with self._lock:
            if file_id in self._in_hand or file_id in self._retries:
                return
            self._in_hand.add(file_id)
        if not self._workers.submit("settle", lambda: self._settle(file_id, rejection),
                                    file_id=file_id):  # fmt: skip
            with self._lock:
                self._in_hand.discard(file_id)

    def retry_due(self) -> None:
        """Hand over again every file whose retry time has come (called by the main loop)."""
        now = self._clock()
        with self._lock:
            due = [(f, r) for f, (at, _, r, _) in self._retries.items() if at <= now]
            for file_id, _ in due:
                self._in_hand.add(file_id)
                # Parked until this try ends; a failure sets the next time.
                _, tries, rejection, last = self._retries[file_id]
                self._retries[file_id] = (float("inf"), tries, rejection, last)
        for file_id, rejection in due:
            run = functools.partial(self._settle, file_id, rejection)
            if not self._workers.submit("settle", run, file_id=file_id):
                with self._lock:
                    self._in_hand.discard(file_id)

    def _settle(self, file_id: int, rejection: str | None) -> None:
        try:
            self._settler.settle(file_id, rejection)
        except FileChanged:
            # Written to since its round began: another round, not a failure (pipeline.rounds).
            with self._lock:
                self._retries.pop(file_id, None)
            if self._on_changed is not None:
                self._on_changed(file_id, "in processing/ before it settled")
            return
        except Exception as exc:
            self._failed(file_id, rejection, exc)
            return
        finally:
            with self._lock:
                self._in_hand.discard(file_id)
        with self._lock:
            self._retries.pop(file_id, None)
        record = self._journal.get(file_id)
        if record.destination_path is not None:
            self._problems.resolve_folder(record.dropbox, record.destination_path.parent, "settle")
        self._settled(record)

    def _failed(self, file_id: int, rejection: str | None, exc: Exception) -> None:
        with self._lock:
            _, tries, _, last = self._retries.get(file_id, (0.0, 0, None, ""))
            tries += 1
            delay = min(RETRY_FIRST_SECONDS * 2 ** (tries - 1), RETRY_MAX_SECONDS)
            self._retries[file_id] = (self._clock() + delay, tries, rejection, str(exc))
        record = self._journal.get(file_id)
        if isinstance(exc, SettleError) and exc.folder is not None:
            self._problems.report(record.dropbox, record.route, exc.folder, "settle", str(exc))
        with contextlib.suppress(Exception):  # for status; a failing journal is logged below
            self._journal.set_note(
                file_id,
                f"cannot be settled yet ({exc}); tried {tries} time(s), next in {delay:g} s",
            )
        first = str(exc) != last
        (log.error if first else log.debug)(
            "settle_move_failed" if isinstance(exc, SettleError) else "settle_failed",
            dropbox=record.dropbox,
            route=record.route,
            file=record.relative,
            file_id=file_id,
            reason=str(exc),
            retry_in_seconds=delay,
            tries=tries,
        )

    def forget(self, file_id: int) -> None:
        """Drop a file's pending retry (its drop box was removed)."""
        with self._lock:
            self._retries.pop(file_id, None)
