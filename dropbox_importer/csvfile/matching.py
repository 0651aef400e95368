"""Finding, for each row of a Marketo failures or warnings file, the row that was sent.

Marketo's rows are trusted for their content only. It may drop a row's empty trailing fields
(the reason then lands in the wrong column), leave out a column that is empty in every row it
lists, and list the rows in any order (MARKETO.md, "Learnt since"). So a row is found by
content: each of Marketo's columns is matched by its header name to a column of the file as
sent, and a sent row is Marketo's row when every value Marketo kept is the sent one and every
field it dropped was empty. Rows are looked up by one column (the lookup field's when Marketo
kept it) so a part of 100,000 rows costs one dictionary look-up per row, not a scan.
"""

from __future__ import annotations

import csv
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dropbox_importer.marketo.models import ImportFormat

# (row number in Marketo's file, its data fields, its reason)
Listed = tuple[int, list[str], str]


def split_reason(row: list[str], width: int, reason_at: int | None) -> tuple[list[str], str]:
    """A Marketo row's data fields and reason, wherever the reason landed."""
    if reason_at is not None and len(row) == width:
        return row[:reason_at] + row[reason_at + 1 :], row[reason_at]
    # Fields were dropped (or a reason added without a header name): the reason is last.
    return row[:-1], row[-1] if row else ""


def plain(value: str) -> str:
    """A value as compared: Marketo may trim values and rewrite line breaks inside them."""
    return value.replace("\r\n", "\n").replace("\r", "\n").strip()


def same(copy: str, original: str) -> bool:
    """True when Marketo's copy of a value is the original value."""
    return copy == original or plain(copy) == plain(original)


def column_map(marketo: Sequence[str], sent: Sequence[str]) -> list[int | None]:
    """For each of Marketo's data columns, the index of the sent column it is (None: unknown).

    By name: exactly first, then ignoring case and spaces; each sent column is used once, so
    columns Marketo left out are simply not mapped to.
    """
    if list(marketo) == list(sent):
        return list(range(len(sent)))
    free = list(range(len(sent)))
    found: list[int | None] = []
    for name in marketo:
        index = next((i for i in free if sent[i] == name), None)
        if index is None:
            key = name.strip().lower()
            index = next((i for i in free if sent[i].strip().lower() == key), None)
        if index is not None:
            free.remove(index)
        found.append(index)
    return found


def matches(sent: list[str], data: list[str], columns: Sequence[int | None]) -> bool:
    """True when Marketo's copy `data` (its columns mapped by `columns`) is the sent row.

    Columns past the end of `data` are fields Marketo dropped: they must be empty.
    """
    for position, index in enumerate(columns):
        if index is None:
            continue
        value = sent[index] if index < len(sent) else ""
        if position < len(data):
            if not same(data[position], value):
                return False
        elif value.strip():
            return False
    return True


@dataclass
class MarketoRows:
    """One part's rows of a Marketo failures or warnings file, indexed for matching."""

    columns: list[int | None]  # Marketo data column -> sent column
    anchor: int | None  # the Marketo data column rows are looked up by
    keyed: dict[str, deque[Listed]] = field(default_factory=dict)
    unkeyed: list[Listed] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # Marketo's data columns, as it wrote them

    def add(self, number: int, data: list[str], reason: str) -> None:
        """Index one of Marketo's rows (its row number in Marketo's file, fields, reason)."""
        if self.anchor is not None and self.anchor < len(data):
            key = plain(data[self.anchor])
            self.keyed.setdefault(key, deque()).append((number, data, reason))
        else:
            self.unkeyed.append((number, data, reason))

    def claim(self, sent: list[str]) -> str | None:
        """The reason of the first unclaimed Marketo row that is `sent`, now claimed; or None."""
        listed = self.claim_row(sent)
        return None if listed is None else listed[2]

    def claim_row(self, sent: list[str]) -> Listed | None:
        """The first unclaimed Marketo row that is `sent`, now claimed; or None."""
        if self.keyed and self.anchor is not None:
            index = self.columns[self.anchor]
            assert index is not None
            candidates = self.keyed.get(plain(sent[index] if index < len(sent) else ""), ())
            for position, listed in enumerate(candidates):
                if matches(sent, listed[1], self.columns):
                    assert isinstance(candidates, deque)
                    del candidates[position]
                    return listed
        for position, listed in enumerate(self.unkeyed):
            if matches(sent, listed[1], self.columns):
                del self.unkeyed[position]
                return listed
        return None

    def left(self) -> list[Listed]:
        """Rows no sent row matched, in Marketo's order."""
        rest = [row for rows in self.keyed.values() for row in rows] + self.unkeyed
        return sorted(rest, key=lambda row: row[0])


def read_marketo_rows(
    path: Path, fmt: ImportFormat, reason_column: str, sent_header: Sequence[str], lookup: str
) -> MarketoRows:
    """Read Marketo's file for one part; an empty file (HTTP 404: no rows) lists nothing."""
    with path.open(encoding="utf-8-sig", newline="") as stream:
        reader = csv.reader(stream, delimiter=fmt.delimiter)
        header = next(reader, [])
        names = [name.strip().lower() for name in header]
        at = names.index(reason_column.lower()) if reason_column.lower() in names else None
        data_names = [name for i, name in enumerate(header) if i != at]
        columns = column_map(data_names, sent_header)
        mapped = [i for i, index in enumerate(columns) if index is not None]
        lookups = [i for i in mapped if data_names[i].strip().lower() == lookup.lower()]
        anchors: list[int | None] = [*lookups, *mapped, None]
        rows = MarketoRows(columns, anchors[0], names=data_names)
        for number, row in enumerate(reader, start=2):
            data, reason = split_reason(row, len(header), at)
            rows.add(number, data, reason)
    return rows
