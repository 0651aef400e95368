"""Turn an uploaded file into per-row outcomes, applying each good row to the lead database."""

from __future__ import annotations

import csv
import io
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from dropbox_importer.sandbox.database import LeadDatabase, now_iso
from dropbox_importer.sandbox.fields import InvalidValueError, converter
from dropbox_importer.sandbox.profile import KIND, Rules
from dropbox_importer.sandbox.settings import LeadField

DELIMITERS = {"csv": ",", "tsv": "\t", "ssv": ";"}


class BatchFailedError(Exception):
    """The whole batch fails; the message becomes the batch's `message`."""


@dataclass(frozen=True)
class ImportRequest:
    """What one create call asked for, checked and normalised."""

    format: str
    lookup_field: str
    list_id: int | None
    partition: str


@dataclass
class RowReport:
    """The outcome of a file: counts, and the failed and warned rows with their reasons."""

    header: list[str]
    rows: int = 0
    imported: int = 0
    members: int = 0
    # (index of the row among data rows, its fields, reason), in row order.
    failures: list[tuple[int, list[str], str]] = field(default_factory=list)
    warnings: list[tuple[int, list[str], str]] = field(default_factory=list)


Column = tuple[int, str, int | None, Callable[[str], object]]


def plan_columns(
    header: list[str],
    db: LeadDatabase,
    request: ImportRequest,
    unknown_column: str,
    rules: Rules = KIND,
) -> tuple[list[Column], int, list[str]]:
    """Map header columns to fields: (columns to write, lookup column, unknown column names).

    Names match case-insensitively; kind trims spaces around them, strict takes them as sent.
    """
    columns: list[Column] = []
    unknown: list[str] = []
    lookup_index = -1
    for index, name in enumerate(header):
        found = db.field(header_name(name, rules))
        if found is None:
            unknown.append(name)
            continue
        if found.name == request.lookup_field:
            lookup_index = index
        if found.read_only or found.name == request.lookup_field:
            continue  # the lookup value is the key; read-only fields are never written
        columns.append(column_of(index, found, rules))
    unknown_warning(unknown, unknown_column)  # raises in fail mode
    return columns, lookup_index, unknown


def unknown_warning(unknown: list[str], unknown_column: str) -> str:
    """The warning every row of a file with unknown columns gets; fails the batch in fail mode."""
    if unknown and unknown_column == "fail":
        names = ", ".join(f"'{n}'" for n in unknown)
        raise BatchFailedError(f"Import failed: unknown field(s) {names} in header row")
    return ", ".join(f"Unknown field '{n}' ignored" for n in unknown)


def header_name(name: str, rules: Rules) -> str:
    """A header cell as fields are looked up by: kind trims spaces around it, strict does not."""
    return name if rules.headers_as_sent else name.strip()


def process(
    payload: bytes,
    db: LeadDatabase,
    request: ImportRequest,
    unknown_column: str,
    rules: Rules = KIND,
    *,
    limit: int | None = None,
) -> RowReport:
    """Parse and import every row (or the first `limit`, for a batch failing half-way).

    Raises BatchFailedError when the file as a whole is unusable.
    """
    header, rows = read_table(payload, request.format)
    importer = RowImporter(header, db, request, unknown_column, rules)
    return import_table(rows, importer.report, importer.import_row, db.lock, limit=limit)


def read_table(payload: bytes, fmt: str) -> tuple[list[str], Iterator[list[str]]]:
    """The header and a reader of the remaining rows; BatchFailedError for an unusable file."""
    try:
        text = payload.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BatchFailedError("Import failed: file is not UTF-8 text") from None
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=DELIMITERS[fmt])
    try:
        header = next(reader)
    except StopIteration:
        raise BatchFailedError("Import failed: file has no header row") from None
    except csv.Error as exc:
        raise BatchFailedError(f"Import failed: unreadable header row ({exc})") from None
    if not any(cell.strip() for cell in header):
        raise BatchFailedError("Import failed: file has no header row")
    return header, reader


def import_table(
    rows: Iterator[list[str]],
    report: RowReport,
    import_row: Callable[[list[str]], None],
    lock: threading.Lock,
    *,
    limit: int | None = None,
) -> RowReport:
    """Feed every non-blank row (the first `limit`, for a batch failing half-way) to
    `import_row` under `lock`; a CSV error fails the batch."""
    with lock:
        try:
            for row in rows:
                if limit is not None and report.rows >= limit:
                    break
                if row:  # a blank line is no row, as in Marketo's parser
                    import_row(row)
        except csv.Error as exc:
            raise BatchFailedError(
                f"Import failed: unreadable row {report.rows + 1} ({exc})"
            ) from None
    return report


