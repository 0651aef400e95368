"""Custom object records: inserted or updated on the object type's dedupe fields.

A custom object import (`POST /bulk/v1/customobjects/{apiName}/import.json`) writes each row to
the record whose dedupe fields hold the row's values, or creates one. Documented choices where
Marketo's pages are silent: header names match field names case-insensitively (as lead headers
do); dedupe values compare case-insensitively; a row whose dedupe value is empty fails with
`Value for dedupe field 'vin' not found`; read-only fields (marketoGUID, createdAt, updatedAt)
are ignored.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from dropbox_importer.sandbox.catalog import CustomObjectType, ObjectCatalog
from dropbox_importer.sandbox.database import normalise, now_iso
from dropbox_importer.sandbox.fields import InvalidValueError
from dropbox_importer.sandbox.jobs import CUSTOM_OBJECTS
from dropbox_importer.sandbox.profile import Rules
from dropbox_importer.sandbox.rows import (
    Column,
    RowReport,
    column_of,
    header_name,
    import_table,
    read_table,
    row_values,
    unknown_warning,
)


@dataclass
class ObjectRecord:
    """One custom object record."""

    guid: str
    values: dict[str, object]
    created_at: str
    updated_at: str

    def to_json(self) -> dict[str, Any]:
        """The record as `/sandbox/customobjects.json` shows it."""
        return {
            "marketoGUID": self.guid,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "fields": dict(self.values),
        }


class CustomObjectStore:
    """Records of every custom object type, keyed by their dedupe values."""

    def __init__(self, catalog: ObjectCatalog, lock: threading.Lock) -> None:
        """No records yet; `lock` is the one the import worker holds while writing."""
        self.catalog = catalog
        self.lock = lock
        self.records: dict[str, dict[tuple[object, ...], ObjectRecord]] = {
            o.api_name: {} for o in catalog.custom_objects
        }

    def export(self) -> dict[str, list[dict[str, Any]]]:
        """Every record, JSON-ready, by object type: what a restarted sandbox restores."""
        with self.lock:
            return {
                name: [vars(record).copy() for record in records.values()]
                for name, records in self.records.items()
            }

    def restore(self, state: dict[str, list[dict[str, Any]]]) -> None:
        """Put back the records `export` wrote, for the object types the catalog still has."""
        with self.lock:
            for name, records in state.items():
                obj = self.catalog.custom_object(name)
                if obj is None:
                    continue
                restored = [ObjectRecord(**item) for item in records]
                self.records[name] = {
                    tuple(normalise(r.values.get(d)) for d in obj.dedupe_fields): r
                    for r in restored
                }

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        """Every record by object type, in creation order, for `/sandbox/customobjects.json`."""
        with self.lock:
            return {
                name: [record.to_json() for record in records.values()]
                for name, records in self.records.items()
            }


@dataclass(frozen=True)
class CustomObjectJob:
    """One custom object import: its object type and file format."""

    format: str
    object_type: CustomObjectType
    store: CustomObjectStore = field(compare=False, repr=False)

    @property
    def kind(self) -> str:
        """jobs.CUSTOM_OBJECTS."""
        return CUSTOM_OBJECTS

    @property
    def api_name(self) -> str:
        """The object type's API name."""
        return self.object_type.api_name

    def process(
        self, payload: bytes, unknown_column: str, rules: Rules, *, limit: int | None = None
    ) -> RowReport:
        """Import every row as a record; BatchFailedError for an unusable file."""
        header, rows = read_table(payload, self.format)
        importer = RecordRows(header, self, unknown_column, rules)
        return import_table(
            rows, importer.report, importer.import_row, self.store.lock, limit=limit
        )

    def to_json(self) -> dict[str, Any]:
        """The job's parameters for `/sandbox/batches.json`."""
        return {"objectApiName": self.api_name}


class RecordRows:
    """Imports the rows of one custom object file; the header is planned once, up front."""

    def __init__(
        self, header: list[str], job: CustomObjectJob, unknown_column: str, rules: Rules
    ) -> None:
        """Map the columns to the object's fields (names as `rules` say); find its dedupe ones."""
        self.job = job
        self.width = len(header)
        self.report = RowReport(header=header)
        self.stamp = now_iso()
        obj = job.object_type
        self.columns: list[Column] = []
        # dedupe field name -> its column (None when the header lacks it)
        self.keys: dict[str, int | None] = dict.fromkeys(obj.dedupe_fields)
        unknown: list[str] = []
        for index, name in enumerate(header):
            found = obj.field(header_name(name, rules))
            if found is None:
                unknown.append(name)
                continue
            if found.name in self.keys:
                self.keys[found.name] = index
            if not found.read_only:
                self.columns.append(column_of(index, found, rules))
        self.unknown_warning = unknown_warning(unknown, unknown_column)

    def import_row(self, row: list[str]) -> None:
        """Import one row, or record why it failed; note any warning."""
        report = self.report
        number = report.rows
        report.rows += 1
        if len(row) > self.width:
            reason = f"Row has {len(row)} fields where the header has {self.width}"
            report.failures.append((number, row, reason))
            return
        cells = row + [""] * (self.width - len(row))
        for name, index in self.keys.items():
            if index is None or not cells[index].strip():
                report.failures.append((number, row, f"Value for dedupe field '{name}' not found"))
                return
        warnings = [self.unknown_warning] if self.unknown_warning else []
        try:
            values = row_values(cells, self.columns, warnings)
        except InvalidValueError as exc:
            report.failures.append((number, row, str(exc)))
            return
        key = tuple(normalise(values[name]) for name in self.keys)
        records = self.job.store.records[self.job.api_name]
        record = records.get(key)
        if record is None:
            records[key] = ObjectRecord(str(uuid.uuid4()), values, self.stamp, self.stamp)
        else:
            # The dedupe values found the record; as for a lead's lookup field, they stay.
            record.values.update((k, v) for k, v in values.items() if k not in self.keys)
            record.updated_at = self.stamp
        report.imported += 1
        if warnings:
            report.warnings.append((number, row, "; ".join(warnings)))
