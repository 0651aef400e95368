"""Typed values exchanged with Marketo's bulk lead import: nothing past this layer is a raw dict."""

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


@dataclass(frozen=True)
class ImportParams:
    """The query parameters of `POST /bulk/v1/leads.json`, as a route folder sets them."""

    format: ImportFormat
    list_id: int | None = None
    partition_name: str | None = None
    lookup_field: str | None = None

    def query(self) -> dict[str, str]:
        """The request's query string, with Marketo's own parameter names."""
        out = {"format": self.format.value}
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
    """One answer of `GET /bulk/v1/leads/batch/{batchId}.json`."""

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
