"""One file's whole story from the journal: uploaded, claimed, each batch, settled where.

Built from the file's record (when its upload last wrote it), its transitions and its parts'
batches, in time order. Each event is `{"at", "what", "detail"}`; `what` is stable for
scripts (uploaded, claimed, submitting, batch_created, batch_progress, batch_finished,
polling, settling, done, failed, waits).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from dropbox_importer.pipeline.records import FileRecord, PartRecord, TransitionRecord
from dropbox_importer.pipeline.states import FileState
from dropbox_importer.report.flight import batches, progress, relative
from dropbox_importer.report.times import iso

_MOVES = {
    FileState.SUBMITTING: "checked; its parts are being sent",
    FileState.POLLING: "every part sent; following its batches",
}


Event = tuple[datetime | None, dict[str, Any]]
_ORDER = {
    what: rank
    for rank, what in enumerate(
        ("uploaded", "claimed", "submitting", "batch_created", "polling", "batch_finished")
    )
}


def _transition(move: TransitionRecord, record: FileRecord, root: Path) -> Event:
    state = move.to_state
    if move.from_state is None:
        where = relative(record.processing_path, root)
        detail = f"claimed into {where}"
    elif state is FileState.SETTLING:
        outcome = move.detail or "?"
        detail = f"outcome decided: {outcome}"
        if outcome == "failed" and record.reason:
            detail += f": {record.reason}"
    elif state.terminal:
        detail = f"in {relative(Path(move.detail), root) if move.detail else '?'}"
    else:
        detail = _MOVES.get(state, move.detail)
    return move.at, {"at": iso(move.at), "what": state.value, "detail": detail}


def _part_events(part: PartRecord, count: int) -> list[Event]:
    events: list[Event] = []
    label = f"part {part.index + 1}/{count}"
    lines = f"from line {part.first_line}"
    if part.batch_id is not None and part.created_at is not None:
        events.append(
            (
                part.created_at,
                {
                    "at": iso(part.created_at),
                    "what": "batch_created",
                    "detail": f"{label}: batch {part.batch_id} created, {part.rows} rows ({lines})",
                },
            )
        )
    if part.status is None:
        return events
    counts = (
        f"{part.leads_processed} imported, {part.rows_failed} failed, "
        f"{part.rows_with_warning} with warnings"
    )
    if part.final and part.finished_at is not None:
        message = f": {part.message}" if part.message else ""
        events.append(
            (
                part.finished_at,
                {
                    "at": iso(part.finished_at),
                    "what": "batch_finished",
                    "detail": f"batch {part.batch_id} {part.status.value}: {counts}{message}",
                },
            )
        )
    elif not part.final:
        detail = f"batch {part.batch_id} {part.status.value}: {counts} of {part.rows} rows"
        events.append((None, {"at": None, "what": "batch_progress", "detail": detail}))
    return events


def file_history(
    record: FileRecord,
    parts: list[PartRecord],
    transitions: list[TransitionRecord],
    root: Path,
) -> dict[str, Any]:
    """The file's record and its events in time order (events without a time come last)."""
    events: list[Event] = []
    if record.dropped_at is not None:
        detail = f"last written by the upload: {record.size} bytes, sha256 {record.sha256[:16]}…"
        events.append(
            (
                record.dropped_at,
                {"at": iso(record.dropped_at), "what": "uploaded", "detail": detail},
            )
        )
    events += [_transition(move, record, root) for move in transitions]
    for part in parts:
        events += _part_events(part, len(parts))
    if record.note:
        events.append((None, {"at": None, "what": "waits", "detail": record.note}))
    # Full-precision times order events of the same second, the pipeline's order breaks ties;
    # untimed ones (now) come last.
    events.sort(
        key=lambda e: (e[0] is None, e[0] or record.claimed_at, _ORDER.get(e[1]["what"], 9))
    )
    return {
        "id": record.id,
        "dropbox": record.dropbox,
        "route": record.route,
        "file": record.name,
        "state": record.state.value,
        "reason": record.reason,
        "size": record.size,
        "sha256": record.sha256,
        "claimed_at": iso(record.claimed_at),
        "finished_at": iso(record.finished_at),
        "location": relative(record.destination_path or record.processing_path, root),
        "rows": progress(parts),
        "batches": batches(parts),
        "events": [event for _, event in events],
    }
