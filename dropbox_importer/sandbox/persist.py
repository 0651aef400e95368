"""The embedded sandbox's memory across restarts: leads and batches in a file in state_dir.

A real Marketo keeps its batches for 7 days and its leads for good; an embedded sandbox that
forgot them at every stop would make `make run` after Ctrl-C lose the file in flight ("Marketo
lost batch 3464"). So `Sandbox(state_file=...)` loads this file when it starts and writes it
when it stops: every lead (id, partition, lists, fields, times), every program membership and
custom object record, and every batch of any kind (status, counts, rows failed and warned, and
the uploaded bytes of those not finished), times kept as wall-clock
so a batch that was importing goes on importing, and ids go on from where they were. A kill -9
loses what happened since the last start (the daemon sends a lost batch once more).

The file is JSON, written to a temporary name and renamed. Reads the queue's own fields: this
module and `imports.py` are one unit, the queue's persistence kept out of its scheduling code.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from dropbox_importer.sandbox.customobjects import CustomObjectJob
from dropbox_importer.sandbox.imports import Batch, ImportQueue
from dropbox_importer.sandbox.jobs import CUSTOM_OBJECTS, PROGRAM_MEMBERS, Job
from dropbox_importer.sandbox.programs import ProgramMemberJob
from dropbox_importer.sandbox.rows import ImportRequest, RowReport

if TYPE_CHECKING:
    from dropbox_importer.sandbox.app import SandboxApp

log = structlog.get_logger(__name__)

VERSION = 1


def _report(report: RowReport | None) -> dict[str, Any] | None:
    if report is None:
        return None
    return {
        "header": report.header,
        "rows": report.rows,
        "imported": report.imported,
        "members": report.members,
        "failures": report.failures,
        "warnings": report.warnings,
    }


def _unreport(data: dict[str, Any] | None) -> RowReport | None:
    if data is None:
        return None
    return RowReport(
        list(data["header"]),
        int(data["rows"]),
        int(data["imported"]),
        int(data["members"]),
        [(int(i), list(f), str(r)) for i, f, r in data["failures"]],
        [(int(i), list(f), str(r)) for i, f, r in data["warnings"]],
    )


def export_queue(queue: ImportQueue) -> dict[str, Any]:
    """Every batch of the queue, JSON-ready, with wall-clock times."""
    with queue._cond:
        offset = queue._wall_offset

        def wall(moment: float | None) -> float | None:
            return None if moment is None else moment + offset

        batches = []
        for batch in sorted(queue._batches.values(), key=lambda b: b.batch_id):
            unfinished = batch.status in ("Queued", "Importing")
            batches.append(
                {
                    "batch_id": batch.batch_id,
                    **_request(batch.request),
                    "payload": base64.b64encode(batch.payload).decode() if unfinished else "",
                    "size": batch.size,
                    "created": wall(batch.created),
                    "doomed": batch.doomed,
                    "status": batch.status,
                    "started": wall(batch.started),
                    "finished": wall(batch.finished),
                    "start_sequence": batch.start_sequence,
                    "report": _report(batch.report),
                    "failure": batch.failure,
                }
            )  # fmt: skip
        return {"next_id": queue._next_id, "starts": queue._starts, "batches": batches}


def _request(request: ImportRequest | Job) -> dict[str, Any]:
    """What a batch imports: a lead import's request, or another kind's job (with `kind`)."""
    if isinstance(request, ImportRequest):
        return {
            "request": [request.format, request.lookup_field, request.list_id, request.partition]
        }
    return {"kind": request.kind, "job": {"format": request.format, **request.to_json()}}


# Builds a program member or custom object job from what `_request` wrote; None if its program
# or object type is no longer in the catalog.
JobFactory = Callable[[str, dict[str, Any]], Job | None]


def restore_queue(
    queue: ImportQueue, state: dict[str, Any], jobs: JobFactory | None = None
) -> None:
    """Put back what `export_queue` wrote; unfinished batches go on where they were."""
    with queue._cond:
        offset = queue._wall_offset

        def mono(moment: float | None) -> float | None:
            return None if moment is None else moment - offset

        for item in state.get("batches", []):
            request: ImportRequest | Job | None
            if "kind" in item:  # a program member or custom object job
                request = None if jobs is None else jobs(item["kind"], item["job"])
                if request is None:
                    continue
            else:
                request = ImportRequest(*item["request"])
            created = mono(item["created"])
            assert created is not None
            batch = Batch(
                int(item["batch_id"]),
                request,
                base64.b64decode(item["payload"]),
                int(item["size"]),
                created,
                bool(item["doomed"]),
                str(item["status"]),
                mono(item["started"]),
                mono(item["finished"]),
                item["start_sequence"],
                None,
                _unreport(item["report"]),
                item["failure"],
            )
            if batch.status == "Importing" and batch.started is not None:
                if batch.report is not None or batch.failure is not None:
                    rows = batch.report.rows if batch.report else 0
                    batch.due = batch.started + queue.speed.duration(rows)
                queue._importing.append(batch)
            elif batch.status == "Queued":
                queue._queued.append(batch)
            queue._batches[batch.batch_id] = batch
        queue._next_id = max(int(state.get("next_id", 0)), max(queue._batches, default=0) + 1)
        queue._starts = int(state.get("starts", 0))
        queue._cond.notify_all()


def save(app: SandboxApp, path: Path) -> None:
    """Write the sandbox's leads and batches to `path` (a temporary name, then renamed)."""
    queue = export_queue(app.queue)
    state = {
        "version": VERSION,
        "saved": time.time(),
        "leads": app.db.export(),
        "queue": queue,
        "programs": app.programs.export(),
        "customobjects": app.objects.export(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(state))
    tmp.replace(path)
    log.debug("sandbox_state_saved", path=str(path), batches=len(queue["batches"]))


def load(app: SandboxApp, path: Path) -> bool:
    """Restore the sandbox from `path`; False (and a warning) when there is nothing usable."""
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        return False
    except (OSError, ValueError) as exc:
        log.warning("sandbox_state_unreadable", path=str(path), error=str(exc))
        return False
    if state.get("version") != VERSION:
        log.warning("sandbox_state_unreadable", path=str(path), error="another format version")
        return False
    app.db.restore(state["leads"])
    # Absent from a file written before program members and custom objects.
    app.programs.restore(state.get("programs", {}))
    app.objects.restore(state.get("customobjects", {}))
    restore_queue(app.queue, state["queue"], lambda kind, data: _job(app, kind, data))
    log.info(
        "sandbox_state_restored",
        path=str(path),
        leads=len(state["leads"]["leads"]),
        batches=len(state["queue"]["batches"]),
    )
    return True


def _job(app: SandboxApp, kind: str, data: dict[str, Any]) -> Job | None:
    """A program member or custom object job as `_request` wrote it, bound to `app`'s stores."""
    fmt = str(data["format"])
    if kind == PROGRAM_MEMBERS:
        program_id = int(data["programId"])
        if app.settings.catalog.program(program_id) is None:
            return None
        return ProgramMemberJob(fmt, program_id, str(data["programMemberStatus"]), app.programs)
    if kind == CUSTOM_OBJECTS:
        obj = app.settings.catalog.custom_object(str(data["objectApiName"]))
        return None if obj is None else CustomObjectJob(fmt, obj, app.objects)
    return None
