"""`<file>.result.json`: what happened to one dropped file, for the partner and for scripts.

Key names are stable (add keys, never rename them); times are ISO 8601 UTC with a `Z`:

    schema              1, raised only if a key changes meaning
    dropbox, route      where the file was dropped (`route` is the sub-folder path, "" at the top)
    file                the original's name as dropped
    outcome             "done" (imported, maybe with row failures) or "failed" (not imported)
    reason              for "failed": what happened and what to do, in one sentence; else null
    import              {kind, format, list_id, partition_name, lookup_field, program_id,
                        program_member_status, object_name}: the parameters used, `kind` being
                        "leads", "program_members" or "custom_objects" (the other kinds'
                        parameters are null); null when the route folder could not be parsed
    counts              {leads_processed, rows_failed, rows_with_warning, rows_failed_locally,
                        blank_rows}: Marketo's counts summed over the last round's parts, rows
                        refused before sending, and blank rows skipped (empty, or delimiters
                        alone, as Excel writes an empty row); `leads_processed` counts the
                        records imported of the file's kind (leads, program members or custom
                        object records)
    parts               [{index, first_line, rows, batch_id, status, leads_processed,
                        rows_failed, rows_with_warning, message, lost_batch_ids, round,
                        shared}]: one per import batch, of every round; `first_line` is the
                        original's line number of the part's first row; `lost_batch_ids` lists
                        earlier batches of the part that Marketo no longer knew, so the part
                        was sent again (empty: none); `shared` is null unless the part went in
                        one batch with other files of the drop box: then {files, rows,
                        first_row}, how many files shared the batch, its rows in all, and the
                        batch's row (1-based) where this part's rows begin; `status` and
                        `message` are then the batch's, the counts this part's own
    timings             {dropped, claimed, submitted, finished, modified}: `dropped` is when the
                        daemon first saw the file, `modified` its mtime (which an upload may
                        keep from the partner's disk); `submitted` is null when nothing was sent
    original            {size, sha256}: the bytes as dropped (the file beside this one)
    rounds              how many times the file was imported: more than 1 when it was written
                        to after its claim and imported again, whole (earlier rounds' batches
                        stay in `parts`; counts and row files are the last round's)
    imported            {size, sha256, last_line}: the bytes the last round read and the line
                        its last row ends on; lines after `last_line` were never sent (null
                        when nothing was sent). Equal to `original` unless the file vanished
    encoding            {name, decided_by, converted_to}: how the text was read: `decided_by`
                        is "bom", "utf-8" (valid UTF-8, which wins over a declared legacy
                        encoding), "declared" or "auto" (detected); `converted_to` is "utf-8"
                        when the rows were converted for Marketo, else null
    ignored_columns     1-based numbers of trailing header columns with no name and no value
                        (Excel's padding), left out of what was sent
    columns             [{column, field, fate, how}]: each column of the header as written,
                        the field it was sent as, its fate (sent, ignored, denied, unknown,
                        ambiguous) and how it was mapped or why it was not sent; null when
                        the file was refused before its header was read
    duplicates          {lookup_field, rows, lines: [{line, same_as_line}], complete, note}:
                        the rows whose lookup value an earlier row of the file has (the first
                        1000 listed), which update the same lead, so Marketo keeps the last;
                        null when the file was refused before its rows were read
    version             the dropbox-importer version that wrote this file
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dropbox_importer import __version__
from dropbox_importer.csvfile import Duplicates
from dropbox_importer.csvfile.header import HeaderMap
from dropbox_importer.dropbox.layout import Outcome, write_atomic
from dropbox_importer.marketo.models import ImportFormat, ImportParams
from dropbox_importer.pipeline.records import FileRecord, PartRecord

SCHEMA = 1
_CHUNK = 1 << 20


def file_digest(path: Path) -> tuple[int, str]:
    """The size and sha256 of a file, read in chunks (never following a symlink)."""
    digest = hashlib.sha256()
    size = 0
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as source:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_iso(text: str | None) -> datetime | None:
    if text is None:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


@dataclass(frozen=True)
class PartResult:
    """One import batch of the file, as Marketo last reported it."""

    index: int
    first_line: int
    rows: int
    batch_id: int | None
    status: str | None
    leads_processed: int = 0
    rows_failed: int = 0
    rows_with_warning: int = 0
    message: str = ""
    lost_batch_ids: list[int] = field(default_factory=list)
    round: int = 1
    shared: dict[str, int] | None = None  # {files, rows, first_row} of a batch it shared

    @classmethod
    def from_record(cls, part: PartRecord, shared: dict[str, int] | None = None) -> PartResult:
        """The result of one journal part (`shared`: the batch it shared with other files)."""
        return cls(
            part.index,
            part.first_line,
            part.rows,
            part.batch_id,
            None if part.status is None else part.status.value,
            part.leads_processed,
            part.rows_failed,
            part.rows_with_warning,
            part.message,
            list(part.lost_batch_ids),
            part.round,
            shared,
        )


@dataclass(frozen=True)
class ColumnResult:
    """One column of the partner's header and what became of it."""

    column: str  # the name as the partner wrote it
    field: str | None  # the lead field it was sent as
    fate: str  # sent | ignored | denied | unknown | ambiguous
    how: str  # how it was mapped, or why it was not sent

    @classmethod
    def of(cls, header: HeaderMap | None) -> tuple[ColumnResult, ...] | None:
        """The results of a mapped header (None stays None)."""
        if header is None:
            return None
        return tuple(cls(c.original, c.field, c.fate.value, c.how) for c in header.columns)


