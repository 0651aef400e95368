"""Checking a file against the instance before an import slot is spent on it.

A header column that is no lead field, a list or partition that does not exist: Marketo would
take the file, queue it behind ten others and then fail it (or import it half). Asking
`describe.json`, `partitions.json` and `lists/{id}.json` first costs a few cached calls and
gives the partner a precise reason at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

import structlog

from dropbox_importer.csvfile import suggest_fields
from dropbox_importer.csvfile.header import Column, Fate, HeaderMap
from dropbox_importer.marketo.client import MarketoClient
from dropbox_importer.marketo.models import ImportParams, LeadField

log = structlog.get_logger(__name__)

T = TypeVar("T")


class PreflightError(Exception):
    """The file cannot be imported as routed; the message tells the partner why and what to do."""


class Catalog:
    """The instance's lead fields, partitions and lists, cached for `ttl` seconds."""

    def __init__(self, client: MarketoClient, *, ttl: float = 3600.0) -> None:
        self._client = client
        self._ttl = ttl
        self._lock = threading.Lock()
        self._cache: dict[object, tuple[float, object]] = {}

    def _cached(self, key: object, load: Callable[[], T]) -> T:
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < self._ttl:
            return hit[1]  # type: ignore[return-value]
        value = load()
        with self._lock:
            self._cache[key] = (time.monotonic(), value)
        return value

    def fields(self) -> list[LeadField]:
        """The instance's lead fields as describe.json lists them."""
        return self._cached("fields", self._client.describe_fields)

    def field_names(self) -> dict[str, str]:
        """Lower-cased REST field name -> the name as Marketo spells it."""
        return {f.name.lower(): f.name for f in self.fields()}

    def partition_names(self) -> set[str]:
        """Names of the instance's lead partitions."""
        return self._cached("partitions", lambda: {p.name for p in self._client.partitions()})

    def list_exists(self, list_id: int) -> bool:
        """True when a static list with this id exists."""
        return self._cached(("list", list_id), lambda: self._client.get_list(list_id) is not None)


def check_header(header: HeaderMap, params: ImportParams, catalog: Catalog) -> None:
    """Raise PreflightError naming unknown columns (with suggestions) or a missing lookup column.

    `header` was mapped with the catalog's fields (csvfile.header): its unknown columns are
    the ones no REST name, alias or display name matched.
    """
    unknown = header.of(Fate.UNKNOWN)
    if unknown:
        fields = catalog.fields()
        # Suggest by REST name and by display name, whichever is closer to what was written.
        names = [f.name for f in fields] + [f.display_name for f in fields if f.display_name]
        hints = suggest_fields([c.original for c in unknown], names)
        described = ", ".join(_unknown(c, hints.get(c.original)) for c in unknown)
        raise PreflightError(
            f"the header has columns that are no Marketo lead field: {described}; "
            "rename them to Marketo field names or remove them"
        )
    lookup = (params.lookup_field or "email").lower()
    if lookup not in {name.lower() for name in header.sent_names}:
        raise PreflightError(
            f"the lookup field '{params.lookup_field or 'email'}' is not a column of the file; "
            "add the column or route the file to a folder with another lookup field"
        )


def _unknown(column: Column, hint: str | None) -> str:
    """One unknown column as the partner reads it, with a suggestion or the alias at fault."""
    shown = f"'{column.original}'"
    if column.how.startswith("columns.aliases"):
        return f"{shown} ({column.how}: ask the operator to fix the alias)"
    return shown + (f" (did you mean {hint}?)" if hint else "")


def check_targets(params: ImportParams, catalog: Catalog) -> None:
    """Raise PreflightError when the route's list or partition does not exist."""
    if params.list_id is not None and not catalog.list_exists(params.list_id):
        raise PreflightError(
            f"static list {params.list_id} does not exist in Marketo; "
            "ask the operator to fix the route folder"
        )
    if params.partition_name is not None:
        partitions = catalog.partition_names()
        if params.partition_name not in partitions:
            # The partner reads the reason: other partitions belong to other tenants, so only
            # the operator's log names them.
            log.warning(
                "preflight_partition_unknown",
                partitionName=params.partition_name,
                known=sorted(partitions),
            )
            raise PreflightError(
                f"lead partition '{params.partition_name}' does not exist in Marketo; "
                "ask the operator to fix the route"
            )
