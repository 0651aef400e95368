"""A claimed file in flight as `status` shows it: state, progress in rows, and why it waits.

The reason comes from what the journal knows, most telling first: the daemon is stopped, a
note the daemon left on the file (a settle it retries), the instance's health (needs an
operator, paused for the daily quota, failing), then the file's own state (queued behind
others, Marketo's queue full, a list busy, queued or importing at Marketo). `why_code` is
stable for scripts:

    daemon_stopped, note, needs_operator, paused_quota, instance_unhealthy, instance_outage,
    queued_behind, preparing, queue_full, list_busy, waits_to_share, submitting,
    queued_at_marketo, importing, moving

A file sent in a job it shares with other files (coalesce.py) says so in `shared`: for each
such part, the batch, how many files share it, its rows and the batch's row its own begin at.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from dropbox_importer.marketo.health import LIST_BUSY, QUEUE_FULL, HealthSnapshot, HealthState
from dropbox_importer.marketo.models import BatchState
from dropbox_importer.pipeline.coalesce import SHALLOW_DEPTH
from dropbox_importer.pipeline.records import FileRecord, JobRecord, PartRecord
from dropbox_importer.pipeline.states import FileState
from dropbox_importer.report.times import iso


def relative(path: Path | None, root: Path) -> str | None:
    """A path inside the drop box as the partner sees it (done/route/file), else as is."""
    if path is None:
        return None
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def progress(parts: list[PartRecord]) -> dict[str, int]:
    """Rows of the file: sent, processed by Marketo so far (imported + failed), warnings."""
    return {
        "total": sum(p.rows for p in parts),
        "processed": sum(p.leads_processed + p.rows_failed for p in parts),
        "imported": sum(p.leads_processed for p in parts),
        "failed": sum(p.rows_failed for p in parts),
        "warnings": sum(p.rows_with_warning for p in parts),
    }


def batches(parts: list[PartRecord]) -> list[dict[str, Any]]:
    """Each part's batch with Marketo's last answer about it."""
    return [
        {
            "part": p.index,
            "batch_id": p.batch_id,
            "status": None if p.status is None else p.status.value,
            "rows": p.rows,
            "processed": p.leads_processed + p.rows_failed,
            "failed": p.rows_failed,
            "warnings": p.rows_with_warning,
        }
        for p in parts
    ]


def shared(
    record: FileRecord, parts: list[PartRecord], jobs: Mapping[int, JobRecord]
) -> list[dict[str, Any]]:
    """The parts of the file sent in a job shared with other files, with that job's figures.

    `jobs` gives the shared jobs by batch id (a batch not in it is the part's own).
    """
    out = []
    for part in parts:
        job = None if part.batch_id is None else jobs.get(part.batch_id)
        if job is None:
            continue
        member = job.member(record.id, part.index)
        out.append(
            {
                "part": part.index,
                "batch_id": job.batch_id,
                "files": len({m.file_id for m in job.members}),
                "rows": job.rows,
                "first_row": member.first_row + 1,
            }
        )
    return out


def _health_reason(instance: str, health: HealthSnapshot | None) -> tuple[str, str] | None:
    if health is None:
        return None
    if health.state is HealthState.NEEDS_OPERATOR:
        return "needs_operator", (
            f"instance {instance} needs an operator: {health.operator_reason or health.last_error}"
        )
    if health.state is HealthState.PAUSED_QUOTA:
        return "paused_quota", (
            f"instance {instance} is paused: Marketo's daily API quota is spent; "
            f"resumes at {iso(health.paused_until) or 'midnight US Central'}"
        )
    if health.state in (HealthState.UNHEALTHY, HealthState.OUTAGE):
        code = "instance_outage" if health.state is HealthState.OUTAGE else "instance_unhealthy"
        return code, (
            f"instance {instance} failing since {iso(health.since)}: {health.last_error}; "
            "retried until it answers"
        )
    return None


def _state_reason(
    record: FileRecord,
    parts: list[PartRecord],
    health: HealthSnapshot | None,
    ahead: int,
    may_share: bool,
) -> tuple[str, str]:
    nothing_sent = all(p.batch_id is None for p in parts)
    full = health is not None and health.queued_jobs >= SHALLOW_DEPTH
    if (
        may_share
        and nothing_sent
        and full
        and record.state in (FileState.CLAIMED, FileState.SUBMITTING)
    ):
        return "waits_to_share", (
            f"{health.queued_jobs if health else 0} jobs of ours are in Marketo's queue: waits "
            "for one to end, and files that arrive meanwhile go with it as one job"
        )
    if record.state is FileState.CLAIMED:
        if ahead:
            return "queued_behind", f"queued behind {ahead} file(s) for the same instance"
        return "preparing", "being checked and cut into parts"
    if record.state is FileState.SUBMITTING:
        unsent = [p for p in parts if p.batch_id is None]
        if health is not None and health.waiting_for == QUEUE_FULL:
            return "queue_full", (
                f"Marketo's import queue is full ({health.queued_jobs} of our "
                f"{health.max_queued_jobs} jobs queued): waits for a free slot"
            )
        if health is not None and health.waiting_for == LIST_BUSY:
            return "list_busy", "its static list is being imported into: waits until it is free"
        sent = len(parts) - len(unsent)
        return "submitting", f"creating batches: {sent} of {len(parts) or '?'} created"
    if record.state is FileState.POLLING:
        states = {p.status for p in parts}
        rows = progress(parts)
        if BatchState.IMPORTING in states:
            return "importing", f"importing: {rows['processed']:,} of {rows['total']:,} rows"
        if parts and all(p.final for p in parts):
            return "importing", f"imported at Marketo ({rows['processed']:,} rows): results next"
        return "queued_at_marketo", "queued at Marketo: its import has not started yet"
    return "moving", "moving to its destination with its result files"


def flight_item(
    record: FileRecord,
    parts: list[PartRecord],
    *,
    instance: str,
    health: HealthSnapshot | None,
    daemon_running: bool | None,
    ahead: int,
    root: Path,
    now: datetime,
    jobs: Mapping[int, JobRecord] | None = None,
    may_share: bool = False,
) -> dict[str, Any]:
    """One in-flight file for `status --json` and the status page.

    `ahead` is how many files of the same instance were claimed before it and wait too;
    `jobs` the shared jobs by batch id; `may_share` whether its route lets it share a job.
    """
    if daemon_running is False:
        code, why = "daemon_stopped", "the daemon is not running: resumes at its next start"
    elif record.note:
        code, why = "note", record.note
    else:
        code, why = _health_reason(instance, health) or _state_reason(
            record, parts, health, ahead, may_share
        )
    return {
        "id": record.id,
        "route": record.route,
        "file": record.name,
        "state": record.state.value,
        "why": why,
        "why_code": code,
        "batch_ids": [p.batch_id for p in parts if p.batch_id is not None],
        "parts": len(parts),
        "parts_final": sum(1 for p in parts if p.final),
        "rows": progress(parts),
        "batches": batches(parts),
        "shared": shared(record, parts, jobs or {}),
        "size": record.size,
        "dropped_at": iso(record.dropped_at),
        "claimed_at": iso(record.claimed_at),
        "age_seconds": round((now - record.claimed_at).total_seconds(), 1),
        "location": relative(record.processing_path, root),
        "destination": relative(record.destination_path, root),
    }
