"""What a start does before taking new files: resume every file the journal left unfinished.

State lives in the journal, never only in memory, so a restart (or a kill -9) continues where
the last run stopped: batches still running are followed again, files not fully submitted are
queued again, settles that were under way are finished, and files found in processing/ that the
journal never recorded (a run killed between the rename and the record) are adopted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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
) -> None:
    """Resume every unfinished file of the journal; adopt files it never saw.

    `follow(record, part)` polls a batch again, `enqueue(dropbox, file_id)` queues a file for
    its submitter, `settle(file_id)` finishes a settle under way, `settle_if_finished(file_id)`
    settles a file whose batches are all final, `adopt(box, path)` records an unknown file.
    """
    known: set[Path] = set()
    for record in journal.unfinished():
        known.add(Path(record.processing_path))
        context = {
            "dropbox": record.dropbox,
            "route": record.route,
            "file": record.relative,
            "file_id": record.id,
        }
        if record.dropbox not in boxes:
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
