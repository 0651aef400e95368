"""Marketo's bulk import and lead database calls, one method per endpoint."""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Request, Response

from dropbox_importer.sandbox.database import LeadDatabase
from dropbox_importer.sandbox.faults import FaultInjector
from dropbox_importer.sandbox.fields import describe
from dropbox_importer.sandbox.imports import Batch, ImportQueue, ListInProgressError
from dropbox_importer.sandbox.jobs import LEADS
from dropbox_importer.sandbox.responses import error, success
from dropbox_importer.sandbox.rows import DELIMITERS, ImportRequest, reason_file
from dropbox_importer.sandbox.settings import SandboxSettings
from dropbox_importer.sandbox.upload import read_upload

FILE_TYPES = {"csv": "text/csv", "tsv": "text/tab-separated-values", "ssv": "text/plain"}
# Adobe's OpenAPI says failures.json and warnings.json produce application/json, whatever the
# file holds; strict serves them so.
STRICT_FILE_TYPE = "application/json"
# Strict, 1019: the statuses of a list's job that refuse a create for that list.
LIST_BUSY = {"queued": ("Queued", "Importing"), "importing": ("Importing",)}


class MarketoApi:
    """The handlers behind Marketo's paths; auth, limits and faults happen before these."""

    def __init__(
        self,
        settings: SandboxSettings,
        db: LeadDatabase,
        queue: ImportQueue,
        faults: FaultInjector,
    ) -> None:
        """Serve this database and queue."""
        self.settings = settings
        self.db = db
        self.queue = queue
        self.faults = faults

    def create(self, request: Request) -> Response:
        """`POST /bulk/v1/leads.json`: check the upload and queue a batch."""
        upload = read_upload(request, self.settings.max_file_bytes)
        if isinstance(upload, Response):
            return upload
        params, payload = upload
        checked = self.check_params(params)
        if isinstance(checked, Response):
            return checked
        if not payload.strip():
            return error("1003", "Empty file")
        settings, rules = self.settings, self.settings.rules
        try:
            batch = self.queue.create(
                checked, payload, self.faults.batch_fails(), list_busy_from=self.list_busy_from()
            )
        except ListInProgressError:
            return error("1019", "Import in progress")
        if batch is None:
            return error("1016", rules.queue_full_message(settings.max_queued_jobs))
        # Always "Queued", even if the scheduler already took it; the published schema
        # requires numOfLeadsProcessed here too, though Marketo's examples omit it.
        result = {"batchId": batch.batch_id, "importId": str(batch.batch_id), "status": "Queued"}
        return success([{**result, "numOfLeadsProcessed": 0}])

    def list_busy_from(self) -> tuple[str, ...]:
        """The statuses of a list's job that make a create for that list answer 1019."""
        if not self.settings.rules.list_in_progress:
            return ()
        return LIST_BUSY[self.settings.list_busy_from]

    def check_params(self, params: dict[str, str]) -> ImportRequest | Response:
        """Validate format, lookupField, listId and partitionName (1003 on any bad one)."""
        fmt = params.get("format", "").strip().lower()
        if fmt not in DELIMITERS:
            return error("1003", f"Invalid format '{params.get('format', '')}': csv, tsv or ssv")
        lookup = self.db.field(params.get("lookupField") or "email")
        if lookup is None:
            return error("1003", f"Invalid lookup field '{params.get('lookupField')}'")
        list_id: int | None = None
        if params.get("listId"):
            try:
                list_id = int(params["listId"])
            except ValueError:
                list_id = None
            if list_id not in self.db.lists:
                return error("1003", f"Invalid list id '{params['listId']}'")
        partition = params.get("partitionName") or self.db.partitions[0]
        if partition not in self.db.partitions:
            return error("1003", f"Invalid partition name '{partition}'")
        return ImportRequest(fmt, lookup.name, list_id, partition)

    def status(self, batch_id: str) -> Response:
        """`GET /bulk/v1/leads/batch/{batchId}.json`."""
        batch = self.find(batch_id)
        if isinstance(batch, Response):
            return batch
        return success([self.queue.status(batch)])

    def reasons(self, batch_id: str, kind: str) -> Response:
        """`.../failures.json` or `.../warnings.json`: the rows so far with their reasons."""
        batch = self.find(batch_id)
        if isinstance(batch, Response):
            return batch
        return rows_file(self.settings, self.queue, batch, kind)

    def find(self, batch_id: str) -> Batch | Response:
        """The lead batch, or an error for an id that is unknown, malformed or expired.

        Kind answers 1003; strict 610 (see profile.py).
        """
        return find_batch(self.settings, self.queue, batch_id, LEADS)

    def describe(self) -> Response:
        """`GET /rest/v1/leads/describe.json`."""
        return success(describe(self.db.fields))

    def partitions(self) -> Response:
        """`GET /rest/v1/leads/partitions.json`."""
        result = [
            {"id": number, "name": name, "description": f"{name} partition"}
            for number, name in enumerate(self.db.partitions, start=1)
        ]
        return success(result)

    def static_list(self, list_id: str) -> Response:
        """`GET /rest/v1/lists/{listId}.json`: 1003 if malformed, 1013 if no such list."""
        try:
            number = int(list_id)
        except ValueError:
            return error("1003", f"Invalid list id '{list_id}'")
        name = self.db.lists.get(number)
        if name is None:
            return error("1013", f"List {number} not found")
        item: dict[str, Any] = {
            "id": number,
            "name": name,
            "description": "",
            "programName": "Sandbox",
            "workspaceName": "Default",
            "createdAt": self.db.created_at,
            "updatedAt": self.db.created_at,
        }
        return success([item])