class RowImporter:
    """Imports the rows of one file; everything per-file is worked out once, up front."""

    def __init__(
        self,
        header: list[str],
        db: LeadDatabase,
        request: ImportRequest,
        unknown_column: str,
        rules: Rules = KIND,
    ) -> None:
        """Plan the columns of this header (BatchFailedError on unknown ones in fail mode)."""
        self.columns, self.lookup_index, unknown = plan_columns(
            header, db, request, unknown_column, rules
        )
        self.unknown_warning = unknown_warning(unknown, unknown_column)
        self.width = len(header)
        self.db = db
        self.request = request
        self.report = RowReport(header=header)
        self.stamp = now_iso()  # one timestamp per batch: strftime per row costs 15% of import
        lookup_field = db.field(request.lookup_field)
        self.convert_key = converter(lookup_field, rules.ascii_email) if lookup_field else str

    def import_row(self, row: list[str]) -> None:
        """Import one row into the database, or record why it failed; note any warning."""
        report, request = self.report, self.request
        number = report.rows
        report.rows += 1
        if len(row) > self.width:
            reason = f"Row has {len(row)} fields where the header has {self.width}"
            report.failures.append((number, row, reason))
            return
        key = row[self.lookup_index].strip() if 0 <= self.lookup_index < len(row) else ""
        if not key:
            reason = f"Value for lookup field '{request.lookup_field}' not found"
            report.failures.append((number, row, reason))
            return
        values: dict[str, object] = {}
        warnings = [self.unknown_warning] if self.unknown_warning else []
        cells = row if len(row) == self.width else row + [""] * (self.width - len(row))
        try:
            key_value = self.convert_key(key)
            for index, name, length, convert in self.columns:
                cell = cells[index]
                if not cell:
                    continue  # an empty cell leaves the lead's value unchanged
                if length is not None and len(cell) > length:
                    cell = cell[:length]
                    warnings.append(f"Value for field '{name}' truncated to {length} characters")
                values[name] = cell if convert is str else convert(cell)
        except InvalidValueError as exc:
            report.failures.append((number, row, str(exc)))
            return
        lead = self.db.upsert(
            request.lookup_field, key_value, request.partition, values, self.stamp
        )
        if lead is None:
            report.failures.append((number, row, f"Lead not found for id {key}"))
            return
        report.imported += 1
        if request.list_id is not None:
            lead.lists.add(request.list_id)
            report.members += 1
        if warnings:
            report.warnings.append((number, row, "; ".join(warnings)))


def column_of(index: int, found: LeadField, rules: Rules = KIND) -> Column:
    """The plan of one header column that writes `found` (strict: ASCII emails only)."""
    return (index, found.name, found.length, converter(found, rules.ascii_email))


def row_values(cells: list[str], columns: list[Column], warnings: list[str]) -> dict[str, object]:
    """The converted values of a row's non-empty cells; InvalidValueError for a bad one.

    An empty cell leaves the stored value unchanged; a value over its field's length is cut,
    with a warning added to `warnings`.
    """
    values: dict[str, object] = {}
    for index, name, length, convert in columns:
        cell = cells[index]
        if not cell:
            continue
        if length is not None and len(cell) > length:
            cell = cell[:length]
            warnings.append(f"Value for field '{name}' truncated to {length} characters")
        values[name] = cell if convert is str else convert(cell)
    return values


def reason_file(
    header: list[str],
    rows: list[tuple[int, list[str], str]],
    fmt: str,
    column: str,
    *,
    sparse: bool = False,
    seed: int = 0,
) -> bytes:
    """The failures or warnings file: the upload's format, the reason column appended.

    Reproduces Marketo's quirk on purpose: a row's empty trailing fields are dropped before the
    reason is appended, so the reason can land under the wrong column. `sparse` (strict) also
    drops every column that is empty in all these rows, from the header and the rows, and
    shuffles the rows in an order `seed` fixes.
    """
    keep = list(range(len(header)))
    if sparse:
        keep = [i for i in keep if any(i < len(row) and row[i] for _, row, _ in rows)]
        rows = list(rows)
        random.Random(seed).shuffle(rows)
    out = io.StringIO()
    writer = csv.writer(out, delimiter=DELIMITERS[fmt], lineterminator="\n")
    writer.writerow([*(header[i] for i in keep), column])
    for _, row, reason in rows:
        kept = row
        if sparse:  # fields past the header's end (a ragged row) are kept as they came
            kept = [row[i] if i < len(row) else "" for i in keep] + row[len(header) :]
        end = len(kept)
        while end and not kept[end - 1]:
            end -= 1
        writer.writerow([*kept[:end], reason])
    return out.getvalue().encode("utf-8")
