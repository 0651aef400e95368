"""Marketo's bulk import and lead database calls, one method per endpoint."""

from __future__ import annotations

from typing import Any

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Request, Response

from dropbox_importer.sandbox.database import LeadDatabase
from dropbox_importer.sandbox.faults import FaultInjector
from dropbox_importer.sandbox.fields import describe
from dropbox_importer.sandbox.imports import Batch, ImportQueue, ListInProgressError
from dropbox_importer.sandbox.responses import error, json_response, success
from dropbox_importer.sandbox.rows import DELIMITERS, ImportRequest, reason_file
from dropbox_importer.sandbox.settings import SandboxSettings

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
        if request.mimetype != "multipart/form-data":
            return error("612", f"Invalid Content Type '{request.mimetype or 'none'}'")
        try:
            form, files = request.form, request.files
        except RequestEntityTooLarge:
            return too_large(self.settings.max_file_bytes)
        except Exception:  # werkzeug raises several types on broken multipart bodies
            return error("613", "Invalid Multipart Request")
        upload = files.get("file")
        if upload is None:
            return error("613", "Invalid Multipart Request: no part named 'file'")
        payload = upload.stream.read()
        if len(payload) > self.settings.max_file_bytes:
            return too_large(self.settings.max_file_bytes)
        checked = self.check_params({**form.to_dict(), **request.args.to_dict()})
        if isinstance(checked, Response):
            return checked
        if not payload.strip():
            return error("1003", "Empty file")
        settings, rules = self.settings, self.settings.rules
        busy = LIST_BUSY[settings.list_busy_from] if rules.list_in_progress else ()
        try:
            batch = self.queue.create(
                checked, payload, self.faults.batch_fails(), list_busy_from=busy
            )
        except ListInProgressError:
            return error("1019", "Import in progress")
        if batch is None:
            return error("1016", rules.queue_full_message(settings.max_queued_jobs))
        # Always "Queued", even if the scheduler already took it; the published schema
        # requires numOfLeadsProcessed here too, though Marketo's examples omit it.
        result = {"batchId": batch.batch_id, "importId": str(batch.batch_id), "status": "Queued"}
        return success([{**result, "numOfLeadsProcessed": 0}])

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
        report, request = batch.report, batch.request
        header = report.header if report else []
        rows: list[tuple[int, list[str], str]] = []
        if report is not None and batch.status != "Queued":
            done = sum(
                self.queue.status(batch)[k] for k in ("numOfLeadsProcessed", "numOfRowsFailed")
            )
            source = report.failures if kind == "failures" else report.warnings
            rows = [item for item in source if item[0] < done or batch.status == "Complete"]
        column = "Import Failure Reason" if kind == "failures" else "Import Warning Reason"
        return row_file(self.settings, batch.batch_id, header, rows, request.format, column)

    def find(self, batch_id: str) -> Batch | Response:
        """The batch, or an error for an id that is unknown, malformed or expired.

        Kind answers 1003; strict 610 (see profile.py).
        """
        try:
            batch = self.queue.find(int(batch_id))
        except ValueError:
            batch = None
        if batch is None:
            return unknown_batch(self.settings, batch_id)
        return batch

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


def unknown_batch(settings: SandboxSettings, batch_id: str) -> Response:
    """The answer for a batch id Marketo does not know (any import kind)."""
    code = settings.rules.unknown_batch_code
    if code == "1003":
        return error(code, f"Invalid batch id '{batch_id}': unknown or expired")
    return error(code, "Requested resource not found")


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


def too_large(limit: int) -> Response:
    """HTTP 413 with a JSON body naming the limit."""
    return json_response(
        {
            "requestId": "",
            "success": False,
            "result": [],
            "warnings": [],
            "errors": [
                {"code": "413", "message": f"Request Entity Too Large (limit {limit} bytes)"}
            ],
        },
        status=413,
    )