def find_batch(
    settings: SandboxSettings, queue: ImportQueue, batch_id: str, kind: str
) -> Batch | Response:
    """The batch of this kind, or an error for an id that is unknown, malformed or expired.

    A batch of another kind is unknown here: each kind's status, failures and warnings paths
    only know their own batches, though all share one queue and one series of ids.
    """
    try:
        batch = queue.find(int(batch_id))
    except ValueError:
        batch = None
    if batch is None or batch.kind != kind:
        return unknown_batch(settings, batch_id)
    return batch


def unknown_batch(settings: SandboxSettings, batch_id: str) -> Response:
    """The answer for a batch id Marketo does not know (any import kind)."""
    code = settings.rules.unknown_batch_code
    if code == "1003":
        return error(code, f"Invalid batch id '{batch_id}': unknown or expired")
    return error(code, "Requested resource not found")


def rows_so_far(queue: ImportQueue, batch: Batch, which: str) -> list[tuple[int, list[str], str]]:
    """The batch's failed (`which` "failures") or warned rows as far as its import has come."""
    report = batch.report
    if report is None or batch.status == "Queued":
        return []
    done = sum(queue.status(batch)[k] for k in ("numOfLeadsProcessed", "numOfRowsFailed"))
    source = report.failures if which == "failures" else report.warnings
    return [item for item in source if item[0] < done or batch.status == "Complete"]


def rows_file(settings: SandboxSettings, queue: ImportQueue, batch: Batch, which: str) -> Response:
    """`.../failures.json` or `.../warnings.json` of any import kind: the rows so far."""
    header = batch.report.header if batch.report else []
    rows = rows_so_far(queue, batch, which)
    column = "Import Failure Reason" if which == "failures" else "Import Warning Reason"
    return row_file(settings, batch.batch_id, header, rows, batch.request.format, column)


def row_file(
    settings: SandboxSettings,
    batch_id: int,
    header: list[str],
    rows: list[tuple[int, list[str], str]],
    fmt: str,
    column: str,
) -> Response:
    """A failures or warnings file as the profile serves it (any import kind).

    Kind: every column in row order, the upload's content type, a header-only file when no
    row is listed. Strict: empty columns dropped, rows shuffled, application/json, and HTTP
    404 when no row is listed.
    """
    if not settings.rules.sparse_row_files:
        body = reason_file(header, rows, fmt, column) if header else b""
        return Response(body, mimetype=FILE_TYPES[fmt])
    if not rows:
        return Response(f"404 Not Found: batch {batch_id} has no such rows\n", status=404)
    seed = settings.row_order_seed * 1_000_003 + batch_id
    body = reason_file(header, rows, fmt, column, sparse=True, seed=seed)
    return Response(body, mimetype=STRICT_FILE_TYPE)
