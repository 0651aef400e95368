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

log = structlog.get_logger(__name__)


class Claimer:
    """Claims due files of any drop box and queues them with `enqueue(dropbox, file_id)`."""

    def __init__(self, journal: Journal, enqueue: Callable[[str, int], None]) -> None:
        self._journal = journal
        self._enqueue = enqueue

    def take(self, box: Box, candidate: Candidate) -> None:
        """Claim a settled file into processing/ and queue it for its instance."""
        bound = log.bind(dropbox=box.config.name, file=str(candidate.path))
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
            return
        box.tracker.forget(candidate.path)
        box.still_open.discard((candidate.path, _inode(claimed)))
        if candidate.marker is not None:
            with contextlib.suppress(OSError):
                candidate.marker.unlink()
        self.register(box, claimed, candidate.seen_at)

    def register(self, box: Box, claimed: Path, seen_at: datetime | None = None) -> int:
        """Record a file now in processing/ in the journal and queue it; return its id.

        `seen_at`: when the daemon first saw it in inbox/ (unknown for a file adopted).
        """
        route = route_label(PurePosixPath(claimed.parent.relative_to(box.layout.processing)))
        size, sha256 = file_digest(claimed)
        modified = datetime.fromtimestamp(claimed.stat().st_mtime, UTC)
        inbox_path = box.layout.inbox / route / claimed.name
        file_id = self._journal.record_claim(
            box.config.name,
            route,
            claimed.name,
            inbox_path,
            claimed,
            size,
            sha256,
            seen_at=seen_at,
            modified_at=modified,
        )
        log.info(
            "file_claimed",
            dropbox=box.config.name,
            route=route,
            file=claimed.name,
            size=size,
        )
        self._enqueue(box.config.name, file_id)
        return file_id


def _inode(path: Path) -> int:
    try:
        return path.lstat().st_ino
    except OSError:
        return -1