DUPLICATES_NOTE = (
    "rows with the same lookup value update the same lead, one after the other: Marketo keeps "
    "the last row's values (an empty cell leaves a value as it was)"
)


@dataclass(frozen=True)
class DuplicateResult:
    """Rows of the file that repeat an earlier row's lookup value."""

    lookup_field: str
    rows: int
    lines: tuple[tuple[int, int], ...]  # (line, the earlier line with the same value)
    complete: bool = True

    @classmethod
    def of(cls, lookup_field: str, found: Duplicates) -> DuplicateResult:
        """The report of the repeats found in the lookup column `lookup_field`."""
        return cls(lookup_field, found.rows, found.lines, found.complete)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object result.json holds."""
        return {
            "lookup_field": self.lookup_field,
            "rows": self.rows,
            "lines": [{"line": line, "same_as_line": first} for line, first in self.lines],
            "complete": self.complete,
            "note": DUPLICATES_NOTE,
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> DuplicateResult:
        """Read what `to_dict` wrote."""
        lines = tuple((int(x["line"]), int(x["same_as_line"])) for x in doc["lines"])
        return cls(doc["lookup_field"], int(doc["rows"]), lines, bool(doc["complete"]))


@dataclass(frozen=True)
class Timings:
    """When the file was first seen, claimed, first sent and settled; and its mtime."""

    dropped: datetime | None
    claimed: datetime | None
    submitted: datetime | None
    finished: datetime | None
    modified: datetime | None = None


@dataclass(frozen=True)
class Imported:
    """What the last round read: its bytes and the line its last row ends on."""

    size: int
    sha256: str
    last_line: int


@dataclass(frozen=True)
class Encoding:
    """How the file's text was read, and whether its rows were converted for Marketo."""

    name: str
    decided_by: str
    converted_to: str | None


