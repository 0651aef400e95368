"""Turn an uploaded file into per-row outcomes, applying each good row to the lead database."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field

from dropbox_importer.sandbox.database import LeadDatabase
from dropbox_importer.sandbox.fields import InvalidValueError, converter

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
    header: list[str], db: LeadDatabase, request: ImportRequest, unknown_column: str
) -> tuple[list[Column], int, list[str]]:
    """Map header columns to fields: (columns to write, lookup column, unknown column names)."""
    columns: list[Column] = []
    unknown: list[str] = []
    lookup_index = -1
    for index, name in enumerate(header):
        found = db.field(name.strip())
        if found is None:
            unknown.append(name)
            continue
        if found.name == request.lookup_field:
            lookup_index = index
        if found.read_only or found.name == request.lookup_field:
            continue  # the lookup value is the key; read-only fields are never written
        columns.append((index, found.name, found.length, converter(found)))
    if unknown and unknown_column == "fail":
        names = ", ".join(f"'{n}'" for n in unknown)
        raise BatchFailedError(f"Import failed: unknown field(s) {names} in header row")
    return columns, lookup_index, unknown


def process(
    payload: bytes, db: LeadDatabase, request: ImportRequest, unknown_column: str
) -> RowReport:
    """Parse and import every row; raise BatchFailedError when the file as a whole is unusable."""
    try:
        text = payload.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BatchFailedError("Import failed: file is not UTF-8 text") from None
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=DELIMITERS[request.format])
    try:
        header = next(reader)
    except StopIteration:
        raise BatchFailedError("Import failed: file has no header row") from None
    except csv.Error as exc:
        raise BatchFailedError(f"Import failed: unreadable header row ({exc})") from None
    if not any(cell.strip() for cell in header):
        raise BatchFailedError("Import failed: file has no header row")
    columns, lookup_index, unknown = plan_columns(header, db, request, unknown_column)
    unknown_warning = ", ".join(f"Unknown field '{n}' ignored" for n in unknown)
    report = RowReport(header=header)
    with db.lock:
        try:
            for row in reader:
                if not row:
                    continue  # a blank line is no row, as in Marketo's parser
                number = report.rows
                report.rows += 1
                _import_row(
                    number,
                    row,
                    len(header),
                    columns,
                    lookup_index,
                    db,
                    request,
                    report,
                    unknown_warning,
                )
        except csv.Error as exc:
            raise BatchFailedError(
                f"Import failed: unreadable row {report.rows + 1} ({exc})"
            ) from None
    return report


def _import_row(
    number: int,
    row: list[str],
    width: int,
    columns: list[Column],
    lookup_index: int,
    db: LeadDatabase,
    request: ImportRequest,
    report: RowReport,
    unknown_warning: str,
) -> None:
    lookup = request.lookup_field
    if len(row) > width:
        report.failures.append(
            (number, row, f"Row has {len(row)} fields where the header has {width}")
        )
        return
    key = row[lookup_index].strip() if 0 <= lookup_index < len(row) else ""
    if not key:
        report.failures.append((number, row, f"Value for lookup field '{lookup}' not found"))
        return
    values: dict[str, object] = {}
    truncated: list[str] = [unknown_warning] if unknown_warning else []
    try:
        lookup_field = db.field(lookup)
        key_value = converter(lookup_field)(key) if lookup_field else key
        for index, name, length, convert in columns:
            if index >= len(row) or not row[index]:
                continue  # an empty cell leaves the lead's value unchanged
            cell = row[index]
            if length is not None and len(cell) > length:
                cell = cell[:length]
                truncated.append(f"Value for field '{name}' truncated to {length} characters")
            values[name] = convert(cell)
    except InvalidValueError as exc:
        report.failures.append((number, row, str(exc)))
        return
    lead = db.upsert(lookup, key_value, request.partition, values)
    if lead is None:
        report.failures.append((number, row, f"Lead not found for id {key}"))
        return
    report.imported += 1
    if request.list_id is not None:
        lead.lists.add(request.list_id)
        report.members += 1
    if truncated:
        report.warnings.append((number, row, "; ".join(truncated)))


def reason_file(
    header: list[str], rows: list[tuple[int, list[str], str]], fmt: str, column: str
) -> bytes:
    """The failures or warnings file: the upload's format, the reason column appended.

    Reproduces Marketo's quirk on purpose: a row's empty trailing fields are dropped before the
    reason is appended, so the reason can land under the wrong column.
    """
    out = io.StringIO()
    writer = csv.writer(out, delimiter=DELIMITERS[fmt], lineterminator="\n")
    writer.writerow([*header, column])
    for _, row, reason in rows:
        end = len(row)
        while end and not row[end - 1]:
            end -= 1
        writer.writerow([*row[:end], reason])
    return out.getvalue().encode("utf-8")
