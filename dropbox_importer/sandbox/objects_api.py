"""Custom object imports and the describe call of a custom object type.

Paths and shapes are those of Adobe's published OpenAPI file `marketo-bulk-programs-customobjects-
openapi.json`. Documented choices:

- a failures or warnings file with no rows answers HTTP 404, as public clients report for
  custom objects (a 404 here means "no rows", not "no such batch": that is 1003);
- an unknown object type is refused at create with 1003; its describe answers 1013 "Object not
  found";
- `importTime` reads like Marketo's examples ("2 seconds"); the describe answer carries both
  `state` (Marketo's examples) and `status` (which the published schema requires).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from dropbox_importer.sandbox.api import find_batch, rows_file, rows_so_far, unknown_batch
from dropbox_importer.sandbox.catalog import CustomObjectType, ObjectCatalog
from dropbox_importer.sandbox.customobjects import CustomObjectJob, CustomObjectStore
from dropbox_importer.sandbox.faults import FaultInjector
from dropbox_importer.sandbox.imports import Batch, ImportQueue
from dropbox_importer.sandbox.jobs import CUSTOM_OBJECTS
from dropbox_importer.sandbox.programs_api import field_json
from dropbox_importer.sandbox.responses import error, success
from dropbox_importer.sandbox.rows import DELIMITERS
from dropbox_importer.sandbox.settings import SandboxSettings
from dropbox_importer.sandbox.upload import read_upload

Handler = Callable[[Request, dict[str, str]], Response]

RULES = [
    Rule(
        "/bulk/v1/customobjects/<api_name>/import.json",
        endpoint="customobjects_create",
        methods=["POST"],
    ),
    Rule(
        "/bulk/v1/customobjects/<api_name>/import/<batch_id>/status.json",
        endpoint="customobjects_status",
        methods=["GET"],
    ),
    Rule(
        "/bulk/v1/customobjects/<api_name>/import/<batch_id>/failures.json",
        endpoint="customobjects_failures",
    ),
    Rule(
        "/bulk/v1/customobjects/<api_name>/import/<batch_id>/warnings.json",
        endpoint="customobjects_warnings",
    ),
    Rule(
        "/rest/v1/customobjects/<api_name>/describe.json",
        endpoint="customobjects_describe",
        methods=["GET"],
    ),
]


class ObjectsApi:
    """The handlers behind the custom object paths."""

    def __init__(
        self,
        settings: SandboxSettings,
        queue: ImportQueue,
        store: CustomObjectStore,
        faults: FaultInjector,
    ) -> None:
        """Serve this store's object types through the shared queue."""
        self.settings = settings
        self.catalog: ObjectCatalog = settings.catalog
        self.queue = queue
        self.store = store
        self.faults = faults

    def handlers(self) -> dict[str, Handler]:
        """Endpoint name -> handler, for the app's routing table."""
        return {
            "customobjects_create": lambda r, a: self.create(r, a["api_name"]),
            "customobjects_status": lambda r, a: self.status(a["api_name"], a["batch_id"]),
            "customobjects_failures": lambda r, a: self.rows(
                a["api_name"], a["batch_id"], "failures"
            ),
            "customobjects_warnings": lambda r, a: self.rows(
                a["api_name"], a["batch_id"], "warnings"
            ),
            "customobjects_describe": lambda r, a: self.describe(a["api_name"]),
        }

    def create(self, request: Request, api_name: str) -> Response:
        """`POST /bulk/v1/customobjects/{apiName}/import.json`: queue a record import."""
        upload = read_upload(request, self.settings.max_file_bytes)
        if isinstance(upload, Response):
            return upload
        params, payload = upload
        fmt = params.get("format", "").strip().lower()
        if fmt not in DELIMITERS:
            return error("1003", f"Invalid format '{params.get('format', '')}': csv, tsv or ssv")
        object_type = self.catalog.custom_object(api_name)
        if object_type is None:
            return error("1003", f"Custom object '{api_name}' not found")
        if not payload.strip():
            return error("1003", "Empty file")
        job = CustomObjectJob(fmt, object_type, self.store)
        batch = self.queue.create(job, payload, self.faults.batch_fails("customobjects_create"))
        if batch is None:
            return error(
                "1016", self.settings.rules.queue_full_message(self.settings.max_queued_jobs)
            )
        result = {
            "batchId": batch.batch_id,
            "operation": "import",
            "status": "Queued",
            "objectApiName": api_name,
        }
        return success([result])

    def find(self, api_name: str, batch_id: str) -> Batch | Response:
        """The batch of this object type, or 1003 as for an unknown batch id."""
        batch = find_batch(self.settings, self.queue, batch_id, CUSTOM_OBJECTS)
        if isinstance(batch, Response):
            return batch
        if not isinstance(batch.request, CustomObjectJob) or batch.request.api_name != api_name:
            return unknown_batch(self.settings, batch_id)
        return batch

    def status(self, api_name: str, batch_id: str) -> Response:
        """`GET /bulk/v1/customobjects/{apiName}/import/{batchId}/status.json`."""
        batch = self.find(api_name, batch_id)
        if isinstance(batch, Response):
            return batch
        counts = self.queue.status(batch)
        return success(
            [
                {
                    "batchId": batch.batch_id,
                    "operation": "import",
                    "status": counts["status"],
                    "objectApiName": api_name,
                    "numOfObjectsProcessed": counts["numOfLeadsProcessed"],
                    "numOfRowsFailed": counts["numOfRowsFailed"],
                    "numOfRowsWithWarning": counts["numOfRowsWithWarning"],
                    "importTime": import_time(batch),
                    "message": counts["message"],
                }
            ]
        )

    def rows(self, api_name: str, batch_id: str, which: str) -> Response:
        """`.../failures.json` or `.../warnings.json`; HTTP 404 when there are no such rows."""
        batch = self.find(api_name, batch_id)
        if isinstance(batch, Response):
            return batch
        if not rows_so_far(self.queue, batch, which):
            return error("610", f"No {which} file for batch {batch.batch_id}", status=404)
        return rows_file(self.settings, self.queue, batch, which)

    def describe(self, api_name: str) -> Response:
        """`GET /rest/v1/customobjects/{apiName}/describe.json`: fields and dedupe fields."""
        object_type = self.catalog.custom_object(api_name)
        if object_type is None:
            return error("1013", "Object not found")
        return success([self._describe_json(object_type)])

    def _describe_json(self, obj: CustomObjectType) -> dict[str, Any]:
        stamp = self.catalog.created_at
        return {
            "apiName": obj.api_name,
            "displayName": obj.display_name,
            "pluralName": obj.plural_name or obj.display_name,
            "description": obj.description,
            "createdAt": stamp,
            "updatedAt": stamp,
            "idField": "marketoGUID",
            "dedupeFields": list(obj.dedupe_fields),
            "searchableFields": [["marketoGUID"], *([d] for d in obj.dedupe_fields)],
            "relationships": [],
            "fields": [field_json(f) for f in obj.all_fields],
            "state": "approved",
            "status": "approved",
            "version": "approved",
        }


def import_time(batch: Batch) -> str:
    """How long the batch has been importing, as Marketo words it ("2 seconds")."""
    if batch.started is None:
        return "0 seconds"
    end = batch.finished if batch.finished is not None else time.monotonic()
    seconds = max(0, round(end - batch.started))
    return f"{seconds} second" if seconds == 1 else f"{seconds} seconds"
