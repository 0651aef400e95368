"""Files written to after their claim: wait for the writer, then import the file again, whole.

A writer the claim could not see (one on another host of a network share, or any writer when
leases are unavailable) may go on writing a claimed file: in processing/, or after it settled in
done/ or failed/. Nothing may then look complete. So:

- a change found in processing/ (the submitter's check after cutting, the settler's before
  deciding) makes the file CHANGED; once it is quiet again and no writer has it open, a new
  round imports the whole file again (bulk import is insert-or-update, so rows sent twice are
  harmless) and its result describes the file as it is then;
- a settled file is watched for `settled_watch_seconds`: a change moves it back to processing/,
  removes its now wrong result files and goes the same way;
- a file changed past that time is not noticed; its result.json says what was imported
  (`imported`: the size, digest and last line of what was read), so the lines after it are
  known not to have been.

State lives in the journal (CHANGED, the round number); the waits here are rebuilt by
`recover()` after a restart.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import structlog

from dropbox_importer.config import DropboxConfig
from dropbox_importer.dropbox.layout import RESULT_SUFFIXES, DropboxLayout, unique_path
from dropbox_importer.dropbox.results import file_digest
from dropbox_importer.dropbox.writers import WriterCheck, Writers, writers_of
from dropbox_importer.pipeline.journal import Journal
from dropbox_importer.pipeline.ready import ends_with_line_end
from dropbox_importer.pipeline.records import FileRecord, PartRecord
from dropbox_importer.pipeline.states import FileState

log = structlog.get_logger(__name__)

# How often files waiting in processing/ and watched settled files are looked at.
WAITING_CHECK_SECONDS = 0.2
WATCH_CHECK_SECONDS = 1.0
# After an unexpected error, a waiting file is looked at again this much later.
RETRY_SECONDS = 30.0

Stamp = tuple[int, int, int]  # size, mtime_ns, inode


class BoxView(Protocol):
    """What rounds needs of a drop box at run time."""

    config: DropboxConfig
    layout: DropboxLayout
    writers: WriterCheck


def stamp_of(st: os.stat_result) -> Stamp:
    """What tells a change: size, modification time and inode."""
    return st.st_size, st.st_mtime_ns, st.st_ino


@dataclass
class _Waiting:
    dropbox: str
    stamp: Stamp | None
    still_since: float
    retry_at: float = 0.0  # after a failed look, not before this


@dataclass
class _Watch:
    dropbox: str
    path: Path
    stamp: Stamp
    until: float


class Rounds:
    """Waits for late writers and starts the next round; watches settled files for a while."""

    def __init__(
        self,
        journal: Journal,
        *,
        boxes: Callable[[str], BoxView | None],
        requeue: Callable[[str, int], None],
        settle: Callable[[int, str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._journal = journal
        self._boxes = boxes
        self._requeue = requeue
        self._settle = settle
        self._clock = clock
        self._lock = threading.Lock()
        self._waiting: dict[int, _Waiting] = {}
        self._watched: dict[int, _Watch] = {}
        self._next_waiting = 0.0
        self._next_watch = 0.0

    @property
    def waiting(self) -> int:
        """Files in processing/ waiting for their writer before another round."""
        with self._lock:
            return len(self._waiting)

    def changed(self, file_id: int, where: str) -> None:
        """The claimed file changed (thread-safe): record it CHANGED and wait for its writer."""
        record = self._journal.get(file_id)
        if record.state is not FileState.CHANGED:
            self._journal.transition(file_id, FileState.CHANGED, where)
        with self._lock:
            self._waiting[file_id] = _Waiting(record.dropbox, None, self._clock())
        log.warning(
            "file_changed_after_claim",
            dropbox=record.dropbox,
            route=record.route,
            file=record.name,
            round=record.round,
            where=where,
        )

    def settled(self, record: FileRecord) -> None:
        """Watch a file just settled for late writes, for its drop box's watch time."""
        box = self._boxes(record.dropbox)
        if box is None or box.config.settled_watch_seconds <= 0:
            return
        if record.destination_path is None or not record.state.terminal:
            return
        try:
            st = os.lstat(record.destination_path)
        except OSError:
            return
        remaining = box.config.settled_watch_seconds
        if record.finished_at is not None:
            age = (datetime.now(UTC) - record.finished_at).total_seconds()
            remaining -= max(age, 0.0)
        if remaining <= 0:
            return
        stamp = stamp_of(st)
        if not _as_described(record, st):
            # Written to between the settle's last look and now (the move itself takes a
            # while): the first look at it finds a change and imports it again.
            stamp = (-1, -1, -1)
        watch = _Watch(record.dropbox, record.destination_path, stamp, self._clock())
        watch.until += remaining
        with self._lock:
            self._watched[record.id] = watch

    def tick(self, now: float) -> None:
        """Look at the waiting files and the watched ones (called by the daemon's loop)."""
        if now >= self._next_waiting:
            self._next_waiting = now + WAITING_CHECK_SECONDS
            with self._lock:
                waiting = list(self._waiting.items())
            for file_id, wait in waiting:
                if now < wait.retry_at:
                    continue
                try:
                    self._look_at_waiting(file_id, wait, now)
                except Exception:  # one file's problem never stops the others
                    wait.retry_at = now + RETRY_SECONDS
                    log.exception("round_check_failed", file_id=file_id, retry_in=RETRY_SECONDS)
        if now >= self._next_watch:
            self._next_watch = now + WATCH_CHECK_SECONDS
            with self._lock:
                watched = list(self._watched.items())
            for file_id, watch in watched:
                try:
                    self._look_at_watched(file_id, watch, now)
                except Exception:  # a watch is a courtesy: given up, never a crash loop
                    self._forget_watch(file_id)
                    log.exception("settled_watch_failed", file_id=file_id)

    def recover(self, watch_seconds: float) -> None:
        """After a start: wait again for CHANGED files; watch the files settled within the
        last `watch_seconds` (the longest watch time of any drop box)."""
        for record in self._journal.unfinished():
            if record.state is FileState.CHANGED:
                with self._lock:
                    self._waiting[record.id] = _Waiting(record.dropbox, None, self._clock())
        if watch_seconds <= 0:
            return
        since = datetime.now(UTC) - timedelta(seconds=watch_seconds)
        for record in self._journal.finished_since(since):
            self.settled(record)

    # -- files in processing/ ---------------------------------------------------------------

    def _forget_waiting(self, file_id: int) -> None:
        with self._lock:
            self._waiting.pop(file_id, None)

    def _look_at_waiting(self, file_id: int, wait: _Waiting, now: float) -> None:
        record = self._journal.get(file_id)
        box = self._boxes(record.dropbox)
        if record.state is not FileState.CHANGED or box is None:
            self._forget_waiting(file_id)
            return
        path = record.processing_path
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            if self._move_back(record):
                return
            self._forget_waiting(file_id)
            self._settle(file_id, vanished_reason(record, self._journal.parts(file_id)))
            return
        if stamp_of(st) != wait.stamp:
            wait.stamp, wait.still_since = stamp_of(st), now
            return
        quiet = now - wait.still_since
        if quiet < box.config.settle_seconds:
            return
        visible = box.writers.visible(st)
        if visible and writers_of(path) is Writers.OPEN:
            wait.still_since = now  # still being written: a full quiet time again
            return
        unterminated = not visible and not ends_with_line_end(path)
        if unterminated and quiet < box.config.unterminated_settle_seconds:
            return
        size, sha256 = file_digest(path)
        if (size, st.st_mtime_ns) != (st.st_size, os.lstat(path).st_mtime_ns):
            wait.stamp = None  # written while we read it
            return
        modified = datetime.fromtimestamp(st.st_mtime, UTC)
        number = self._journal.start_round(file_id, size, sha256, modified)
        self._forget_waiting(file_id)
        log.info(
            "file_round_started",
            dropbox=record.dropbox,
            route=record.route,
            file=record.name,
            round=number,
            size=size,
        )
        self._requeue(record.dropbox, file_id)

    def _move_back(self, record: FileRecord) -> bool:
        """Move a reopened file from done/ or failed/ back to processing/, its old results
        removed (again, when an error or a crash interrupted it); False when it is not there."""
        destination = record.destination_path
        if destination is None or not os.path.lexists(destination):
            return False
        record.processing_path.parent.mkdir(parents=True, exist_ok=True)
        destination.rename(record.processing_path)
        _remove_results(destination)
        return True

    # -- settled files ----------------------------------------------------------------------

    def _forget_watch(self, file_id: int) -> None:
        with self._lock:
            self._watched.pop(file_id, None)

    def _look_at_watched(self, file_id: int, watch: _Watch, now: float) -> None:
        try:
            st = os.lstat(watch.path)
        except FileNotFoundError:
            self._forget_watch(file_id)  # expired, retried, or removed by an operator
            return
        if stamp_of(st) == watch.stamp:
            if now >= watch.until:
                self._forget_watch(file_id)
            return
        self._forget_watch(file_id)
        record = self._journal.get(file_id)
        box = self._boxes(record.dropbox)
        if box is None or not record.state.terminal or record.destination_path != watch.path:
            return
        self._reopen(record, box)

    def _reopen(self, record: FileRecord, box: BoxView) -> None:
        """Move a settled file that changed back to processing/, its old results removed."""
        assert record.destination_path is not None
        settled = record.destination_path
        outcome = box.layout.done if _inside(settled, box.layout.done) else box.layout.failed
        route = settled.parent.relative_to(outcome)
        target = unique_path(box.layout.processing / route / settled.name, os.path.lexists)
        where = f"in {outcome.name}/ after it settled"
        # Recorded before the move, like every move: if the move fails (or a crash comes in
        # between), the wait for the writer finds the file still there and moves it then.
        self._journal.reopen(record.id, target, f"changed {where}")
        log.warning(
            "file_reopened",
            dropbox=record.dropbox,
            route=record.route,
            file=record.name,
            was=str(settled),
        )
        self.changed(record.id, where)
        self._move_back(self._journal.get(record.id))


