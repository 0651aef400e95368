"""A batch Marketo no longer knows: its part is sent once more; a second loss fails the file.

Marketo forgets batch ids after 7 days, and an instance can lose one (a restarted sandbox, an
outage). The poller confirms the loss with a second status call before anything happens here.
Bulk import is insert-or-update, so sending the part again is always safe: rows Marketo did
import are updated with the same values. Only when the part's second batch is lost as well does
the file fail, with a reason that tells the partner it is not their doing.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from dropbox_importer.pipeline.journal import Journal

log = structlog.get_logger(__name__)

# How often one part is sent again after Marketo lost its batch.
RESUBMISSIONS = 1


def lost_reason(batch_ids: Sequence[int]) -> str:
    """What the partner reads when Marketo lost a part's batch every time it was sent."""
    shown = " and ".join(str(i) for i in batch_ids)
    return (
        f"Marketo lost the import of this file {len(batch_ids)} times (batches {shown}); "
        "this is not a problem with the file: some rows may already be in Marketo, and "
        "importing them again is harmless, so drop the file again later, or ask the operator "
        "to check the Marketo instance"
    )


def handle_lost_batch(journal: Journal, file_id: int, batch_id: int) -> bool:
    """Record that Marketo no longer knows `batch_id`; True when the file must be queued for
    its submitter again (the part will be sent once more), False when the part failed.
    """
    parts = [p for p in journal.parts(file_id) if p.batch_id == batch_id]
    lost_before = parts[0].lost_batch_ids if parts else ()
    resubmit = len(lost_before) < RESUBMISSIONS
    lost, requeue = journal.record_lost_batch(
        file_id,
        batch_id,
        resubmit=resubmit,
        message=lost_reason((*lost_before, batch_id)),
    )
    if resubmit:
        log.warning("batch_lost_resubmitting", file_id=file_id, batch_id=batch_id)
        # A file still SUBMITTING is in its submitter's hands or queue already.
        return requeue
    log.error("batch_lost_again", file_id=file_id, batch_ids=list(lost))
    return False
