"""Checking a file against the instance before an import slot is spent on it.

A header column that is no lead field, a list or partition that does not exist: Marketo would
take the file, queue it behind ten others and then fail it (or import it half). Asking
`describe.json`, `partitions.json` and `lists/{id}.json` first costs a few cached calls and
gives the partner a precise reason at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import structlog

from dropbox_importer.csvfile import suggest_fields
from dropbox_importer.csvfile.header import Column, Fate, HeaderMap
from dropbox_importer.marketo.client import MarketoClient
from dropbox_importer.marketo.models import ImportParams, LeadField

log = structlog.get_logger(__name__)

T = TypeVar("T")

# An answer that something is missing (a list, a partition, a field) is trusted this long only:
# an operator who creates it and drops the file again waits at most a minute, while a partner
# dropping file after file into a folder of a missing list costs one lookup a minute, a small
# share of Marketo's 100 calls per 20 s and 50,000 a day. Answers that it exists keep `ttl`.
NEGATIVE_TTL_SECONDS = 60.0


class PreflightError(Exception):
    """The file cannot be imported as routed; the message tells the partner why and what to do."""


class Catalog:
    """The instance's lead fields, partitions and lists, cached for `ttl` seconds.

    A lookup that finds something missing asks again once its answer is older than
    `negative_ttl` seconds (NEGATIVE_TTL_SECONDS), so a list created meanwhile is found.
    """

    def __init__(
        self,
        client: MarketoClient,
        *,
        ttl: float = 3600.0,
        negative_ttl: float = NEGATIVE_TTL_SECONDS,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._client = client
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._clock = clock or time.monotonic
        self._lock = threading.Lock()
        self._cache: dict[object, tuple[float, object]] = {}

    def _cached(self, key: object, load: Callable[[], T], max_age: float | None = None) -> T:
        with self._lock:
            hit = self._cache.get(key)
        age_limit = self._ttl if max_age is None else min(max_age, self._ttl)
        if hit is not None and self._clock() - hit[0] < age_limit:
            return hit[1]  # type: ignore[return-value]
        value = load()
        with self._lock:
            self._cache[key] = (self._clock(), value)
        return value

    def fields(self, *, missing: bool = False) -> list[LeadField]:
        """The instance's lead fields as describe.json lists them.

        `missing`: a column matched none of them; an answer older than the negative ttl is
        asked again (a field created meanwhile is found).
        """
        max_age = self._negative_ttl if missing else None
        return self._cached("fields", self._client.describe_fields, max_age)

    def field_names(self, *, missing: Sequence[str] = ()) -> dict[str, str]:
        """Lower-cased REST field name -> the name as Marketo spells it.

        With `missing` names, a cached answer lacking one of them is asked again once it is
        older than the negative ttl.
        """
        names = {f.name.lower(): f.name for f in self.fields()}
        if any(name.lower() not in names for name in missing):
            names = {f.name.lower(): f.name for f in self.fields(missing=True)}
        return names

    def partition_names(self, *, missing: str | None = None) -> set[str]:
        """Names of the instance's lead partitions (asked again sooner if `missing` is absent)."""

        def load() -> set[str]:
            return {p.name for p in self._client.partitions()}

        names = self._cached("partitions", load)
        if missing is not None and missing not in names:
            names = self._cached("partitions", load, self._negative_ttl)
        return names

    def list_exists(self, list_id: int) -> bool:
        """True when a static list with this id exists (a "no" is kept for the negative ttl)."""

        def load() -> bool:
            return self._client.get_list(list_id) is not None

        if self._cached(("list", list_id), load):
            return True
        return self._cached(("list", list_id), load, self._negative_ttl)


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
        partitions = catalog.partition_names(missing=params.partition_name)
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
