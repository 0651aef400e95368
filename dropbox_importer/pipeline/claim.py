"""A settled inbox file -> processing/ -> the journal -> its instance's queue.

The main loop hands every file the readiness tracker says is due to `Claimer.take`. The move
itself is `dropbox.layout.claim` (the only code that moves files, on open folder descriptors);
this module decides what happens around it: a link is set aside once, a vanished file
forgotten, a folder the daemon cannot use reported once (`Problems`: the log, and `status`)
and tried again at the next rescan. Recording the claim reads the
whole file for its digest, so it runs on a worker (`Workers`), never on the main loop that pings
systemd's watchdog; a file the daemon cannot read is recorded all the same and fails with a
reason the partner reads in result.json.
"""

from __future__ import annotations

import contextlib
import errno
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

import structlog

from dropbox_importer.dropbox.layout import (
    ClaimCheck,
    FileVanished,
    NotARegularFile,
    ProcessingUnusable,
    claim,
)
from dropbox_importer.dropbox.results import file_digest
from dropbox_importer.dropbox.routes import route_label
from dropbox_importer.dropbox.writers import StillOpen
from dropbox_importer.pipeline.boxes import Box
from dropbox_importer.pipeline.journal import Journal
from dropbox_importer.pipeline.problems import Problems, explain
from dropbox_importer.pipeline.ready import Candidate
from dropbox_importer.pipeline.reasons import unreadable_reason
from dropbox_importer.threads import Workers

log = structlog.get_logger(__name__)


