"""The partner's result file: every failed row with its original line number and the reason.

Marketo returns one failures (or warnings) file per import, in the upload's format, with the
reason appended. Those rows are not trusted to be complete: Marketo may drop a row's empty
trailing fields, so the reason lands in the wrong column. Each of Marketo's rows is therefore
matched, in order, against the original's rows of the same part; the line number and the fields
written come from the original, only the reason comes from Marketo.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import structlog

from dropbox_importer.csvfile.header import sent_values, to_partner_columns
from dropbox_importer.csvfile.source import Source, iter_lines, open_source
from dropbox_importer.csvfile.split import Part
from dropbox_importer.marketo.models import ImportFormat

log = structlog.get_logger(__name__)

LINE_COLUMN = "Line"
_TERMINATORS = {"lf": "\n", "crlf": "\r\n", "cr": "\r"}

Row = tuple[int, list[str]]


def original_rows(src: Source, fmt: ImportFormat) -> Iterator[Row]:
    """(start line, fields) of each non-blank record after the header, in file order."""
    reader = csv.reader(iter_lines(src), delimiter=fmt.delimiter)
    previous = 0
    for fields in reader:
        start, previous = previous + 1, reader.line_num
        if start == 1:
            continue
        if not any(value.strip() for value in fields):
            continue  # blank rows (delimiters alone too) are never sent
        yield start, fields


def split_reason(row: list[str], width: int, reason_at: int | None) -> tuple[list[str], str]:
    """A Marketo row's data fields and reason, wherever the reason landed."""
    if reason_at is not None and len(row) == width:
        return row[:reason_at] + row[reason_at + 1 :], row[reason_at]
    # Fields were dropped (or a reason added without a header name): the reason is last.
    return row[:-1], row[-1] if row else ""


def _same(copy: str, original: str) -> bool:
    # Marketo may trim values and rewrite line breaks inside them; neither identifies a row.
    if copy == original:
        return True
    return _plain(copy) == _plain(original)


def _plain(value: str) -> str:
    return value.replace("\r\n", "\n").replace("\r", "\n").strip()


def matches(original: list[str], data: list[str]) -> bool:
    """True when Marketo's copy is the original row, maybe without empty trailing fields."""
    if len(data) > len(original):
        return False
    if not all(_same(a, b) for a, b in zip(data, original, strict=False)):
        return False
    return all(not value.strip() for value in original[len(data) :])


class _Merger:
    """Walks the original's rows once, writing local failures as they pass by."""

    def __init__(
        self,
        rows: Iterator[Row],
        local: Mapping[int, str],
        writer: Any,
        quote_all: Any,
        sent: Sequence[int] | None = None,
        width: int = 0,
    ) -> None:
        self._sent = sent  # the original's columns Marketo received; None: all of them
        self._width = width  # columns of the original's header
        self._rows = rows
        self._local = local
        self._writer = writer
        self._quote_all = quote_all
        self.written = 0

    def emit(self, line: int | str, fields: list[str], reason: str) -> None:
        """Write one result row."""
        row = [line, *fields, reason]
        # csv.writer leaves a lone carriage return unquoted when lines end in "\n" alone.
        lone_cr = any("\r" in value for value in [*fields, reason])
        (self._quote_all if lone_cr else self._writer).writerow(row)
        self.written += 1

    def take(self) -> Row | None:
        """The next row that was sent to Marketo (None at the end of the file)."""
        for line, fields in self._rows:
            if line in self._local:
                self.emit(line, fields, self._local[line])
                continue
            return line, fields
        return None

    def _matches(self, original: Row, data: list[str]) -> bool:
        fields = original[1] if self._sent is None else sent_values(original[1], self._sent)
        return matches(fields, data)

    def _partner(self, data: list[str]) -> list[str]:
        """Marketo's row under the partner's own columns."""
        return data if self._sent is None else to_partner_columns(data, self._sent, self._width)

    def part(self, part: Part, rows: Iterator[list[str]], width: int, at: int | None) -> None:
        """Match Marketo's rows of one part to the original's, in order, and write them."""
        taken = 0
        pending: list[Row] = []  # taken from the original, not yet matched
        for number, row in enumerate(rows, start=2):
            data, reason = split_reason(row, width, at)
            found = next((i for i, r in enumerate(pending) if self._matches(r, data)), None)
            while found is None and taken < part.rows:
                nxt = self.take()
                taken += 1
                if nxt is None:
                    break
                pending.append(nxt)
                if self._matches(nxt, data):
                    found = len(pending) - 1
            if found is None:
                log.warning("result_row_unmatched", part=part.index, marketo_row=number)
                self.emit("", self._partner(data), reason)
                continue
            line, fields = pending[found]
            self.emit(line, fields, reason)
            del pending[: found + 1]
        while taken < part.rows and self.take() is not None:
            taken += 1


def _marketo_rows(
    path: Path, fmt: ImportFormat, reason_column: str
) -> tuple[Iterator[list[str]], int, int | None, Any]:
    stream = path.open(encoding="utf-8-sig", newline="")
    reader = csv.reader(stream, delimiter=fmt.delimiter)
    header = next(reader, [])
    names = [name.strip().lower() for name in header]
    at = names.index(reason_column.lower()) if reason_column.lower() in names else None
    return reader, len(header), at, stream


def write_results(
    parts: Sequence[Part],
    marketo_files: Sequence[Path | None],
    out: Path,
    *,
    original: Path,
    fmt: ImportFormat,
    reason_column: str,
    encoding: str = "utf-8",
    local_failures: Mapping[int, str] | None = None,
    sent: Sequence[int] | None = None,
) -> int:
    """Merge Marketo's per-part files and local failures into one file in the original's order.

    Writes `Line`, the original's columns and `reason_column`, in the original's delimiter,
    encoding, BOM and line ends; returns the rows written (no file is written for 0 rows).
    `sent` lists the original's columns the parts carried (see csvfile.header), when not all.
    """
    src = open_source(original, encoding)
    local = local_failures or {}
    header = next(
        csv.reader(iter_lines(src), delimiter=fmt.delimiter), []
    )  # the original's own spelling
    tmp = out.with_name(f".{out.name}.tmp")
    codec = "utf-8-sig" if src.bom and src.is_utf8 else src.encoding
    with tmp.open("w", encoding=codec, errors="replace", newline="") as stream:
        end = _TERMINATORS[src.newline]
        writer = csv.writer(stream, delimiter=fmt.delimiter, lineterminator=end)
        quote_all = csv.writer(
            stream, delimiter=fmt.delimiter, lineterminator=end, quoting=csv.QUOTE_ALL
        )
        writer.writerow([LINE_COLUMN, *header, reason_column])
        merger = _Merger(original_rows(src, fmt), local, writer, quote_all, sent, len(header))
        for part, failures in zip(parts, marketo_files, strict=True):
            if failures is None:
                merger.part(part, iter(()), 0, None)
                continue
            rows, width, at, handle = _marketo_rows(failures, fmt, reason_column)
            with handle:
                merger.part(part, rows, width, at)
        while merger.take() is not None:
            pass
    if merger.written == 0:
        tmp.unlink()
        return 0
    tmp.replace(out)
    return merger.written
