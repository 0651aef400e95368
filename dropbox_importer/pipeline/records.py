"""The journal's records: frozen dataclasses read from its rows, and its time format.

Kept apart from `journal.py` so readers of records (status, result.json, the pipeline) see the
shapes without the SQL around them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dropbox_importer.marketo.models import BatchState, BatchStatus
from dropbox_importer.pipeline.sql import Row
from dropbox_importer.pipeline.states import FileState

if TYPE_CHECKING:
    from dropbox_importer.pipeline.cut import CutSettings

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def stamp(moment: datetime) -> str:
    """A moment as the journal stores it: ISO 8601 UTC with microseconds and a Z."""
    return moment.astimezone(UTC).strftime(_TIME_FORMAT)


def parse_stamp(text: str | None) -> datetime | None:
    """A journal time read back (None stays None)."""
    return _time(text)


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC)


def parse_batch_ids(text: str | None) -> tuple[int, ...]:
    """Batch ids as the journal keeps a list of them: comma-separated, oldest first."""
    return tuple(int(item) for item in (text or "").split(",") if item)


def _path(text: str | None) -> Path | None:
    return None if text is None else Path(text)


@dataclass(frozen=True)
class FileRecord:
    """One claimed file as the journal knows it."""

    id: int
    dropbox: str
    route: str
    name: str
    inbox_path: Path
    processing_path: Path
    destination_path: Path | None
    state: FileState
    size: int
    sha256: str
    reason: str | None
    claimed_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    # When the partner's upload last wrote the file (its mtime at the claim); None in journals
    # older than schema 2.
    dropped_at: datetime | None = None
    # Why the file waits right now, when the daemon knows better than its state says (a settle
    # that failed and is retried, an instance that needs an operator); cleared at each move.
    note: str | None = None
    # How the file was cut, once it was (see `pipeline.cut`); None before.
    cut: CutSettings | None = None
    seen_at: datetime | None = None  # first seen in inbox/ (None: claimed before it was kept)
    round: int = 1  # 2 and on: imported again, whole, after it changed
    details: dict[str, Any] = field(default_factory=dict)  # what the round's checks learned

    @property
    def relative(self) -> str:
        """The file as log events and `status` name it: its route path and name."""
        return f"{self.route}/{self.name}" if self.route else self.name

    @classmethod
    def from_row(cls, row: Row) -> FileRecord:
        """Build a record from a `files` row."""
        from dropbox_importer.pipeline.cut import CutSettings  # the cut imports records

        data: dict[str, Any] = dict(row)
        data["cut"] = None if data.get("cut") is None else CutSettings.from_json(data["cut"])
        for key in ("inbox_path", "processing_path", "destination_path"):
            data[key] = _path(data[key])
        for key in ("claimed_at", "updated_at", "finished_at", "dropped_at", "seen_at"):
            data[key] = _time(data.get(key))
        data["state"] = FileState(data["state"])
        data["details"] = json.loads(data["details"]) if data.get("details") else {}
        return cls(**data)


@dataclass(frozen=True)
class PartRecord:
    """One part of a file (the whole file when it needed no split) and its batch."""

    file_id: int
    index: int
    first_line: int
    rows: int
    size: int
    path: Path | None
    batch_id: int | None
    status: BatchState | None
    leads_processed: int
    rows_failed: int
    rows_with_warning: int
    message: str
    submission_uncertain: bool
    created_at: datetime | None
    finished_at: datetime | None
    # Batches of this part Marketo no longer knew, oldest first; each was sent again once.
    lost_batch_ids: tuple[int, ...] = ()
    round: int = 1

    @property
    def final(self) -> bool:
        """True once Marketo has finished this part's batch (Complete or Failed)."""
        return self.status is not None and self.status.terminal

    def batch_status(self) -> BatchStatus | None:
        """The last status recorded for the batch, if any."""
        if self.batch_id is None or self.status is None:
            return None
        counts = (self.leads_processed, self.rows_failed, self.rows_with_warning)
        return BatchStatus(self.batch_id, self.status, *counts, message=self.message)

    @classmethod
    def from_row(cls, row: Row) -> PartRecord:
        """Build a record from a `parts` row."""
        data: dict[str, Any] = dict(row)
        data["index"] = data.pop("part_index")
        data["path"] = _path(data["path"])
        data["status"] = None if data["status"] is None else BatchState(data["status"])
        data["submission_uncertain"] = bool(data["submission_uncertain"])
        data["created_at"] = _time(data["created_at"])
        data["finished_at"] = _time(data["finished_at"])
        data["lost_batch_ids"] = parse_batch_ids(data.pop("lost_batches", ""))
        return cls(**data)


