"""Checking a file against the instance before an import slot is spent on it.

A header column that is no lead field, a list or partition that does not exist: Marketo would
take the file, queue it behind ten others and then fail it (or import it half). Asking
`describe.json`, `partitions.json` and `lists/{id}.json` first costs a few cached calls and
gives the partner a precise reason at once. Program member and custom object imports are
checked the same way against their own describe calls, their program's channel statuses and
their object's dedupe fields.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TypeVar

import structlog

from dropbox_importer.csvfile import KeyColumns, suggest_fields
from dropbox_importer.csvfile.header import Column, Fate, HeaderMap
from dropbox_importer.marketo.client import MarketoClient
from dropbox_importer.marketo.models import (
    CustomObjectType,
    ImportKind,
    ImportParams,
    LeadField,
    ObjectField,
    Program,
)

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
    """The instance's fields, partitions, lists, programs, channels and custom objects.

    Every answer is cached for `ttl` seconds.

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

    def member_fields(self, *, missing: bool = False) -> tuple[ObjectField, ...]:
        """The program member fields as `program/members/describe.json` lists them (`missing`:
        as for `fields`)."""
        max_age = self._negative_ttl if missing else None
        return self._cached("member_fields", self._client.describe_program_members, max_age)

    def program(self, program_id: int) -> Program | None:
        """The program with this id (and its channel's name), or None (kept the negative ttl)."""

        def load() -> Program | None:
            return self._client.get_program(program_id)

        found = self._cached(("program", program_id), load)
        if found is not None:
            return found
        return self._cached(("program", program_id), load, self._negative_ttl)

    def channel_statuses(self, channel: str) -> tuple[str, ...] | None:
        """The program member statuses of the channel with this name, or None if none has it."""

        def load() -> dict[str, tuple[str, ...]]:
            return {c.name: c.statuses for c in self._client.channels()}

        channels = self._cached("channels", load)
        if channel not in channels:
            channels = self._cached("channels", load, self._negative_ttl)
        return channels.get(channel)

    def custom_object(self, api_name: str) -> CustomObjectType | None:
        """The custom object type with this API name (fields, dedupe fields), or None (kept the
        negative ttl, so an object created meanwhile is found)."""

        def load() -> CustomObjectType | None:
            return self._client.describe_custom_object(api_name)

        found = self._cached(("object", api_name), load)
        if found is not None:
            return found
        return self._cached(("object", api_name), load, self._negative_ttl)


def check_header(header: HeaderMap, params: ImportParams, catalog: Catalog) -> None:
    """Raise PreflightError naming unknown columns (with suggestions) or a missing lookup column.

    `header` was mapped with the import kind's fields (`mapping_fields`): its unknown columns
    are the ones no REST name, alias or display name matched. Each kind's own describe is the
    judge: lead fields; lead and program member fields; the custom object's fields.
    """
    unknown = header.of(Fate.UNKNOWN)
    if unknown:
        fields = mapping_fields(params, catalog)
        # Suggest by REST name and by display name, whichever is closer to what was written.
        names = [f.name for f in fields] + [f.display_name for f in fields if f.display_name]
        hints = suggest_fields([c.original for c in unknown], names)
        described = ", ".join(_unknown(c, hints.get(c.original)) for c in unknown)
        if params.kind is ImportKind.PROGRAM_MEMBERS:
            raise PreflightError(
                "the header has columns that are neither Marketo lead fields nor program "
                f"member fields: {described}; rename them to Marketo field names or remove them"
            )
        if params.kind is ImportKind.CUSTOM_OBJECTS:
            obj = custom_object(params, catalog)
            writable = ", ".join(f.name for f in obj.fields if not f.read_only)
            raise PreflightError(
                f"the header has columns that are no field of custom object {obj.api_name}: "
                f"{described}; rename them to the object's fields ({writable}) or remove them"
            )
        raise PreflightError(
            f"the header has columns that are no Marketo lead field: {described}; "
            "rename them to Marketo field names or remove them"
        )
    if params.kind is not ImportKind.LEADS:
        return  # inspect_file required the key columns already
    lookup = (params.lookup_field or "email").lower()
    if lookup not in {name.lower() for name in header.sent_names}:
        raise PreflightError(
            f"the lookup field '{params.lookup_field or 'email'}' is not a column of the file; "
            "add the column or route the file to a folder with another lookup field"
        )


def mapping_fields(
    params: ImportParams, catalog: Catalog, *, missing: bool = False
) -> list[LeadField]:
    """The fields a header of this import kind is mapped to (csvfile.header), from describe.

    Leads: the lead fields. Program members: the lead fields, then the program member fields.
    Custom objects: the object's fields (PreflightError when there is no such object).
    `missing`: a column matched none of them; the lead and member fields are asked again if
    their answer is older than the negative ttl.
    """
    if params.kind is ImportKind.PROGRAM_MEMBERS:
        members = catalog.member_fields(missing=missing)
        return catalog.fields(missing=missing) + [_as_field(f) for f in members]
    if params.kind is ImportKind.CUSTOM_OBJECTS:
        return [_as_field(f) for f in custom_object(params, catalog).fields]
    return catalog.fields(missing=missing)