def _as_described(record: FileRecord, st: os.stat_result) -> bool:
    """True if `st` is of the bytes the file's round read: its size and its mtime then."""
    if record.dropped_at is None:
        return True  # a journal from before mtimes were kept: nothing to compare
    modified = datetime.fromtimestamp(st.st_mtime, UTC)
    return (st.st_size, modified) == (record.size, record.dropped_at)


def round_parts_dir(parts_root: Path, record: FileRecord) -> Path:
    """Where the file's current round is cut into parts (and its prepared facts kept)."""
    folder = parts_root / str(record.id)
    return folder if record.round == 1 else folder / f"round-{record.round}"


def _remove_results(original: Path) -> None:
    """Remove the result files beside a settled original: they describe bytes now gone."""
    for suffix in RESULT_SUFFIXES:
        with contextlib.suppress(FileNotFoundError):
            original.with_name(original.name + suffix).unlink()


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
    except ValueError:
        return False
    return True


def vanished_reason(record: FileRecord, parts: Sequence[PartRecord]) -> str:
    """What the partner reads when a claimed file disappeared: which lines were imported."""
    last = record.details.get("last_line")
    sent = [p for p in parts if p.round == record.round and p.batch_id is not None]
    if sent and last:
        batches = ", ".join(str(p.batch_id) for p in sent)
        done = (
            f"lines 2 to {last} of it, as it was then, had been sent to Marketo (batch "
            f"{batches}; rows failed or left out excepted) and no line after them"
        )
    else:
        done = "none of its rows had been sent to Marketo"
    return (
        f"the file disappeared from processing/ before it could be settled; {done}: drop it again"
    )
