"""Typed values exchanged with Marketo's bulk imports: nothing past this layer is a raw dict."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ImportFormat(StrEnum):
    """The three file formats Marketo's bulk import accepts, and their delimiters."""

    CSV = "csv"
    TSV = "tsv"
    SSV = "ssv"

    @property
    def delimiter(self) -> str:
        """The field separator of this format."""
        return {"csv": ",", "tsv": "\t", "ssv": ";"}[self.value]


class ImportKind(StrEnum):
    """What a bulk import creates or updates: leads, program members or custom object records.

    All three share Marketo's import queue and limits; each has its own paths (`kinds.py`).
    """

    LEADS = "leads"
    PROGRAM_MEMBERS = "program_members"
    CUSTOM_OBJECTS = "custom_objects"


@dataclass(frozen=True)
class ImportTarget:
    """What a batch imports into: as much as its status, failures and warnings paths need."""

    kind: ImportKind = ImportKind.LEADS
    program_id: int | None = None  # program members
    object_name: str | None = None  # custom objects: the object type's API name


@dataclass(frozen=True)
class ImportParams:
    """The parameters of one bulk import, as a route folder sets them.

    Leads: `format` and optionally `list_id`, `partition_name`, `lookup_field`
    (`POST /bulk/v1/leads.json`). Program members: `format`, `program_id` and
    `program_member_status`, both required, nothing else
    (`POST /bulk/v1/program/{programId}/members/import.json`). Custom objects: `format` and
    `object_name`, the object's API name (`POST /bulk/v1/customobjects/{apiName}/import.json`).
    Any other mix raises ValueError. Source: MARKETO.md, "Program members and custom objects".
    """

    format: ImportFormat
    list_id: int | None = None
    partition_name: str | None = None
    lookup_field: str | None = None
    program_id: int | None = None
    program_member_status: str | None = None
    object_name: str | None = None

    def __post_init__(self) -> None:
        """Refuse parameters that mix import kinds or leave a program member one half set."""
        lead_only = (self.list_id, self.partition_name, self.lookup_field)
        program = (self.program_id, self.program_member_status)
        if any(v is not None for v in program) and None in program:
            raise ValueError("a program member import needs program_id and program_member_status")
        kinds = [
            any(v is not None for v in lead_only),
            self.program_id is not None,
            self.object_name is not None,
        ]
        if sum(kinds) > 1:
            raise ValueError("one import is of leads, program members or custom objects, not more")

    @property
    def kind(self) -> ImportKind:
        """What this import creates or updates."""
        if self.program_id is not None:
            return ImportKind.PROGRAM_MEMBERS
        if self.object_name is not None:
            return ImportKind.CUSTOM_OBJECTS
        return ImportKind.LEADS

    @property
    def target(self) -> ImportTarget:
        """What the batches of this import import into."""
        return ImportTarget(self.kind, self.program_id, self.object_name)

    def query(self) -> dict[str, str]:
        """The request's query string, with Marketo's own parameter names."""
        out = {"format": self.format.value}
        if self.program_member_status is not None:
            out["programMemberStatus"] = self.program_member_status
        if self.list_id is not None:
            out["listId"] = str(self.list_id)
        if self.partition_name is not None:
            out["partitionName"] = self.partition_name
        if self.lookup_field is not None:
            out["lookupField"] = self.lookup_field
        return out


class BatchState(StrEnum):
    """A bulk import batch's `status` as Marketo reports it."""

    QUEUED = "Queued"
    IMPORTING = "Importing"
    COMPLETE = "Complete"
    FAILED = "Failed"

    @property
    def terminal(self) -> bool:
        """True once the batch will never change again."""
        return self in (BatchState.COMPLETE, BatchState.FAILED)


@dataclass(frozen=True)
class BatchStatus:
    """One status answer of a batch of any kind (`GET /bulk/v1/leads/batch/{batchId}.json`...).

    `leads_processed` counts the records imported: leads, program members, or custom object
    records (`numOfObjectsProcessed` in a custom object batch's answer).
    """

    batch_id: int
    status: BatchState
    leads_processed: int = 0
    rows_failed: int = 0
    rows_with_warning: int = 0
    message: str = ""


@dataclass(frozen=True)
class LeadField:
    """One lead field of `GET /rest/v1/leads/describe.json`, named as an import header uses it."""

    name: str  # the REST API name, the one a file's header row must use
    type: str
    length: int | None = None
    display_name: str = ""
    read_only: bool = False


@dataclass(frozen=True)
class Partition:
    """One lead partition of `GET /rest/v1/leads/partitions.json`."""

    id: int
    name: str
    description: str = ""


@dataclass(frozen=True)
class StaticList:
    """One static list of `GET /rest/v1/lists/{listId}.json`."""

    id: int
    name: str
    description: str = ""
    program_name: str = ""


@dataclass(frozen=True)
class ObjectField:
    """One field of a program member or custom object describe answer."""

    name: str  # the API name an import header uses
    type: str
    length: int | None = None
    display_name: str = ""
    read_only: bool = False  # not `updateable`: an import cannot write it


@dataclass(frozen=True)
class Program:
    """One program of `GET /rest/asset/v1/program/{id}.json`: its channel sets member statuses."""

    id: int
    name: str
    channel: str  # the channel's name


@dataclass(frozen=True)
class Channel:
    """One channel of `GET /rest/asset/v1/channels.json` with its program member statuses."""

    id: int
    name: str
    statuses: tuple[str, ...]  # progression statuses, in step order


@dataclass(frozen=True)
class CustomObjectType:
    """One custom object type of `GET /rest/v1/customobjects/{apiName}/describe.json`."""

    api_name: str
    display_name: str
    dedupe_fields: tuple[str, ...]  # records are matched on these (all of them: a compound key)
    fields: tuple[ObjectField, ...]


@dataclass(frozen=True)
class ClientStats:
    """What one client has done so far: calls, retries, ambiguous creates, time spent waiting."""

    calls_by_endpoint: dict[str, int]
    retries_by_reason: dict[str, int]
    errors_by_code: dict[str, int]
    ambiguous_create_retries: int
    token_fetches: int
    limiter_waits: int
    limiter_wait_seconds: float
    queue_waits: int
    queue_wait_seconds: float
    queued_imports: int

    @property
    def calls(self) -> int:
        """Calls sent to Marketo, identity excluded, retries included."""
        return sum(self.calls_by_endpoint.values())