@dataclass(frozen=True)
class JobMember:
    """One part sent in a shared job: which file, which of its lines, where in the job."""

    file_id: int
    part_index: int
    first_row: int  # 0-based: the job's rows before this part's
    first_line: int  # the original's line number of the part's first row
    rows: int


@dataclass(frozen=True)
class JobRecord:
    """An import job several files shared (one upload, one batch), as the journal knows it."""

    id: int
    dropbox: str
    route: str  # the route of its first member
    rows: int
    size: int
    batch_id: int | None  # None until Marketo answered the create
    status: BatchState | None
    leads_processed: int  # the batch's own counts, over every member
    rows_failed: int
    rows_with_warning: int
    message: str
    recorded_at: datetime
    created_at: datetime | None
    finished_at: datetime | None
    members: tuple[JobMember, ...]

    def member(self, file_id: int, part_index: int) -> JobMember:
        """The member that is this part (KeyError if it is none of them)."""
        for member in self.members:
            if (member.file_id, member.part_index) == (file_id, part_index):
                return member
        raise KeyError(f"file {file_id} part {part_index} is not in job {self.id}")

    @property
    def handled(self) -> int:
        """Rows Marketo got through, imported or failed (all of them once Complete)."""
        if self.status is BatchState.COMPLETE:
            return self.rows
        return self.leads_processed + self.rows_failed

    @classmethod
    def from_rows(cls, row: Row, members: list[Row]) -> JobRecord:
        """Build a record from a `jobs` row and its `job_members` rows, in position order."""
        data: dict[str, Any] = dict(row)
        data["status"] = None if data["status"] is None else BatchState(data["status"])
        for key in ("recorded_at", "created_at", "finished_at"):
            data[key] = _time(data[key])
        data["members"] = tuple(
            JobMember(m["file_id"], m["part_index"], m["first_row"], m["first_line"], m["rows"])
            for m in members
        )
        return cls(**data)


@dataclass(frozen=True)
class TransitionRecord:
    """One recorded move of a file between states."""

    file_id: int
    from_state: FileState | None
    to_state: FileState
    at: datetime
    detail: str

    @classmethod
    def from_row(cls, row: Row) -> TransitionRecord:
        """Build a record from a `transitions` row."""
        old = row["from_state"]
        return cls(
            file_id=row["file_id"],
            from_state=None if old is None else FileState(old),
            to_state=FileState(row["to_state"]),
            at=datetime.strptime(row["at"], _TIME_FORMAT).replace(tzinfo=UTC),
            detail=row["detail"],
        )


@dataclass(frozen=True)
class LeadershipRecord:
    """The journal's latest leader: the fencing epoch it was granted, its host and since when."""

    epoch: int
    leader: str | None
    pid: int | None
    since: datetime | None

    @classmethod
    def from_row(cls, row: Row) -> LeadershipRecord:
        """Build a record from the `leadership` row."""
        return cls(
            epoch=int(row["epoch"]),
            leader=row["leader"],
            pid=row["pid"],
            since=_time(row["since"]),
        )


@dataclass(frozen=True)
class HostRecord:
    """A host that runs (or ran) a daemon on the journal: its role, since when, last seen."""

    name: str
    role: str  # leader | standby | stopped
    pid: int
    since: datetime
    seen_at: datetime

    @classmethod
    def from_row(cls, row: Row) -> HostRecord:
        """Build a record from a `hosts` row."""
        since, seen_at = _time(row["since"]), _time(row["seen_at"])
        assert since is not None and seen_at is not None
        return cls(row["name"], row["role"], int(row["pid"]), since, seen_at)
