"""What submit learnt about a file that settle needs later: its header, its repeated lookups.

Kept as `prepared.json` beside the file's parts in the state dir, which outlives a restart and
is removed once the file is settled. Settle reads it to match Marketo's rows to the original's
(only the sent columns reached Marketo) and to tell the partner, in result.json, what became of
each column. A file cut again (after a crash before its batches were created) writes it again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dropbox_importer.csvfile import Duplicates
from dropbox_importer.csvfile.header import Column, Fate, HeaderMap
from dropbox_importer.dropbox.layout import write_atomic

NAME = "prepared.json"


@dataclass(frozen=True)
class PreparedFacts:
    """How a file's header was mapped and which of its rows repeat a lookup value."""

    header: HeaderMap | None
    duplicates: Duplicates
    lookup_field: str  # the field the duplicates were found in


def save_prepared(
    parts_dir: Path, header: HeaderMap | None, duplicates: Duplicates, lookup_field: str
) -> None:
    """Write what settle needs into `parts_dir` (atomically)."""
    document = {
        "columns": None if header is None else [_column(c) for c in header.columns],
        "duplicates": {
            "lookup_field": lookup_field,
            "rows": duplicates.rows,
            "lines": [list(pair) for pair in duplicates.lines],
            "complete": duplicates.complete,
        },
    }
    write_atomic(parts_dir / NAME, (json.dumps(document, ensure_ascii=False) + "\n").encode())


def load_prepared(parts_dir: Path) -> PreparedFacts | None:
    """What was saved for this file; None when nothing was saved (or it is unreadable)."""
    try:
        document = json.loads((parts_dir / NAME).read_bytes())
        columns = document["columns"]
        header = None if columns is None else HeaderMap(tuple(_from(c) for c in columns))
        found = document["duplicates"]
        duplicates = Duplicates(
            int(found["rows"]),
            tuple((int(line), int(first)) for line, first in found["lines"]),
            bool(found["complete"]),
        )
        return PreparedFacts(header, duplicates, str(found["lookup_field"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _column(column: Column) -> dict[str, Any]:
    return {
        "index": column.index,
        "original": column.original,
        "field": column.field,
        "fate": column.fate.value,
        "how": column.how,
        "candidates": list(column.candidates),
    }


def _from(data: dict[str, Any]) -> Column:
    return Column(
        index=int(data["index"]),
        original=str(data["original"]),
        field=None if data["field"] is None else str(data["field"]),
        fate=Fate(data["fate"]),
        how=str(data["how"]),
        candidates=tuple(data.get("candidates", ())),
    )
