"""A shared job's member part cut again, on a host whose state dir does not hold it.

Splitting a shared batch's rows files between its files (shared_batch.py) needs each member's
rows as they were sent, read from the member's part file in the state dir. The state dir is
local to each host (docs/install.md): after a takeover the parts are on the host that died,
and a state dir wiped or restored from an old backup lost them too. The cut is deterministic
(cut.py: the journal records the settings it was made with), so the member's original is cut
again with those settings, and the part that comes out is used once it is the part recorded:
the same first line, rows and bytes. A member still in flight keeps the part where its own
settle looks for it (its round's parts dir, with the facts its checks learnt), recorded in the
journal; for a member already settled, the original in done/ or failed/ is cut, into a folder
of the job's that goes with it.

When the rows as sent cannot be had again (the original changed, went or cannot be read; the
part belongs to an earlier round of a file imported again since; it now cuts differently),
`PartLost` says why, in words the partner reads.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from dropbox_importer.config import DropboxConfig
from dropbox_importer.dropbox.results import file_digest
from dropbox_importer.pipeline.journal import Journal
from dropbox_importer.pipeline.preflight import Catalog
from dropbox_importer.pipeline.prepared import NAME as PREPARED
from dropbox_importer.pipeline.reasons import Rejected, route_for, unreadable_reason
from dropbox_importer.pipeline.records import FileRecord, PartRecord
from dropbox_importer.pipeline.rounds import round_parts_dir
from dropbox_importer.pipeline.submit import cut_file


class PartLost(Exception):  # noqa: N818 - what happened to the part, not an error of ours
    """The part's rows as sent cannot be had again; `reason` says why (the partner reads it)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Recutter:
    """Cuts a member part of a shared job again from its original; thread-safe."""

    def __init__(
        self,
        journal: Journal,
        parts_root: Path,
        *,
        boxes: Callable[[str], DropboxConfig],
        catalogs: Callable[[str], Catalog | None],
    ) -> None:
        self._journal = journal
        self._parts_root = parts_root
        self._boxes = boxes
        self._catalogs = catalogs  # drop box -> its instance's catalog (None: no preflight)

    def __call__(self, record: FileRecord, part: PartRecord, scratch: Path) -> Path:
        """The part file as it was sent, cut again from the original in `scratch` (a folder of
        the job's, emptied first) and, for a file still in flight, moved to its parts dir.

        PartLost says why it cannot be; a MarketoError while reading the instance's catalog
        (for preflight) propagates: the settle that asked is tried again later.
        """
        if record.cut is None:
            raise PartLost("its cut was never recorded")
        if part.round != record.round:
            raise PartLost("it changed after it was sent and was imported again, whole, since")
        live = not record.state.terminal
        source = record.processing_path if live else record.destination_path
        if source is None:
            raise PartLost("it is in no folder the journal knows")
        where = "in processing/" if live else f"in {source.parent.name}/"
        try:
            box = self._boxes(record.dropbox)
            _, policy = route_for(record, box)
        except KeyError:
            raise PartLost("its drop box is no longer in the config") from None
        except Rejected as exc:
            raise PartLost(f"its route can no longer be used: {exc}") from None
        catalog = self._catalogs(record.dropbox) if box.preflight else None
        try:
            self._same_bytes(record, source)
            cut = cut_file(source, record.cut, scratch, catalog, policy.columns)
            self._same_bytes(record, source)
        except FileNotFoundError as exc:
            if _within(exc.filename, scratch):
                raise  # this host's own folder: the settle that asked tries again later
            raise PartLost(f"it is no longer {where}") from None
        except PermissionError as exc:
            if _within(exc.filename, scratch):
                raise
            raise PartLost(unreadable_reason(exc)) from None
        # Any other OSError (a full disk here, an I/O error on the share) passes: the settle
        # that asked tries again later, and nothing is decided on it.
        except Rejected as exc:
            raise PartLost(f"it can no longer be cut as it was sent: {exc}") from None
        was = (part.first_line, part.rows, part.size)
        found = next((p for p in cut.parts if (p.first_line, p.rows, p.bytes) == was), None)
        if found is None:
            raise PartLost(
                f"it no longer cuts into the part that was sent (line {part.first_line}, "
                f"{part.rows} row(s), {part.size} bytes)"
            )
        if not live:
            return found.path
        folder = round_parts_dir(self._parts_root, record)
        folder.mkdir(parents=True, exist_ok=True)
        kept = folder / found.path.name
        found.path.replace(kept)
        if (scratch / PREPARED).exists():  # what the file's own settle reads of its checks
            (scratch / PREPARED).replace(folder / PREPARED)
        self._journal.record_part(
            record.id,
            part.index,
            first_line=part.first_line,
            rows=part.rows,
            size=part.size,
            path=kept,
            round_number=part.round,
        )
        return kept

    @staticmethod
    def _same_bytes(record: FileRecord, source: Path) -> None:
        """PartLost unless `source` holds the bytes the file's round began with."""
        if file_digest(source) != (record.size, record.sha256):
            raise PartLost("it changed after it was sent")


def _within(filename: object, folder: Path) -> bool:
    """True when an error's file name is `folder` or below it (our own writes, not the
    partner's file)."""
    if not isinstance(filename, str | bytes | Path):
        return False
    path = Path(filename.decode() if isinstance(filename, bytes) else filename)
    return path == folder or folder in path.parents
