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

from dropbox_importer.csvfile import suggest_fields
from dropbox_importer.marketo.client import MarketoClient
from dropbox_importer.marketo.models import ImportParams

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

    def field_names(self, *, missing: Sequence[str] = ()) -> dict[str, str]:
        """Lower-cased REST field name -> the name as Marketo spells it.

        With `missing` names, a cached answer lacking one of them is asked again once it is
        older than the negative ttl.
        """

        def load() -> dict[str, str]:
            return {f.name.lower(): f.name for f in self._client.describe_fields()}

        names = self._cached("fields", load)
        if any(name.lower() not in names for name in missing):
            names = self._cached("fields", load, self._negative_ttl)
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


def check_header(header: Sequence[str], params: ImportParams, catalog: Catalog) -> None:
    """Raise PreflightError naming unknown columns (with suggestions) or a missing lookup column."""
    lookup_column = params.lookup_field or "email"
    known = catalog.field_names(missing=[name.strip() for name in header] + [lookup_column])
    unknown = [name for name in header if name.strip().lower() not in known]
    if unknown:
        hints = suggest_fields(unknown, known.values())
        described = ", ".join(
            f"'{name}'" + (f" (did you mean {hints[name]}?)" if hints.get(name) else "")
            for name in unknown
        )
        raise PreflightError(
            f"the header has columns that are no Marketo lead field: {described}; "
            "rename them to Marketo field names or remove them"
        )
    lookup = (params.lookup_field or "email").lower()
    if lookup not in {name.strip().lower() for name in header}:
        raise PreflightError(
            f"the lookup field '{params.lookup_field or 'email'}' is not a column of the file; "
            "add the column or route the file to a folder with another lookup field"
        )


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
            raise PreflightError(
                f"lead partition '{params.partition_name}' does not exist in Marketo "
                f"(known: {', '.join(sorted(partitions))}); ask the operator to fix the route"
            )
