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
    counts              {leads_processed, rows_failed, rows_with_warning, rows_failed_locally}:
                        Marketo's counts summed over the parts, plus rows refused before sending;
                        `leads_processed` counts the records imported of the file's kind (leads,
                        program members or custom object records)
    parts               [{index, first_line, rows, batch_id, status, leads_processed,
                        rows_failed, rows_with_warning, message}]: one per import batch;
                        `first_line` is the original's line number of the part's first row
    timings             {dropped, claimed, submitted, finished}; `submitted` is null when
                        nothing was sent
    original            {size, sha256}: the bytes as dropped (the file beside this one)
    version             the dropbox-importer version that wrote this file
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dropbox_importer import __version__
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

    @classmethod
    def from_record(cls, part: PartRecord) -> PartResult:
        """The result of one journal part."""
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
        )


@dataclass(frozen=True)
class Timings:
    """When the file was dropped, claimed, first sent and settled."""

    dropped: datetime | None
    claimed: datetime | None
    submitted: datetime | None
    finished: datetime | None


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
    ) -> FileResult:
        """The result of a journal file and its parts."""
        created = [p.created_at for p in parts if p.created_at is not None]
        timings = Timings(
            dropped, record.claimed_at, min(created, default=None), finished or datetime.now(UTC)
        )
        return cls(
            record.dropbox,
            record.route,
            record.name,
            outcome,
            reason,
            params,
            tuple(PartResult.from_record(p) for p in parts),
            timings,
            record.size,
            record.sha256,
            rows_failed_locally,
        )

    def counts(self) -> dict[str, int]:
        """Marketo's counts summed over every part, and the rows refused before sending."""
        return {
            "leads_processed": sum(p.leads_processed for p in self.parts),
            "rows_failed": sum(p.rows_failed for p in self.parts),
            "rows_with_warning": sum(p.rows_with_warning for p in self.parts),
            "rows_failed_locally": self.rows_failed_locally,
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
            "parts": [vars(p).copy() for p in self.parts],
            "timings": {key: _iso(value) for key, value in vars(self.timings).items()},
            "original": {"size": self.size, "sha256": self.sha256},
            "version": self.version,
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
            timings=Timings(*(_parse_iso(timings[f.name]) for f in fields(Timings))),
            size=doc["original"]["size"],
            sha256=doc["original"]["sha256"],
            rows_failed_locally=doc["counts"]["rows_failed_locally"],
            version=doc["version"],
        )

    def write(self, path: Path) -> None:
        """Write the document atomically to `path` (usually a staged file settle moves)."""
        write_atomic(path, self.to_json())
