"""Checking a dropped file in one streaming pass before a Marketo import slot is spent on it.

The csv module is the judge of what a row is; alongside it, every record's quote parity is
checked line by line, because the splitter finds record ends by quote parity alone and must
agree with the csv module on every file that passes here.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dropbox_importer.csvfile.emails import email_column, non_ascii_email_reason
from dropbox_importer.csvfile.encoding import DEFAULT_CANDIDATES
from dropbox_importer.csvfile.fields import suggest_fields
from dropbox_importer.csvfile.source import FileRejected, Source, is_blank, iter_lines, open_source
from dropbox_importer.marketo.models import ImportFormat

# Longer values are garbage (Marketo's longest text field holds 32k), and the cap keeps a
# runaway quote from holding the whole file in memory.
MAX_FIELD_CHARS = 131_072

FORMAT_NAMES = {
    ",": ("csv", "comma-separated", "commas"),
    ";": ("ssv", "semicolon-separated", "semicolons"),
    "\t": ("tsv", "tab-separated", "tabs"),
}


@dataclass(frozen=True)
class KeyColumns:
    """The columns every row must fill, and how a message names them and the fix.

    Leads: the lookup field (Marketo's default: email). Program members: email, each row's lead.
    Custom objects: the object's dedupe fields. No names: no column is required.
    """

    names: tuple[str, ...]
    role: str = "the lookup field"  # "the column 'email' is <role>, but ... does not send it"
    # A column missing from the header: "line 1: <missing> is not a column ... — <fix>".
    missing: str = "the lookup field '{name}'"
    fix: str = "add or rename the column, or drop the file in a folder with another lookup field"
    empty: str = "lookup field is empty"  # the reason of a row with an empty key value
    every: str = "'email' (the lookup field)"  # "every row has an empty <every>"


@dataclass(frozen=True)
class Inspection:
    """What the checks learned: header, data row count, encoding, BOM, line ends, local failures."""

    header: list[str]
    rows: int
    bom: bool
    encoding: str
    newline: str  # "lf", "crlf" or "cr"
    # Start lines of rows with an empty key value: they fail locally, the rest is imported.
    empty_lookup_lines: list[int] = field(default_factory=list)
    lookup_field: str = "email"  # the first key column as sent ("" when no key column)
    duplicates: Duplicates = field(default_factory=lambda: Duplicates())
    # Start line -> reason, for rows whose email Marketo would refuse (not ASCII): they fail
    # locally too. A row with an empty lookup value is only in `empty_lookup_lines`.
    bad_email_lines: dict[int, str] = field(default_factory=dict)
    # What decided the encoding: "bom", "declared", "utf-8" (valid UTF-8) or "auto".
    encoding_by: str = "utf-8"
    # Start lines of blank rows (empty, white space or delimiters only): skipped, never sent.
    blank_lines: list[int] = field(default_factory=list)
    # 1-based numbers of the trailing header columns with no name and no value in any row
    # (Excel's padding): left out of what is sent.
    ignored_columns: list[int] = field(default_factory=list)
    # Blank lines at the end made of spaces and tabs alone: the byte splitter drops them itself.
    blank_tail: list[int] = field(default_factory=list)
    # The line the last row ends on: lines after it hold no row.
    last_line: int = 0

    @property
    def converted(self) -> bool:
        """True when the rows are re-encoded as UTF-8 for Marketo."""
        return self.encoding != "utf-8"

    @property
    def named_columns(self) -> int:
        """How many header columns are sent (all but the ignored trailing ones)."""
        return len(self.header) - len(self.ignored_columns)

    def skip_lines(self) -> frozenset[int]:
        """Start lines the splitter must leave out: rows failed locally and blank rows."""
        tail = set(self.blank_tail)
        blank = (line for line in self.blank_lines if line not in tail)
        return frozenset(self.empty_lookup_lines).union(blank)


def column_label(column: int) -> str:
    """A 1-based column number as a spreadsheet shows it: `column 3 (C)`, `column 28 (AB)`."""
    letters = ""
    n = column
    while n:
        n, rest = divmod(n - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return f"column {column} ({letters})"


def is_blank_row(fields: list[str]) -> bool:
    """True for a row with nothing in it: no fields, or only empty and white-space values."""
    return not any(value.strip() for value in fields)


# Lines listed in a Duplicates report; the count goes on past it.
MAX_DUPLICATES_LISTED = 1000
# Distinct lookup values remembered, about 130 MB; a value first seen past it is not tracked.
MAX_VALUES_TRACKED = 1_000_000


@dataclass(frozen=True)
class Duplicates:
    """Rows whose lookup value an earlier row of the file already has.

    Within one import Marketo writes the rows in order, so a later row updates the lead the
    earlier one wrote: the last row's values are what Marketo keeps (an empty cell leaves a value
    as it was). Values are compared trimmed and case-insensitively, as Marketo's dedupe on
    email does. Each distinct value is held while the file is checked, about 130 bytes each,
    up to MAX_VALUES_TRACKED; `complete` is False when a file had more (values first seen past
    that point are not compared).
    """

    rows: int = 0  # rows sharing their lookup value with an earlier row
    lines: tuple[tuple[int, int], ...] = ()  # (line, the earlier line with that value), capped
    complete: bool = True


def _captured(lines: Iterator[str], taken: list[str]) -> Iterator[str]:
    """Pass lines on to the csv reader, remembering those taken for the current record."""
    for line in lines:
        taken.append(line)
        yield line


def _csv_error(exc: csv.Error, start: int, fmt: ImportFormat) -> FileRejected:
    text = str(exc)
    if "unexpected end of data" in text:
        return FileRejected(
            f"line {start}: a quoted value opens here and is never closed — close the double "
            'quote, or write a quote inside a value as two quotes ("")',
            start,
        )
    if "expected after" in text:
        return FileRejected(
            f"line {start}: text follows a closing double quote — put the whole value in "
            'quotes and write each quote inside it as two quotes ("")',
            start,
        )
    if "field larger than field limit" in text:
        return FileRejected(
            f"line {start}: a value is longer than {MAX_FIELD_CHARS} characters — "
            "check for a quote that is never closed, or shorten the value",
            start,
        )
    if "new-line character" in text:
        return FileRejected(
            f"line {start}: a stray carriage return inside a value — "
            "put values with line breaks in double quotes",
            start,
        )
    return FileRejected(f"line {start}: not readable as {fmt.value} ({text})", start)


def _check_parity(taken: list[str], start: int) -> None:
    # Inside a record every line but the last must end within quotes and the last outside:
    # otherwise a quote sits inside an unquoted value and the splitter would cut there.
    quotes = 0
    for offset, raw in enumerate(taken):
        quotes += raw.count('"')
        inside = quotes % 2 == 1
        if inside != (offset < len(taken) - 1):
            raise FileRejected(
                f"line {start + offset}: a double quote inside an unquoted value — put the "
                'value in double quotes and write the quote as two quotes ("")',
                start + offset,
            )


def _check_delimiter(raw_header: str, fmt: ImportFormat) -> None:
    if fmt.delimiter in raw_header:
        return
    # A header without any delimiter is a single-column file: nothing to compare.
    for delim, (name, long_name, _) in FORMAT_NAMES.items():
        if delim != fmt.delimiter and delim in raw_header:
            mine = FORMAT_NAMES[fmt.delimiter][2]
            raise FileRejected(
                f"line 1: the file looks like {name} ({long_name}) but this folder takes "
                f"{fmt.value}: move it to {'an' if name == 'ssv' else 'a'} {name} folder "
                f"or save it with {mine}",
                1,
            )


def _check_header(header: list[str]) -> int:
    """Check the header's names; return how many columns are named (trailing unnamed excepted).

    Trailing columns with no name are Excel's padding when their cells are empty too; the rows
    are checked for that as they are read.
    """
    named = len(header)
    while named and not header[named - 1].strip():
        named -= 1
    if named == 0:
        raise FileRejected(
            "line 1: the header has no column names — the first line must be the header row "
            "with Marketo field names",
            1,
        )
    seen: dict[str, int] = {}
    for column, name in enumerate(header[:named], start=1):
        key = name.strip().lower()
        if not key:
            raise FileRejected(
                f"line 1: {column_label(column)} of the header has no name — give every column "
                "a Marketo field name, or delete the empty column",
                1,
            )
        if key in seen:
            raise FileRejected(
                f"line 1: the header names '{name.strip()}' twice (columns {seen[key]} and "
                f"{column}) — keep one of them",
                1,
            )
        seen[key] = column
    return named


def _unnamed_with_data(fields: list[str], named: int, start: int) -> FileRejected:
    column = next(n for n, value in enumerate(fields[named:], start=named + 1) if value.strip())
    value = fields[column - 1].strip()
    shown = value if len(value) <= 40 else value[:37] + "..."
    return FileRejected(
        f"line 1: {column_label(column)} of the header has no name, but line {start} has a "
        f"value in it ('{shown}') — give the column a Marketo field name, or delete it",
        start,
    )


def _key_index(header: list[str], name: str, keys: KeyColumns, mapped: Sequence[str] | None) -> int:
    names = [column.strip().lower() for column in (header if mapped is None else mapped)]
    if name.lower() in names:
        return names.index(name.lower())
    if mapped is not None and name.lower() in [column.strip().lower() for column in header]:
        raise FileRejected(
            f"line 1: the column '{name}' is {keys.role}, but this drop box does not send it "
            "(columns.ignore or columns.deny) — ask the operator to change that rule",
            1,
        )
    hint = suggest_fields(header, [name])
    near = [column for column, match in hint.items() if match]
    meant = f" (is '{near[0].strip()}' meant to be '{name}'?)" if near else ""
    raise FileRejected(
        f"line 1: {keys.missing.format(name=name)} is not a column of the header{meant} — "
        f"{keys.fix}",
        1,
    )


# What `_key_reader` answers for a file without key columns: a row is never a duplicate.
NO_KEY = "\x00no key"


def _key_reader(key_at: Sequence[int]) -> Callable[[list[str]], str]:
    """A row's key value, trimmed and lower-cased ("" when a key cell is empty).

    One key column (the common case) is read directly; several (a compound custom object key)
    are joined with a separator no CSV value holds; none give NO_KEY.
    """
    if not key_at:
        return lambda fields: NO_KEY
    if len(key_at) == 1:
        key = key_at[0]
        return lambda fields: fields[key].strip().lower()

    def compound(fields: list[str]) -> str:
        values = [fields[key].strip().lower() for key in key_at]
        return "\x1f".join(values) if all(values) else ""

    return compound


def _records(
    reader: Iterator[list[str]], taken: list[str], fmt: ImportFormat
) -> Iterator[tuple[int, list[str], list[str]]]:
    """(start line, fields, raw lines) of each record, with csv errors made readable."""
    line = 0
    while True:
        taken.clear()
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise _csv_error(exc, line + 1, fmt) from None
        start = line + 1
        line += len(taken)
        # The common one-line record needs a single count; several lines need the full check.
        if len(taken) > 1 or taken[0].count('"') % 2:
            _check_parity(taken, start)
        yield start, fields, taken


def inspect_file(
    path: Path,
    fmt: ImportFormat,
    *,
    encoding: str = "utf-8",
    lookup_field: str | None = None,
    names: Sequence[str] | None = None,
    keys: KeyColumns | None = None,
    candidates: Sequence[str] = DEFAULT_CANDIDATES,
) -> Inspection:
    """Check the file in one pass; raise FileRejected naming the line and the fix.

    `encoding` is the drop box's (a codec, or "auto" choosing among `candidates`). `names`, one
    per header column, are the field names the columns are sent as ("" for a
    column not sent: see csvfile.header); the key columns are found among them. `keys` are the
    columns every row must fill; without them, the lookup field (Marketo's default `email`). A
    row with an empty key value is listed in `empty_lookup_lines`; rows repeating an earlier
    row's key values in `duplicates`.
    """
    src: Source = open_source(path, encoding, candidates)
    if keys is None:
        keys = KeyColumns((lookup_field or "email",))  # Marketo's default lookup field
    taken: list[str] = []
    # The process-wide limit, set to the value this module documents and relies on.
    csv.field_size_limit(MAX_FIELD_CHARS)
    reader = csv.reader(_captured(iter_lines(src), taken), delimiter=fmt.delimiter, strict=True)
    records = _records(reader, taken, fmt)
    first = next(records, None)
    if first is None:
        raise FileRejected("the file is empty: export it again with a header row and data rows")
    if all(is_blank(raw) for raw in first[2]):
        if any(not all(is_blank(raw) for raw in rest[2]) for rest in records):
            raise FileRejected("line 1 is empty — the first line must be the header row", 1)
        raise FileRejected("the file holds only empty lines: export it again with its data")
    _, header, raw_header = first
    _check_delimiter("".join(raw_header), fmt)
    named = _check_header(header)
    mapped = names if names is not None and len(names) == len(header) else None
    key_at = [
        _key_index(header[:named], name, keys, None if mapped is None else mapped[:named])
        for name in keys.names
    ]
    key_of = _key_reader(key_at)
    email = email_column(header if mapped is None else mapped)
    width = len(header)
    rows = 0
    empty_lookup: list[int] = []
    bad_email: dict[int, str] = {}
    blank: list[int] = []
    tail: list[int] = []  # blank lines of spaces and tabs since the last row
    last_line = 1
    first_seen: dict[str, int] = {}  # a lookup value, lower-cased -> the line it was first on
    repeated: list[tuple[int, int]] = []
    repeats = 0
    remember = first_seen.setdefault
    for start, fields, raw in records:
        if len(fields) == width and named == width:
            pass  # the common case: a full row, no padding to check
        elif is_blank_row(fields):
            # Excel writes an empty row as delimiters alone (",,"); blank lines are the same.
            blank.append(start)
            if len(raw) == 1 and is_blank(raw[0]):
                tail.append(start)
            else:
                tail.clear()
            continue
        elif not named <= len(fields) <= width:
            raise FileRejected(
                f"line {start} has {len(fields)} fields but the header has {width} — put values "
                f"containing '{_shown(fmt.delimiter)}' in double quotes, or add the missing fields",
                start,
            )
        elif any(value.strip() for value in fields[named:]):
            raise _unnamed_with_data(fields, named, start)
        if (value := key_of(fields)) and not (value is NO_KEY and is_blank_row(fields)):
            if value is not NO_KEY:
                earlier = remember(value, start)
                if earlier != start:
                    repeats += 1
                    if len(repeated) < MAX_DUPLICATES_LISTED:
                        repeated.append((start, earlier))
                elif len(first_seen) >= MAX_VALUES_TRACKED:
                    remember = first_seen.get  # full: values seen so far are still recognised
            if email is not None and not fields[email].isascii():  # one C call per row
                bad_email[start] = non_ascii_email_reason(fields[email])
        elif is_blank_row(fields):
            blank.append(start)  # a full row of empty values: Excel's empty row
            if len(raw) == 1 and is_blank(raw[0]):
                tail.append(start)
            else:
                tail.clear()
            continue
        else:
            empty_lookup.append(start)
        tail.clear()
        rows += 1
        last_line = start + len(raw) - 1
    if rows == 0:
        raise FileRejected("the file has a header but no rows: export it again with its data", 2)
    return Inspection(
        header=header,
        rows=rows,
        bom=src.bom,
        encoding=src.encoding,
        newline=src.newline,
        empty_lookup_lines=empty_lookup,
        lookup_field=(header if mapped is None else mapped)[key_at[0]].strip() if key_at else "",
        duplicates=Duplicates(repeats, tuple(repeated), len(first_seen) < MAX_VALUES_TRACKED),
        bad_email_lines=bad_email,
        encoding_by=src.decided_by,
        blank_lines=blank,
        ignored_columns=list(range(named + 1, width + 1)),
        blank_tail=tail,
        last_line=last_line,
    )


def _shown(delimiter: str) -> str:
    return "\\t" if delimiter == "\t" else delimiter
