"""A partner's header row as Marketo will read it: each column mapped to a lead field, or not sent.

Partners' files come from their own tools ("Email Address", "First Name", "E-Mail"). Marketo's
list import in its UI maps display names and per-field import aliases; the bulk API matches the
names as sent, case aside (see ../shared/MARKETO.md, "Learnt since": " email" with a space is no
field). So the header is mapped here, before any check against Marketo, and the mapped header is
what Marketo receives. Each column, in this order, first match wins:

 1. the name, trimmed of surrounding white space, is in `columns.ignore`: never sent;
 2. it is a REST field name in any case: sent under the exact REST name from describe;
 3. it is a key of `columns.aliases` (any case): sent under the alias's field;
 4. it is a field's display name from describe (any case): "Email Address" -> email;
    two fields sharing that display name make the column ambiguous, an error naming both.

A mapped field is then denied when `columns.deny` names it, when it is a protected consent or
suppression field that `columns.allow` does not name, or when `columns.allow` is given and does not
name it (the route's lookup field is always allowed). Denied columns fail the file, or with
`on_denied: drop` are left out and said so in result.json.

Without describe (preflight off) only steps 1 and 3 apply; other names are sent trimmed, as written.
The original file is never changed: parts are written with the mapped header.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from dropbox_importer.csvfile.source import FileRejected, iter_lines, open_source
from dropbox_importer.marketo.models import ImportFormat, LeadField

# Consent and suppression fields: a partner file must never change them unless the operator names
# them in columns.allow (MARKETO.md: Marketo's UI import does not overwrite unsubscribed; for
# the bulk API this is unconfirmed, so it is never left to Marketo).
PROTECTED_FIELDS = (
    "unsubscribed",
    "unsubscribedReason",
    "marketingSuspended",
    "doNotCall",
    "doNotCallReason",
    "blackListed",
    "blackListedCause",
    "emailInvalid",
    "emailInvalidCause",
)


class Fate(StrEnum):
    """What happens to one column of a partner's file."""

    SENT = "sent"
    IGNORED = "ignored"  # columns.ignore: never sent, kept in the original
    DENIED = "denied"  # protected, columns.deny or not in columns.allow
    UNKNOWN = "unknown"  # no lead field of the instance
    AMBIGUOUS = "ambiguous"  # a display name two fields share


@dataclass(frozen=True)
class ColumnRules:
    """A drop box's (or route's) rules for the columns of its files; names are REST names."""

    aliases: Mapping[str, str] = field(default_factory=dict)  # partner's name -> REST name
    ignore: tuple[str, ...] = ()  # partners' column names never sent
    allow: tuple[str, ...] | None = None  # None: any lead field (protected ones aside)
    deny: tuple[str, ...] = ()
    on_denied: str = "reject"  # reject | drop

    def denial(self, name: str, lookup: str) -> str | None:
        """Why the field `name` may not be sent (the rule and its fix), or None when it may."""
        key = name.casefold()
        allowed = {n.casefold() for n in self.allow or ()}
        if key in {n.casefold() for n in self.deny}:
            return "columns.deny names it"
        if key in _PROTECTED and key not in allowed:
            return "a protected consent or suppression field, sent only if columns.allow names it"
        if self.allow is not None and key not in allowed and key != lookup.casefold():
            return "not in columns.allow"
        return None


_PROTECTED = {name.casefold() for name in PROTECTED_FIELDS}


@dataclass(frozen=True)
class Column:
    """One column of the partner's header and what becomes of it."""

    index: int  # 0-based position in the original
    original: str  # the name exactly as in the file
    field: str | None  # the REST name it is sent as (None when not sent)
    fate: Fate
    how: str  # how it was mapped, or why it is not sent
    candidates: tuple[str, ...] = ()  # for AMBIGUOUS: the fields it could mean


@dataclass(frozen=True)
class HeaderMap:
    """Every column of a header with its fate; `sent` is the header Marketo receives."""

    columns: tuple[Column, ...]

    @property
    def sent(self) -> tuple[int, ...]:
        """Indices of the original columns sent, in order."""
        return tuple(c.index for c in self.columns if c.fate is Fate.SENT)

    @property
    def sent_names(self) -> list[str]:
        """The header row Marketo receives."""
        return [c.field or c.original for c in self.columns if c.fate is Fate.SENT]

    @property
    def drops_columns(self) -> bool:
        """True when some original column is not sent."""
        return len(self.sent) != len(self.columns)

    @property
    def lookup_names(self) -> list[str]:
        """One name per original column: the field it is sent as, "" when not sent."""
        return [(c.field or c.original) if c.fate is Fate.SENT else "" for c in self.columns]

    def of(self, fate: Fate) -> list[Column]:
        """The columns with this fate."""
        return [c for c in self.columns if c.fate is fate]


def _fold(name: str) -> str:
    return name.strip().casefold()


def _by_display_name(fields: Sequence[LeadField]) -> dict[str, list[LeadField]]:
    out: dict[str, list[LeadField]] = {}
    for lead_field in fields:
        if lead_field.display_name:
            out.setdefault(_fold(lead_field.display_name), []).append(lead_field)
    return out


