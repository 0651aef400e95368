"""Where each import kind lives: its create, status, failures and warnings paths, as data.

The client has one interface for every kind (create, status, failures, warnings); this table is
what differs. Sources: Adobe's OpenAPI files in `reference/` and MARKETO.md ("Program members and
custom objects"): the three kinds share one queue (2 importing, 10 queued, 1016), the 10 MB cap
and the 7-day batch id. A custom object's failures or warnings file that does not exist answers
HTTP 404, which the client's downloads take as an empty file for every kind (`download.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from dropbox_importer.marketo.models import ImportKind, ImportParams, ImportTarget


@dataclass(frozen=True)
class KindPaths:
    """One kind's paths, with `{…}` standing for the program, the object and the batch."""

    create: str
    batch: str  # + "/status.json", "/failures.json" or "/warnings.json", but for leads' status
    lead_status: bool = False  # leads ask `…/batch/{id}.json`, not `…/{id}/status.json`
    endpoint_prefix: str = ""  # names the client's calls by kind in its stats and logs


KINDS: dict[ImportKind, KindPaths] = {
    ImportKind.LEADS: KindPaths(
        create="/bulk/v1/leads.json",
        batch="/bulk/v1/leads/batch/{batch_id}",
        lead_status=True,
    ),
    ImportKind.PROGRAM_MEMBERS: KindPaths(
        create="/bulk/v1/program/{program_id}/members/import.json",
        batch="/bulk/v1/program/members/import/{batch_id}",
        endpoint_prefix="program_members_",
    ),
    ImportKind.CUSTOM_OBJECTS: KindPaths(
        create="/bulk/v1/customobjects/{object_name}/import.json",
        batch="/bulk/v1/customobjects/{object_name}/import/{batch_id}",
        endpoint_prefix="customobjects_",
    ),
}


def _fill(template: str, target: ImportTarget, batch_id: int | None = None) -> str:
    return template.format(
        program_id=int(target.program_id or 0),
        # An API name is an identifier, but it comes from a folder name: never let it add a path.
        object_name=quote(target.object_name or "", safe=""),
        batch_id=int(batch_id or 0),
    )


def create_path(params: ImportParams) -> str:
    """The path a create of these parameters is POSTed to."""
    return _fill(KINDS[params.kind].create, params.target)


def batch_path(target: ImportTarget, batch_id: int, call: str) -> str:
    """The path of a batch's `call`: "status", "failures" or "warnings"."""
    paths = KINDS[target.kind]
    base = _fill(paths.batch, target, batch_id)
    if call == "status" and paths.lead_status:
        return base + ".json"
    return f"{base}/{call}.json"


def endpoint(kind: ImportKind, call: str) -> str:
    """The name a call is counted and logged under: "create", "program_members_status", …."""
    return KINDS[kind].endpoint_prefix + call
