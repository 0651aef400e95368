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