def map_header(
    header: Sequence[str],
    fields: Sequence[LeadField] | None,
    rules: ColumnRules = ColumnRules(),
    *,
    lookup: str = "email",
) -> HeaderMap:
    """Map each column to a lead field; `fields` is describe's answer, None when not asked."""
    rest = None if fields is None else {f.name.casefold(): f.name for f in fields}
    display = {} if fields is None else _by_display_name(fields)
    aliases = {_fold(k): v.strip() for k, v in rules.aliases.items()}
    ignored = {_fold(name) for name in rules.ignore}
    columns = []
    for index, original in enumerate(header):
        key = _fold(original)
        if key in ignored:
            columns.append(Column(index, original, None, Fate.IGNORED, "columns.ignore"))
            continue
        column = _mapped(index, original, key, rest, aliases, display)
        if column.fate is Fate.SENT and column.field is not None:
            reason = rules.denial(column.field, lookup)
            if reason is not None:
                column = Column(index, original, column.field, Fate.DENIED, reason)
        columns.append(column)
    return HeaderMap(tuple(columns))


def _mapped(
    index: int,
    original: str,
    key: str,
    rest: dict[str, str] | None,
    aliases: dict[str, str],
    display: dict[str, list[LeadField]],
) -> Column:
    """One column mapped by REST name, alias, then display name."""
    if rest is not None and key in rest:
        return Column(index, original, rest[key], Fate.SENT, "REST name")
    if key in aliases:
        target = aliases[key]
        if rest is None:
            return Column(index, original, target, Fate.SENT, "columns.aliases")
        if target.casefold() in rest:
            return Column(index, original, rest[target.casefold()], Fate.SENT, "columns.aliases")
        return Column(
            index,
            original,
            None,
            Fate.UNKNOWN,
            f"columns.aliases maps it to '{target}', which is no lead field of the instance",
        )
    matches = display.get(key, [])
    if len(matches) == 1:
        return Column(index, original, matches[0].name, Fate.SENT, "display name")
    if len(matches) > 1:
        names = tuple(f.name for f in matches)
        return Column(index, original, None, Fate.AMBIGUOUS, "display name", names)
    if rest is None:
        return Column(index, original, original.strip(), Fate.SENT, "as written")
    return Column(index, original, None, Fate.UNKNOWN, "no lead field of the instance")


def refuse_unmappable(header_map: HeaderMap, rules: ColumnRules) -> None:
    """Raise FileRejected for an ambiguous column, two columns meaning one field, or a denied
    column when the rules say reject; the message names the columns, the rule and the fix."""
    for column in header_map.of(Fate.AMBIGUOUS):
        shown = " and ".join(f"'{name}'" for name in column.candidates)
        raise FileRejected(
            f"line 1: column '{column.original.strip()}' could mean the Marketo fields {shown} "
            "(they share that display name) — rename the column to the one meant, or ask the "
            "operator for a columns.aliases entry",
            1,
        )
    seen: dict[str, Column] = {}
    for column in header_map.of(Fate.SENT):
        key = (column.field or "").casefold()
        # One name written twice is inspect_file's to report, with the same words as ever.
        if key in seen and _fold(seen[key].original) != _fold(column.original):
            first = seen[key]
            raise FileRejected(
                f"line 1: columns '{first.original.strip()}' ({first.index + 1}) and "
                f"'{column.original.strip()}' ({column.index + 1}) both mean the Marketo field "
                f"'{column.field}' — keep one of them",
                1,
            )
        seen[key] = column
    denied = header_map.of(Fate.DENIED)
    if denied and rules.on_denied == "reject":
        shown = "; ".join(f"'{c.original.strip()}' ({c.how})" for c in denied)
        raise FileRejected(
            f"line 1: this drop box does not take the column(s) {shown} — remove them from "
            "the file, or ask the operator to allow them (columns.allow) or to drop such "
            "columns instead (columns.on_denied: drop)",
            1,
        )


def sent_values(row: Sequence[str], sent: Sequence[int]) -> list[str]:
    """The values of an original row that were sent, in the order Marketo received them."""
    return [row[i] if i < len(row) else "" for i in sent]


def to_partner_columns(values: Sequence[str], sent: Sequence[int], width: int) -> list[str]:
    """A row in Marketo's columns (the sent ones) spread back under the partner's own columns.

    Used for a row of Marketo's failures or warnings file that matches no original row: the
    partner's file keeps the partner's header, so the values go back to their own columns and
    the columns never sent stay empty.
    """
    out = [""] * width
    for position, value in zip(sent, values, strict=False):
        out[position] = value
    return out


def read_header(path: Path, fmt: ImportFormat, encoding: str = "utf-8") -> list[str] | None:
    """The file's header row; None when it has no readable first record (inspect_file says why).

    Raises FileRejected when the file is no text (binary, undecodable at the start).
    """
    lines = iter_lines(open_source(path, encoding))
    try:
        row = next(csv.reader(lines, delimiter=fmt.delimiter, strict=True), None)
    except csv.Error:
        return None
    return row if row and any(name.strip() for name in row) else None
