"""What a start does before taking new files: resume every file the journal left unfinished.

State lives in the journal, never only in memory, so a restart (or a kill -9) continues where
the last run stopped: batches still running are followed again, files not fully submitted are
queued again, settles that were under way are finished, and files found in processing/ that the
journal never recorded (a run killed between the rename and the record) are adopted.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from pathlib import Path

import structlog

from dropbox_importer.pipeline.boxes import Box
from dropbox_importer.pipeline.journal import Journal
from dropbox_importer.pipeline.records import FileRecord, PartRecord
from dropbox_importer.pipeline.states import FileState
from dropbox_importer.pipeline.watch import scan_inbox

log = structlog.get_logger(__name__)


def recover(
    journal: Journal,
    boxes: Mapping[str, Box],
    *,
    follow: Callable[[FileRecord, PartRecord], None],
    enqueue: Callable[[str, int], None],
    settle: Callable[[int], None],
    settle_if_finished: Callable[[int], None],
    adopt: Callable[[Box, Path], object],
    configured: Collection[str] | None = None,
) -> None:
    """Resume the unfinished files of `boxes`; adopt files in their processing/ never recorded.

    `follow(record, part)` polls a batch again, `enqueue(dropbox, file_id)` queues a file for
    its submitter, `settle(file_id)` finishes a settle under way, `settle_if_finished(file_id)`
    settles a file whose batches are all final, `adopt(box, path)` records an unknown file.
    Files of drop boxes in `configured` but not in `boxes` (not opened yet) are left for their
    own recovery; files of drop boxes no longer configured are logged and left alone.
    """
    known: set[Path] = set()
    configured = set(boxes) if configured is None else set(configured)
    for record in journal.unfinished():
        known.add(Path(record.processing_path))
        context = {
            "dropbox": record.dropbox,
            "route": record.route,
            "file": record.relative,
            "file_id": record.id,
        }
        if record.dropbox not in boxes:
            if record.dropbox not in configured:
                log.warning("recovery_unknown_dropbox", **context)
            continue
        log.info("file_recovered", **context, state=record.state.value)
        if record.state is FileState.SETTLING:
            settle(record.id)
            continue
        parts = journal.parts(record.id)
        pending_batches = [p for p in parts if p.batch_id is not None and not p.final]
        for part in pending_batches:
            follow(record, part)
        if record.state in (FileState.CLAIMED, FileState.SUBMITTING):
            enqueue(record.dropbox, record.id)
        elif record.state is FileState.CHANGED:
            pass  # waits for its writer again (pipeline.rounds)
        elif not pending_batches:
            settle_if_finished(record.id)
    for box in boxes.values():
        for path in scan_inbox(box.layout.processing):
            if path not in known and path.is_file() and not path.is_symlink():
                # Claimed by a run that died before the journal recorded it: file_claimed
                # (adopted=True) says so.
                adopt(box, path)


def adopt_strays(
    journal: Journal,
    box: Box,
    adopt: Callable[[Box, Path], object],
    *,
    skip: Collection[Path] = (),
) -> int:
    """Adopt files in the box's processing/ that the journal does not know; return how many.

    Run now and then by the leader of a shared journal: a leader that froze just past its last
    check before a claim's rename, and woke after a standby took over, may have renamed one
    file into processing/ that its fenced journal could not record. `skip` names this daemon's
    own claims whose record a worker has yet to write (`Claimer.registering`), read before the
    journal so that a record written meanwhile is found there.
    """
    pending = set(skip)
    known = {Path(record.processing_path) for record in journal.unfinished(box.config.name)}
    known |= pending
    adopted = 0
    for path in scan_inbox(box.layout.processing):
        if path not in known and path.is_file() and not path.is_symlink():
            log.warning("file_adopted", dropbox=box.config.name, file=path.name, late=True)
            adopt(box, path)
            adopted += 1
    return adopted
