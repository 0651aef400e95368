"""A settled inbox file -> processing/ -> the journal -> its instance's queue.

The main loop hands every file the readiness tracker says is due to `Claimer.take`: the move
itself is `dropbox.layout.claim` (the only code that moves files); this module decides what
happens around it (set a link aside once, forget a vanished file, record the claim, queue it).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

import structlog

from dropbox_importer.dropbox.layout import FileVanished, NotARegularFile, claim
from dropbox_importer.dropbox.results import file_digest
from dropbox_importer.dropbox.routes import route_label
from dropbox_importer.dropbox.writers import StillOpen
from dropbox_importer.pipeline.boxes import Box
from dropbox_importer.pipeline.journal import Journal
from dropbox_importer.pipeline.ready import Candidate
from dropbox_importer.pipeline.runlog import RunLog

log = structlog.get_logger(__name__)


class Claimer:
    """Claims due files of any drop box and queues them with `enqueue(dropbox, file_id)`."""

    def __init__(
        self,
        journal: Journal,
        enqueue: Callable[[str, int], None],
        runlog: RunLog | None = None,
    ) -> None:
        self._journal = journal
        self._enqueue = enqueue
        self._runlog = runlog
        self._blocked: set[tuple[str, str]] = set()  # (drop box, route folder) claims fail in

    def take(self, box: Box, candidate: Candidate) -> None:
        """Claim a settled file into processing/ and queue it for its instance."""
        route = _route_of(box.layout.inbox, candidate.path)
        relative = f"{route}/{candidate.path.name}" if route else candidate.path.name
        bound = log.bind(dropbox=box.config.name, route=route, file=relative)
        try:
            claimed = claim(box.layout, candidate.path, check_writers=box.writers.on)
        except StillOpen:
            # Not claimed: a full quiet time again (or its writer's close) before the next try.
            box.tracker.defer(candidate.path, time.monotonic())
            key = (candidate.path, _inode(candidate.path))
            if key not in box.still_open:
                box.still_open.add(key)
                bound.info("file_open_for_writing", reason="a process still writes it: waiting")
            return
        except NotARegularFile as exc:
            box.tracker.forget(candidate.path)
            key = (candidate.path, _inode(candidate.path))
            if key not in box.set_aside:
                box.set_aside.add(key)
                bound.warning("not_a_regular_file", reason=str(exc))
            return
        except FileVanished:
            box.tracker.forget(candidate.path)
            return
        except OSError as exc:
            bound.error("claim_failed", error=str(exc))
            self._folder_blocked(box.config.name, route, exc)
            return
        if (box.config.name, route) in self._blocked:
            self._blocked.discard((box.config.name, route))
            if self._runlog is not None:
                self._runlog.folder_cleared(box.config.name, route)
        box.tracker.forget(candidate.path)
        box.still_open.discard((candidate.path, _inode(claimed)))
        if candidate.marker is not None:
            with contextlib.suppress(OSError):
                candidate.marker.unlink()
        self.register(box, claimed, candidate.seen_at)

    def _folder_blocked(self, dropbox: str, route: str, exc: OSError) -> None:
        """Remember (in the journal, for `status`) that claims out of this folder fail."""
        if self._runlog is None or (dropbox, route) in self._blocked:
            return
        self._blocked.add((dropbox, route))
        reason = exc.strerror or str(exc)
        self._runlog.folder_blocked(
            dropbox,
            route,
            f"{reason}: the daemon's user needs write permission on the folder (see docs/sftp.md)",
        )

    def register(
        self,
        box: Box,
        claimed: Path,
        seen_at: datetime | None = None,
        *,
        adopted: bool = False,
    ) -> int:
        """Record a file now in processing/ in the journal and queue it; return its id.

        `seen_at`: when the daemon first saw it in inbox/ (unknown for a file adopted).
        `adopted`: found in processing/ at a start, claimed by a run that died before
        recording it (the event says so).
        """
        route = route_label(PurePosixPath(claimed.parent.relative_to(box.layout.processing)))
        size, sha256 = file_digest(claimed)
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
        log.info(
            "file_claimed",
            dropbox=box.config.name,
            route=route,
            file=f"{route}/{claimed.name}" if route else claimed.name,
            file_id=file_id,
            size=size,
            **({"adopted": True} if adopted else {}),
        )
        self._enqueue(box.config.name, file_id)
        return file_id


def _route_of(inbox: Path, path: Path) -> str:
    """The route folder of an inbox entry, as the journal writes it ("" for inbox/ itself)."""
    try:
        return route_label(PurePosixPath(path.parent.relative_to(inbox)))
    except ValueError:
        return ""


def _inode(path: Path) -> int:
    try:
        return path.lstat().st_ino
    except OSError:
        return -1