def _as_field(found: ObjectField) -> LeadField:
    # The header mapping reads a field's name and display name: those of any describe will do.
    return LeadField(
        found.name, found.type, found.length, found.display_name, read_only=found.read_only
    )


def _unknown(column: Column, hint: str | None) -> str:
    """One unknown column as the partner reads it, with a suggestion or the alias at fault."""
    shown = f"'{column.original}'"
    if column.how.startswith("columns.aliases"):
        return f"{shown} ({column.how}: ask the operator to fix the alias)"
    return shown + (f" (did you mean {hint}?)" if hint else "")


def check_targets(params: ImportParams, catalog: Catalog) -> ImportParams:
    """Raise PreflightError when what the route imports into does not exist.

    Leads: the list and partition. Program members: the program, and the status among its
    channel's. Custom objects: the object. Returns the parameters with Marketo's own spelling
    of the status (a route may write `status=attended`).
    """
    if params.kind is ImportKind.PROGRAM_MEMBERS:
        return check_program(params, catalog)
    if params.kind is ImportKind.CUSTOM_OBJECTS:
        custom_object(params, catalog)
        return params
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
    return params


# -- program members and custom objects --------------------------------------------------------

# The reasons of rows failed locally because a key value is empty, by import kind.
EMPTY_LOOKUP = "lookup field is empty"
EMPTY_EMAIL = "email is empty"
EMPTY_DEDUPE = "dedupe field is empty"
EMPTY_KEY_REASONS = (EMPTY_LOOKUP, EMPTY_EMAIL, EMPTY_DEDUPE)


def key_columns(params: ImportParams, catalog: Catalog | None) -> KeyColumns:
    """The columns every row of this import must fill, and how messages name them.

    Leads: the lookup field. Program members: email, each row's lead (Marketo: "every row needs
    email, the dedupe key"). Custom objects: the object's dedupe fields, known only from its
    describe, so none without a catalog (preflight off). PreflightError for an unknown object.
    """
    if params.kind is ImportKind.PROGRAM_MEMBERS:
        return KeyColumns(
            ("email",),
            role="the key of each row's lead",
            missing="'{name}', the key of each row's lead,",
            fix="add or rename the column: program members are found, or created, by email",
            empty=EMPTY_EMAIL,
            every="'email' (the key of each row's lead)",
        )
    if params.kind is ImportKind.CUSTOM_OBJECTS:
        if catalog is None:
            return KeyColumns(())
        obj = custom_object(params, catalog)
        return KeyColumns(
            obj.dedupe_fields,
            role=f"a dedupe field of custom object {obj.api_name}",
            missing=f"custom object {obj.api_name}'s dedupe field '{{name}}'",
            fix="add or rename the column: records are matched on it",
            empty=EMPTY_DEDUPE,
            every=f"dedupe field ({', '.join(obj.dedupe_fields)})",
        )
    lookup = params.lookup_field or "email"  # Marketo's default lookup field
    return KeyColumns((lookup,), empty=EMPTY_LOOKUP, every=f"'{lookup}' (the lookup field)")


def custom_object(params: ImportParams, catalog: Catalog) -> CustomObjectType:
    """The route's custom object type; PreflightError when Marketo has none of that name."""
    name = params.object_name or ""
    found = catalog.custom_object(name)
    if found is None:
        raise PreflightError(
            f"custom object '{name}' does not exist in Marketo; ask the operator to fix the "
            "route folder (object= takes the object's API name, e.g. car_c)"
        )
    return found


def check_program(params: ImportParams, catalog: Catalog) -> ImportParams:
    """The program must exist and the status be one of its channel's; Marketo's spelling back."""
    program_id, status = params.program_id or 0, params.program_member_status or ""
    program = catalog.program(program_id)
    if program is None:
        raise PreflightError(
            f"program {program_id} does not exist in Marketo; ask the operator to fix the route "
            "folder (program= takes the program's id)"
        )
    statuses = catalog.channel_statuses(program.channel) or ()
    if not statuses:
        raise PreflightError(
            f"program {program_id}'s channel '{program.channel}' has no program member "
            "statuses in Marketo; ask the operator to check the program's channel"
        )
    spelt = spelt_status(statuses, status)
    if spelt is None:
        raise PreflightError(
            f"programMemberStatus '{status}' is not a status of program {program_id} "
            f"('{program.name}', channel {program.channel}): use one of "
            f"{', '.join(statuses)}"
        )
    return replace(params, program_member_status=spelt)


def spelt_status(statuses: Sequence[str], status: str) -> str | None:
    """The channel's spelling of `status`, matched whatever its case, or None if it has none."""
    wanted = status.strip().lower()
    return next((s for s in statuses if s.lower() == wanted), None)
