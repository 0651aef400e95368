"""Program member imports and the calls that describe programs, channels and members.

Paths and shapes are those of Adobe's published OpenAPI files (`marketo-bulk-programs-
customobjects-openapi.json`, `marketo-asset-programs-openapi.json`). Documented choices:

- an unknown program, or a `programMemberStatus` that is not one of the program's channel's
  statuses, is refused at create with 1003, naming the valid statuses; statuses match exactly
  (case included), the stricter reading, since Marketo does not say;
- `GET /rest/asset/v1/program/{id}.json` for an unknown id answers as Marketo's asset API does:
  success, an empty `result` and the warning "No assets found for the given search criteria.";
- the status answer carries the lead import's counts (`numOfLeadsProcessed`, ...) beside the
  schema's `batchId`, `importId` and `status`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from dropbox_importer.sandbox.api import find_batch, rows_file
from dropbox_importer.sandbox.catalog import Channel, ObjectCatalog, Program
from dropbox_importer.sandbox.faults import FaultInjector
from dropbox_importer.sandbox.imports import ImportQueue
from dropbox_importer.sandbox.jobs import PROGRAM_MEMBERS
from dropbox_importer.sandbox.programs import ProgramMemberJob, ProgramStore
from dropbox_importer.sandbox.responses import error, json_response, request_id, success
from dropbox_importer.sandbox.rows import DELIMITERS
from dropbox_importer.sandbox.settings import LeadField, SandboxSettings
from dropbox_importer.sandbox.upload import read_upload

Handler = Callable[[Request, dict[str, str]], Response]

RULES = [
    Rule(
        "/bulk/v1/program/<program_id>/members/import.json",
        endpoint="program_members_create",
        methods=["POST"],
    ),
    Rule(
        "/bulk/v1/program/members/import/<batch_id>/status.json",
        endpoint="program_members_status",
        methods=["GET"],
    ),
    Rule(
        "/bulk/v1/program/members/import/<batch_id>/failures.json",
        endpoint="program_members_failures",
    ),
    Rule(
        "/bulk/v1/program/members/import/<batch_id>/warnings.json",
        endpoint="program_members_warnings",
    ),
    Rule(
        "/rest/v1/program/members/describe.json",
        endpoint="program_members_describe",
        methods=["GET"],
    ),
    Rule("/rest/asset/v1/program/<program_id>.json", endpoint="program", methods=["GET"]),
    Rule("/rest/asset/v1/channels.json", endpoint="channels", methods=["GET"]),
]

NO_ASSETS = "No assets found for the given search criteria."
MAX_RETURN = 200  # the asset API's page size limit


class ProgramsApi:
    """The handlers behind the program member and program paths."""

    def __init__(
        self,
        settings: SandboxSettings,
        queue: ImportQueue,
        store: ProgramStore,
        faults: FaultInjector,
    ) -> None:
        """Serve this store's programs through the shared queue."""
        self.settings = settings
        self.catalog: ObjectCatalog = settings.catalog
        self.queue = queue
        self.store = store
        self.faults = faults

    def handlers(self) -> dict[str, Handler]:
        """Endpoint name -> handler, for the app's routing table."""
        return {
            "program_members_create": lambda r, a: self.create(r, a["program_id"]),
            "program_members_status": lambda r, a: self.status(a["batch_id"]),
            "program_members_failures": lambda r, a: self.rows(a["batch_id"], "failures"),
            "program_members_warnings": lambda r, a: self.rows(a["batch_id"], "warnings"),
            "program_members_describe": lambda r, a: self.describe(),
            "program": lambda r, a: self.program(a["program_id"]),
            "channels": lambda r, a: self.channels(r),
        }

    def create(self, request: Request, program_id: str) -> Response:
        """`POST /bulk/v1/program/{programId}/members/import.json`: queue a member import."""
        upload = read_upload(request, self.settings.max_file_bytes)
        if isinstance(upload, Response):
            return upload
        params, payload = upload
        fmt = params.get("format", "").strip().lower()
        if fmt not in DELIMITERS:
            return error("1003", f"Invalid format '{params.get('format', '')}': CSV, TSV or SSV")
        program = self._program(program_id)
        if program is None:
            return error("1003", f"Program '{program_id}' not found")
        status = params.get("programMemberStatus", "")
        channel = self.catalog.channel(program.channel)
        if status not in channel.statuses:
            valid = ", ".join(channel.statuses)
            return error(
                "1003",
                f"Invalid programMemberStatus '{status}' for program {program.id}: "
                f"the {channel.name} channel's statuses are {valid}",
            )
        if not payload.strip():
            return error("1003", "Empty file")
        job = ProgramMemberJob(fmt, program.id, status, self.store)
        batch = self.queue.create(job, payload, self.faults.batch_fails("program_members_create"))
        if batch is None:
            return error(
                "1016", self.settings.rules.queue_full_message(self.settings.max_queued_jobs)
            )
        # Always "Queued", even if the scheduler already took it, as for leads.
        return success(
            [{"batchId": batch.batch_id, "importId": str(batch.batch_id), "status": "Queued"}]
        )

    def status(self, batch_id: str) -> Response:
        """`GET /bulk/v1/program/members/import/{batchId}/status.json`."""
        batch = find_batch(self.settings, self.queue, batch_id, PROGRAM_MEMBERS)
        if isinstance(batch, Response):
            return batch
        return success([self.queue.status(batch)])

    def rows(self, batch_id: str, which: str) -> Response:
        """`.../failures.json` or `.../warnings.json` of a program member import."""
        batch = find_batch(self.settings, self.queue, batch_id, PROGRAM_MEMBERS)
        if isinstance(batch, Response):
            return batch
        return rows_file(self.settings, self.queue, batch, which)

    def describe(self) -> Response:
        """`GET /rest/v1/program/members/describe.json`: the program member fields."""
        fields = [field_json(f) for f in self.catalog.program_member_fields]
        return success([{"name": "API Program Member", "fields": fields}])

    def program(self, program_id: str) -> Response:
        """`GET /rest/asset/v1/program/{id}.json`: one program, with its channel's name."""
        if not program_id.isdigit():
            return error("1003", f"Invalid program id '{program_id}'")
        program = self._program(program_id)
        if program is None:
            return no_assets()
        return success([self._program_json(program)])

    def channels(self, request: Request) -> Response:
        """`GET /rest/asset/v1/channels.json`: every channel with its member statuses, paged."""
        try:
            max_return = int(request.args.get("maxReturn", "20"))
            offset = int(request.args.get("offset", "0"))
        except ValueError:
            return error("1003", "maxReturn and offset must be whole numbers")
        if not 1 <= max_return <= MAX_RETURN or offset < 0:
            return error("1003", f"maxReturn must be 1 to {MAX_RETURN}, offset 0 or more")
        page = self.catalog.channels[offset : offset + max_return]
        if not page:
            return no_assets()
        return success([self._channel_json(c) for c in page])

    def _program(self, program_id: str) -> Program | None:
        try:
            return self.catalog.program(int(program_id))
        except ValueError:
            return None

    def _program_json(self, program: Program) -> dict[str, Any]:
        stamp = self.catalog.created_at
        return {
            "id": program.id,
            "name": program.name,
            "description": "",
            "createdAt": stamp,
            "updatedAt": stamp,
            "url": f"https://app-sandbox.marketo.com/#PG{program.id}A1",
            "type": program.type,
            "channel": program.channel,
            "folder": {"id": 13, "type": "Folder", "folderName": "Partner programs"},
            # The schema's enum has no value for an event program; "unlocked" fits every type.
            "status": "unlocked",
            "workspace": "Default",
            "tags": [],
            "costs": [],
        }

    def _channel_json(self, channel: Channel) -> dict[str, Any]:
        stamp = self.catalog.created_at
        return {
            "id": channel.id,
            "name": channel.name,
            "applicableProgramType": channel.applicable_program_type,
            "createdAt": stamp,
            "updatedAt": stamp,
            "progressionStatuses": [
                {
                    "name": name,
                    "step": step * 10,
                    "success": name in channel.success,
                    "hidden": False,
                    "description": "",
                }
                for step, name in enumerate(channel.statuses, start=1)
            ],
        }


def field_json(found: LeadField) -> dict[str, Any]:
    """A program member or custom object field as the describe calls report it."""
    item: dict[str, Any] = {
        "name": found.name,
        "displayName": found.display_name or found.name,
        "dataType": found.data_type,
        "updateable": not found.read_only,
        "crmManaged": False,
    }
    if found.length is not None:
        item["length"] = found.length
    return item


def no_assets() -> Response:
    """The asset API's answer when nothing matches: success, no result, one warning."""
    return json_response(
        {
            "requestId": request_id(),
            "success": True,
            "result": [],
            "errors": [],
            "warnings": [NO_ASSETS],
        }
    )