@dataclass(frozen=True)
class FileResult:
    """Everything `result.json` says about one file."""

    dropbox: str
    route: str
    file: str
    outcome: Outcome
    reason: str | None
    params: ImportParams | None  # None when the route folder could not be parsed
    parts: tuple[PartResult, ...]
    timings: Timings
    size: int
    sha256: str
    rows_failed_locally: int = 0
    version: str = __version__
    blank_rows: int = 0
    rounds: int = 1
    imported: Imported | None = None
    encoding: Encoding | None = None
    ignored_columns: tuple[int, ...] = ()
    columns: tuple[ColumnResult, ...] | None = None
    duplicates: DuplicateResult | None = None

    @classmethod
    def build(
        cls,
        record: FileRecord,
        parts: Sequence[PartRecord],
        params: ImportParams | None,
        outcome: Outcome,
        *,
        reason: str | None = None,
        dropped: datetime | None = None,
        finished: datetime | None = None,
        rows_failed_locally: int = 0,
        modified: datetime | None = None,
        header: HeaderMap | None = None,
        duplicates: DuplicateResult | None = None,
        shared: Mapping[int, dict[str, int]] | None = None,
    ) -> FileResult:
        """The result of a journal file and its parts (of every round; its mapped header, if
        read); `shared` gives, by part index, the batch a part shared with other files."""
        created = [p.created_at for p in parts if p.created_at is not None]
        timings = Timings(
            dropped,
            record.claimed_at,
            min(created, default=None),
            finished or datetime.now(UTC),
            modified,
        )
        details = record.details
        sent = any(p.round == record.round and p.batch_id is not None for p in parts)
        imported = (
            Imported(record.size, record.sha256, int(details.get("last_line", 0))) if sent else None
        )
        encoding = None
        if "encoding" in details:
            name = str(details["encoding"])
            converted = "utf-8" if name != "utf-8" else None
            encoding = Encoding(name, str(details.get("encoding_by", "utf-8")), converted)
        return cls(
            record.dropbox,
            record.route,
            record.name,
            outcome,
            reason,
            params,
            tuple(PartResult.from_record(p, (shared or {}).get(p.index)) for p in parts),
            timings,
            record.size,
            record.sha256,
            rows_failed_locally,
            blank_rows=int(details.get("blank_rows", 0)),
            rounds=record.round,
            imported=imported,
            encoding=encoding,
            ignored_columns=tuple(int(c) for c in details.get("ignored_columns", ())),
            columns=ColumnResult.of(header),
            duplicates=duplicates,
        )

    def counts(self) -> dict[str, int]:
        """Marketo's counts summed over the last round's parts, rows refused, blank rows."""
        last = [p for p in self.parts if p.round == self.rounds]
        return {
            "leads_processed": sum(p.leads_processed for p in last),
            "rows_failed": sum(p.rows_failed for p in last),
            "rows_with_warning": sum(p.rows_with_warning for p in last),
            "rows_failed_locally": self.rows_failed_locally,
            "blank_rows": self.blank_rows,
        }

    def to_dict(self) -> dict[str, Any]:
        """The JSON document, with the stable key names of the module docstring."""
        return {
            "schema": SCHEMA,
            "dropbox": self.dropbox,
            "route": self.route,
            "file": self.file,
            "outcome": self.outcome,
            "reason": self.reason,
            "import": None
            if self.params is None
            else {
                "kind": self.params.kind.value,
                "format": self.params.format.value,
                "list_id": self.params.list_id,
                "partition_name": self.params.partition_name,
                "lookup_field": self.params.lookup_field,
                "program_id": self.params.program_id,
                "program_member_status": self.params.program_member_status,
                "object_name": self.params.object_name,
            },
            "counts": self.counts(),
            "parts": [{**vars(p), "lost_batch_ids": list(p.lost_batch_ids)} for p in self.parts],
            "timings": {key: _iso(value) for key, value in vars(self.timings).items()},
            "original": {"size": self.size, "sha256": self.sha256},
            "rounds": self.rounds,
            "imported": None
            if self.imported is None
            else {
                "size": self.imported.size,
                "sha256": self.imported.sha256,
                "last_line": self.imported.last_line,
            },
            "encoding": None
            if self.encoding is None
            else {
                "name": self.encoding.name,
                "decided_by": self.encoding.decided_by,
                "converted_to": self.encoding.converted_to,
            },
            "ignored_columns": list(self.ignored_columns),
            "version": self.version,
            "columns": None if self.columns is None else [vars(c).copy() for c in self.columns],
            "duplicates": None if self.duplicates is None else self.duplicates.to_dict(),
        }

    def to_json(self) -> bytes:
        """The JSON document as UTF-8 bytes, indented for people, ending in a newline."""
        return (json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes) -> FileResult:
        """Read a document written by `to_json`."""
        doc = json.loads(data)
        params = doc["import"]
        timings = doc["timings"]
        imported, encoding = doc.get("imported"), doc.get("encoding")
        return cls(
            dropbox=doc["dropbox"],
            route=doc["route"],
            file=doc["file"],
            outcome=doc["outcome"],
            reason=doc["reason"],
            params=None
            if params is None
            else ImportParams(
                ImportFormat(params["format"]),
                params["list_id"],
                params["partition_name"],
                params["lookup_field"],
                # Absent from files written before program members and custom objects.
                params.get("program_id"),
                params.get("program_member_status"),
                params.get("object_name"),
            ),
            parts=tuple(PartResult(**p) for p in doc["parts"]),
            timings=Timings(*(_parse_iso(timings.get(f.name)) for f in fields(Timings))),
            size=doc["original"]["size"],
            sha256=doc["original"]["sha256"],
            rows_failed_locally=doc["counts"]["rows_failed_locally"],
            version=doc["version"],
            blank_rows=doc["counts"].get("blank_rows", 0),
            rounds=doc.get("rounds", 1),
            imported=None if imported is None else Imported(**imported),
            encoding=None if encoding is None else Encoding(**encoding),
            ignored_columns=tuple(doc.get("ignored_columns", ())),
            columns=None
            if doc.get("columns") is None
            else tuple(ColumnResult(**c) for c in doc["columns"]),
            duplicates=None
            if doc.get("duplicates") is None
            else DuplicateResult.from_dict(doc["duplicates"]),
        )

    def write(self, path: Path) -> None:
        """Write the document atomically to `path` (usually a staged file settle moves)."""
        write_atomic(path, self.to_json())
