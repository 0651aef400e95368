"""The partner's result file: every failed row with its original line number and the reason.

Marketo returns one failures (or warnings) file per import, in the upload's format, with the
reason appended. Its rows are trusted for their content only (matching.py finds the sent row of
each). The original's rows are walked once, in step with the part files as they were sent, and
each row Marketo listed is written in the original's order: the line number and the fields come
from the original, only the reason from Marketo. Identical rows are taken in file order.
"""

from __future__ import annotations

import csv
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import structlog

from dropbox_importer.csvfile.header import sent_values, to_partner_columns
from dropbox_importer.csvfile.matching import MarketoRows, read_marketo_rows
from dropbox_importer.csvfile.source import Source, iter_lines, open_source
from dropbox_importer.csvfile.split import Part
from dropbox_importer.marketo.models import ImportFormat

log = structlog.get_logger(__name__)

LINE_COLUMN = "Line"
_TERMINATORS = {"lf": "\n", "crlf": "\r\n", "cr": "\r"}

Row = tuple[int, list[str]]
# A part as sent: its header, and an iterator over its rows.
SentPart = tuple[list[str], Iterator[list[str]]]


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
        unsent: Collection[int] = (),
    ) -> None:
        self._sent = sent  # the original's columns Marketo received; None: all of them
        self._width = width  # columns of the original's header
        self._rows = rows
        self._local = local
        self._unsent = unsent  # lines never sent (failed locally), not written here
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
            if line in self._unsent:
                continue  # not in any part: Marketo's rows must not be matched against it
            return line, fields
        return None

    def _partner(self, data: list[str], marketo: MarketoRows) -> list[str]:
        """A row only Marketo knows, its values put back under the partner's own columns."""
        columns = marketo.columns[: len(data)]
        if len(data) > len(marketo.columns) or any(i is None for i in columns):
            return data  # some of Marketo's columns are none that was sent: keep its order
        sent = [i for i in columns if i is not None]
        partner = sent if self._sent is None else [self._sent[i] for i in sent]
        return to_partner_columns(data, partner, max([self._width, *(i + 1 for i in partner)]))

    def part(self, part: Part, marketo: MarketoRows | None, sent: Iterator[list[str]]) -> None:
        """Walk the part's rows in order, writing each one Marketo listed with its reason.

        `sent` gives the part's rows as sent, in step with the original's (without a part
        file, the original's own fields, cut to the columns sent, stand in).
        """
        for _ in range(part.rows):
            original = self.take()
            if original is None:
                break
            line, fields = original
            if marketo is None:
                continue
            stand_in = fields if self._sent is None else sent_values(fields, self._sent)
            reason = marketo.claim(next(sent, stand_in))
            if reason is not None:
                self.emit(line, fields, reason)
        if marketo is None:
            return
        for number, data, reason in marketo.left():
            log.warning("result_row_unmatched", part=part.index, marketo_row=number)
            self.emit("", self._partner(data, marketo), reason)


@contextmanager
def _sent(part: Part, fmt: ImportFormat, header: list[str]) -> Iterator[SentPart]:
    """The part's header and rows as they were sent (UTF-8, the format's delimiter).

    When the part file is gone, the original's header, and no rows (its own stand in).
    """
    if not part.path.is_file():
        yield header, iter(())
        return
    with part.path.open(encoding="utf-8", newline="") as stream:
        reader = csv.reader(stream, delimiter=fmt.delimiter)
        yield next(reader, header), reader


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
    lookup: str = "email",
    unsent: Collection[int] = (),
) -> int:
    """Merge Marketo's per-part files and local failures into one file in the original's order.

    Writes `Line`, the original's columns and `reason_column`, in the original's delimiter,
    encoding, BOM and line ends; returns the rows written (no file is written for 0 rows).
    `sent` lists the original's columns the parts carried (see csvfile.header), when not all;
    `lookup` (the import's lookup field) names the column Marketo's rows are looked up by;
    `unsent` lists lines that no part carries (rows failed locally, in a warnings file).
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
        merger = _Merger(
            original_rows(src, fmt), local, writer, quote_all, sent, len(header), frozenset(unsent)
        )
        for part, failures in zip(parts, marketo_files, strict=True):
            if failures is None:
                merger.part(part, None, iter(()))
                continue
            names = header if sent is None else sent_values(header, sent)
            with _sent(part, fmt, names) as (sent_header, sent_rows):
                marketo = read_marketo_rows(failures, fmt, reason_column, sent_header, lookup)
                merger.part(part, marketo, sent_rows)
        while merger.take() is not None:
            pass
    if merger.written == 0:
        tmp.unlink()
        return 0
    tmp.replace(out)
    return merger.written