class Claimer:
    """Claims due files of any drop box and queues them with `enqueue(dropbox, file_id)`.

    `reject(file_id, reason)` fails a recorded file without submitting it (one that cannot be
    read). `checks` run on each file just before it moves (see `dropbox.layout.ClaimCheck`).
    """

    def __init__(
        self,
        journal: Journal,
        enqueue: Callable[[str, int], None],
        *,
        reject: Callable[[int, str], None],
        problems: Problems,
        workers: Workers,
        checks: Sequence[ClaimCheck] = (),
        guard: Callable[[], None] = lambda: None,
    ) -> None:
        self._journal = journal
        self._enqueue = enqueue
        self._reject = reject
        self._problems = problems
        self._workers = workers
        self._checks = tuple(checks)
        # Runs right before the rename; raises once this daemon no longer leads (leadership.py).
        self._guard = guard
        # Files in processing/ whose record a worker has yet to write (see `registering`).
        self._registering: set[Path] = set()
        self._registering_lock = threading.Lock()

    def take(self, box: Box, candidate: Candidate) -> None:
        """Claim a settled file into processing/ and have it recorded and queued.

        Raises LeadershipLost (from the guard) when this daemon may no longer move files.
        """
        self._guard()
        path = candidate.path
        name = box.config.name
        route = _route_of(box.layout.inbox, path)
        relative = f"{route}/{path.name}" if route else path.name
        bound = log.bind(dropbox=name, route=route, file=relative)
        # Tried again only when a rescan (or an event) notes it again: never in a tight loop.
        box.tracker.forget(path)
        try:
            claimed = claim(box.layout, path, (*self._checks, *box.claim_checks))
        except StillOpen:
            # Not claimed: tracked afresh, a full quiet time (or its writer's close) away.
            box.tracker.defer(path, time.monotonic(), candidate.seen_at)
            key = (path, _inode(path))
            if key not in box.still_open:
                box.still_open.add(key)
                bound.info("file_open_for_writing", reason="a process still writes it: waiting")
            return
        except NotARegularFile as exc:
            key = (path, _inode(path))
            if key not in box.set_aside:
                box.set_aside.add(key)
                bound.warning("not_a_regular_file", reason=str(exc))
            return
        except FileVanished:
            return
        except ProcessingUnusable as exc:
            reason = explain(exc.error, exc.folder, doing="create or open")
            self._problems.report(name, route, exc.folder, "claim", reason)
            return
        except OSError as exc:
            reason = (
                f"cannot move a file out of {path.parent}: {exc.strerror or exc}: the daemon's "
                "user needs write permission on the folder (see docs/sftp.md)"
            )
            if exc.errno == errno.EXDEV:
                reason = (
                    f"{path.parent} is on another filesystem than processing/: keep the whole "
                    "drop box on one filesystem so files move without being copied"
                )
            self._problems.report(name, route, path.parent, "claim", reason)
            return
        self._problems.resolve_folder(name, path.parent, "claim")
        box.still_open.discard((path, _inode(claimed)))
        if candidate.marker is not None:
            with contextlib.suppress(OSError):
                candidate.marker.unlink()
        self.register_later(box, claimed, seen_at=candidate.seen_at)

    def register_later(
        self,
        box: Box,
        claimed: Path,
        *,
        adopted: bool = False,
        seen_at: datetime | None = None,
    ) -> None:
        """Record and queue a file now in processing/, on a worker (the digest reads it all).

        `seen_at`: when the daemon first saw it in inbox/ (unknown for a file adopted).
        """
        with self._registering_lock:
            self._registering.add(claimed)

        def register() -> None:
            try:
                self.register(box, claimed, adopted=adopted, seen_at=seen_at)
            finally:
                with self._registering_lock:
                    self._registering.discard(claimed)

        if not self._workers.submit(
            "register", register, dropbox=box.config.name, file=claimed.name
        ):  # stopping: the next start adopts it from processing/
            with self._registering_lock:
                self._registering.discard(claimed)

    def registering(self) -> frozenset[Path]:
        """Files in processing/ handed to a worker whose journal record is not written yet."""
        with self._registering_lock:
            return frozenset(self._registering)

    def register(
        self,
        box: Box,
        claimed: Path,
        *,
        adopted: bool = False,
        seen_at: datetime | None = None,
    ) -> int:
        """Record a file now in processing/ in the journal and queue it; return its id.

        `adopted`: found in processing/ at a start, claimed by a run that died before
        recording it (the event says so). A file its digest cannot be read from is recorded
        all the same (size from lstat, no sha256) and failed at once with the reason.
        """
        route = route_label(PurePosixPath(claimed.parent.relative_to(box.layout.processing)))
        relative = f"{route}/{claimed.name}" if route else claimed.name
        unreadable: OSError | None = None
        try:
            size, sha256 = file_digest(claimed)
        except FileNotFoundError:
            log.warning("file_vanished", dropbox=box.config.name, route=route, file=relative)
            return -1
        except OSError as exc:
            unreadable = exc
            size, sha256 = _size(claimed), ""
        inbox_path = box.layout.inbox / route / claimed.name
        try:
            # A rename keeps the mtime: when the partner's upload last wrote the file.
            dropped: datetime | None = datetime.fromtimestamp(claimed.stat().st_mtime, UTC)
        except OSError:
            dropped = None
        file_id = self._journal.record_claim(
            box.config.name,
            route,
            claimed.name,
            inbox_path,
            claimed,
            size,
            sha256,
            dropped_at=dropped,
            seen_at=seen_at,
        )
        context = {"dropbox": box.config.name, "route": route, "file": relative}
        log.info(
            "file_claimed",
            **context,
            file_id=file_id,
            size=size,
            **({"adopted": True} if adopted else {}),
        )
        if unreadable is not None:
            reason = unreadable_reason(unreadable)
            log.info("file_rejected", **context, file_id=file_id, reason=reason)
            self._reject(file_id, reason)
        else:
            self._enqueue(box.config.name, file_id)
        return file_id

    @staticmethod
    def prune(box: Box) -> None:
        """Forget set-aside entries that are gone or were replaced (keeps the set bounded)."""
        box.set_aside = {key for key in box.set_aside if _inode(key[0]) == key[1]}


def _route_of(inbox: Path, path: Path) -> str:
    """The route folder of an inbox entry, as the journal writes it ("" for inbox/ itself)."""
    try:
        return route_label(PurePosixPath(path.parent.relative_to(inbox)))
    except ValueError:
        return ""


def _size(path: Path) -> int:
    try:
        return path.lstat().st_size
    except OSError:
        return 0


def _inode(path: Path) -> int:
    try:
        return path.lstat().st_ino
    except OSError:
        return -1
