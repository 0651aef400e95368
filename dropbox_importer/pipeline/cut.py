"""How a file was cut into parts, recorded when it is cut and reused on every later try.

A file split into parts may be half submitted when the daemon stops. If a restart cut it again
under a changed config (another `max_part_bytes`, another `encoding`, a route that now means
another list), part 3 of the new cut would not be part 3 of the old one: rows would be sent
twice or never, and the file would wait for a part that no longer exists. So the settings
that decide the cut and the import (the import parameters, the encoding, the size limit) are
written to the journal with the parts before the first batch is created, and every later try
cuts with those, whatever the config says now. If even that cut comes out different (the file
changed, or a new version splits differently), the file fails with a reason rather than wait.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from dropbox_importer.config import DropboxConfig
from dropbox_importer.csvfile import Part
from dropbox_importer.csvfile.encoding import DEFAULT_CANDIDATES
from dropbox_importer.marketo.models import ImportFormat, ImportParams
from dropbox_importer.pipeline.reasons import params_for
from dropbox_importer.pipeline.records import FileRecord, PartRecord


@dataclass(frozen=True)
class CutSettings:
    """The settings a file was (or is to be) cut and imported with."""

    params: ImportParams
    encoding: str
    max_part_bytes: int
    candidates: tuple[str, ...] = DEFAULT_CANDIDATES  # what `encoding: auto` chooses among

    @classmethod
    def from_config(cls, record: FileRecord, box: DropboxConfig) -> CutSettings:
        """The cut the drop box's config gives now (Rejected if the route can't be parsed)."""
        return cls(
            params_for(record, box), box.encoding, box.max_part_bytes, box.encoding_candidates
        )

    def to_json(self) -> str:
        """The journal's form: one JSON object."""
        p = self.params
        return json.dumps(
            {
                "format": p.format.value,
                "list_id": p.list_id,
                "partition_name": p.partition_name,
                "lookup_field": p.lookup_field,
                "program_id": p.program_id,
                "program_member_status": p.program_member_status,
                "object_name": p.object_name,
                "encoding": self.encoding,
                "max_part_bytes": self.max_part_bytes,
                "candidates": list(self.candidates),
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> CutSettings:
        """Read the journal's form back."""
        data = json.loads(text)
        params = ImportParams(
            ImportFormat(data["format"]),
            list_id=data["list_id"],
            partition_name=data["partition_name"],
            lookup_field=data["lookup_field"],
            # Absent from cuts recorded before program members and custom objects.
            program_id=data.get("program_id"),
            program_member_status=data.get("program_member_status"),
            object_name=data.get("object_name"),
        )
        # Absent from cuts recorded before `encoding: auto`.
        candidates = tuple(data.get("candidates", DEFAULT_CANDIDATES))
        return cls(params, str(data["encoding"]), int(data["max_part_bytes"]), candidates)


def recorded_cut(record: FileRecord, box: DropboxConfig) -> CutSettings:
    """The cut recorded for the file, else the one the config gives now (Rejected if none)."""
    return record.cut if record.cut is not None else CutSettings.from_config(record, box)


def differences(recorded: Sequence[PartRecord], parts: Sequence[Part]) -> str | None:
    """How a new cut differs from the recorded parts, in words; None when it is the same."""
    if len(recorded) != len(parts):
        return f"it now makes {len(parts)} part(s) instead of {len(recorded)}"
    for before, now in zip(recorded, parts, strict=True):
        was = (before.first_line, before.rows, before.size)
        if was != (now.first_line, now.rows, now.bytes):
            return (
                f"part {before.index + 1} now starts at line {now.first_line} with {now.rows} "
                f"row(s) instead of line {before.first_line} with {before.rows}"
            )
    return None
