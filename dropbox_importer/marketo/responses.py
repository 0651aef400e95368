"""Marketo's answers turned into outcomes and typed values: pure functions, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dropbox_importer.marketo.models import (
    BatchState,
    BatchStatus,
    Channel,
    CustomObjectType,
    LeadField,
    ObjectField,
    Partition,
    Program,
    StaticList,
)
from dropbox_importer.marketo.policy import HTTP_5XX, HTTP_429


class MalformedResponseError(ValueError):
    """An answer that does not have the shape Adobe documents."""


@dataclass(frozen=True)
class Outcome:
    """One attempt's result: `condition` is None on success, else a code or transport condition."""

    condition: str | None = None
    message: str = ""
    result: list[Any] = field(default_factory=list)
    # True when Marketo answered with a response-level error: it did not count the call.
    refused: bool = False
    # True when a transport fault struck after the request may have reached Marketo.
    ambiguous: bool = False

    @property
    def ok(self) -> bool:
        """True when the call succeeded."""
        return self.condition is None


def classify(status_code: int, body: Any, *, raw_ok: bool = False) -> Outcome:
    """Classify an HTTP answer: `body` is the parsed JSON, or None when it is not JSON."""
    if status_code >= 500:
        return Outcome(HTTP_5XX, f"HTTP {status_code}")
    if status_code == 429:
        return Outcome(HTTP_429, "HTTP 429")
    if status_code != 200:
        return Outcome(f"http_{status_code}", f"HTTP {status_code}")
    if body is None:
        return Outcome() if raw_ok else Outcome("malformed", "answer is not JSON")
    if not isinstance(body, dict):
        return Outcome("malformed", "answer is not a JSON object")
    if body.get("success") is True:
        result = body.get("result", [])
        return Outcome(result=result if isinstance(result, list) else [])
    errors = body.get("errors") or [{}]
    first = errors[0] if isinstance(errors[0], dict) else {}
    code = str(first.get("code", "unknown"))
    return Outcome(code, str(first.get("message", "")), refused=True)


def _first(result: list[Any]) -> dict[str, Any]:
    if not result or not isinstance(result[0], dict):
        raise MalformedResponseError("empty result")
    row: dict[str, Any] = result[0]
    return row


def parse_batch_id(result: list[Any]) -> int:
    """The batch id of a create's answer."""
    try:
        return int(_first(result)["batchId"])
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedResponseError(f"no batchId: {exc}") from None


def parse_batch_status(result: list[Any]) -> BatchStatus:
    """A status answer as a BatchStatus."""
    row = _first(result)
    try:
        return BatchStatus(
            batch_id=int(row["batchId"]),
            status=BatchState(row["status"]),
            # Custom object batches count `numOfObjectsProcessed` instead.
            leads_processed=int(
                row.get("numOfLeadsProcessed") or row.get("numOfObjectsProcessed") or 0
            ),
            rows_failed=int(row.get("numOfRowsFailed") or 0),
            rows_with_warning=int(row.get("numOfRowsWithWarning") or 0),
            message=str(row.get("message") or ""),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedResponseError(f"bad batch status: {exc}") from None


def parse_fields(result: list[Any]) -> list[LeadField]:
    """A describe answer as lead fields named by their REST names."""
    fields = []
    for row in result:
        rest = row.get("rest") or {}
        if not rest.get("name"):
            continue  # SOAP-only fields cannot appear in an import header
        length = row.get("length")
        fields.append(
            LeadField(
                name=str(rest["name"]),
                type=str(row.get("dataType", "")),
                length=int(length) if length is not None else None,
                display_name=str(row.get("displayName", "")),
                read_only=bool(rest.get("readOnly", False)),
            )
        )
    return fields


def parse_partitions(result: list[Any]) -> list[Partition]:
    """A partitions answer as Partition values."""
    return [
        Partition(id=int(r["id"]), name=str(r["name"]), description=str(r.get("description", "")))
        for r in result
    ]


def parse_list(result: list[Any]) -> StaticList | None:
    """A list answer as a StaticList; None when the result is empty (no such list)."""
    if not result:
        return None
    row = _first(result)
    return StaticList(
        id=int(row["id"]),
        name=str(row["name"]),
        description=str(row.get("description") or ""),
        program_name=str(row.get("programName") or ""),
    )


def parse_object_fields(fields: list[Any]) -> tuple[ObjectField, ...]:
    """The `fields` of a program member or custom object describe answer."""
    out = []
    for row in fields:
        if not isinstance(row, dict) or not row.get("name"):
            continue
        length = row.get("length")
        out.append(
            ObjectField(
                name=str(row["name"]),
                type=str(row.get("dataType", "")),
                length=int(length) if length is not None else None,
                display_name=str(row.get("displayName") or ""),
                read_only=row.get("updateable") is False,
            )
        )
    return tuple(out)


def parse_member_fields(result: list[Any]) -> tuple[ObjectField, ...]:
    """`GET /rest/v1/program/members/describe.json` as the program member fields."""
    return parse_object_fields(_first(result).get("fields") or [])


def parse_program(result: list[Any]) -> Program | None:
    """A program answer as a Program; None when the result is empty (no such program)."""
    if not result:
        return None
    row = _first(result)
    return Program(id=int(row["id"]), name=str(row.get("name") or ""), channel=str(row["channel"]))


def parse_channels(result: list[Any]) -> list[Channel]:
    """A channels answer as Channels, each with its statuses in step order."""
    channels = []
    for row in result:
        statuses = sorted(row.get("progressionStatuses") or [], key=lambda s: s.get("step") or 0)
        channels.append(
            Channel(
                id=int(row["id"]),
                name=str(row["name"]),
                statuses=tuple(str(s["name"]) for s in statuses if s.get("name")),
            )
        )
    return channels


def parse_custom_object(result: list[Any]) -> CustomObjectType | None:
    """A custom object describe answer; None when the result is empty (no such object)."""
    if not result:
        return None
    row = _first(result)
    return CustomObjectType(
        api_name=str(row["apiName"]),
        display_name=str(row.get("displayName") or ""),
        dedupe_fields=tuple(str(name) for name in row.get("dedupeFields") or ()),
        fields=parse_object_fields(row.get("fields") or []),
    )
