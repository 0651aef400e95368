"""The journal: every claimed file, its parts and every move, in SQLite under `state_dir`.

Durability: WAL mode with `synchronous=FULL`, so a write has reached the disk when its call
returns. Callers record a step *before* the filesystem move it describes (a claim right after the
rename into processing/, a destination before the move into done/), so after a kill -9 the
journal either describes the file's place or names the place it was about to go.

Threads: one connection shared by every thread, guarded by one lock; each public call is one
short transaction (`BEGIN IMMEDIATE` for writes, so a check-then-set such as a transition is
atomic). Writes are a few rows each, so one lock costs nothing next to a Marketo call; another
process (the `status` command) may read at the same time thanks to WAL.

Schema changes: `PRAGMA user_version` holds the schema version; `MIGRATIONS[n]` brings version n
to n + 1. A journal written by a newer version is refused rather than guessed at.

Records are frozen dataclasses (`FileRecord`, `PartRecord`, `TransitionRecord`, in `records.py`),
never raw rows.

Engines: the same methods run on PostgreSQL (`state.journal: postgresql://...`, opened by
`postgres.open_postgres`): they are written once, in the SQL both engines accept through
`sql.Connection` (see sql.py for the rules), and the migrations below are applied to both. On
PostgreSQL several hosts share one journal and only the leader writes: `claim_leadership` grants
it a fencing epoch, and from then on every write transaction first reads the epoch row under a
share lock and is refused (`Fenced`) when a newer leader has taken over.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from dropbox_importer.marketo.models import BatchState, BatchStatus
from dropbox_importer.pipeline.records import (
    FileRecord,
    HostRecord,
    JobMember,
    JobRecord,
    LeadershipRecord,
    PartRecord,
    TransitionRecord,
    parse_batch_ids,
    stamp,
)
from dropbox_importer.pipeline.sql import SQLITE, Connection, Dialect
from dropbox_importer.pipeline.states import TERMINAL, FileState, check_transition

if TYPE_CHECKING:
    from dropbox_importer.pipeline.cut import CutSettings

log = structlog.get_logger(__name__)

JOURNAL_NAME = "journal.sqlite3"

MIGRATIONS: list[str] = [
    """
    CREATE TABLE files (
        id INTEGER PRIMARY KEY,
        dropbox TEXT NOT NULL,
        route TEXT NOT NULL,
        name TEXT NOT NULL,
        inbox_path TEXT NOT NULL,
        processing_path TEXT NOT NULL,
        destination_path TEXT,
        state TEXT NOT NULL,
        size INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        reason TEXT,
        claimed_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        finished_at TEXT
    );
    CREATE INDEX files_state ON files (state, dropbox);
    CREATE INDEX files_finished ON files (finished_at);
    CREATE TABLE parts (
        file_id INTEGER NOT NULL REFERENCES files (id) ON DELETE CASCADE,
        part_index INTEGER NOT NULL,
        first_line INTEGER NOT NULL,
        rows INTEGER NOT NULL,
        size INTEGER NOT NULL,
        path TEXT,
        batch_id INTEGER,
        status TEXT,
        leads_processed INTEGER NOT NULL DEFAULT 0,
        rows_failed INTEGER NOT NULL DEFAULT 0,
        rows_with_warning INTEGER NOT NULL DEFAULT 0,
        message TEXT NOT NULL DEFAULT '',
        submission_uncertain INTEGER NOT NULL DEFAULT 0,
        created_at TEXT,
        finished_at TEXT,
        PRIMARY KEY (file_id, part_index)
    );
    CREATE INDEX parts_batch ON parts (batch_id);
    CREATE TABLE local_failures (
        file_id INTEGER NOT NULL REFERENCES files (id) ON DELETE CASCADE,
        line INTEGER NOT NULL,
        reason TEXT NOT NULL,
        PRIMARY KEY (file_id, line)
    );
    CREATE TABLE transitions (
        id INTEGER PRIMARY KEY,
        file_id INTEGER NOT NULL REFERENCES files (id) ON DELETE CASCADE,
        from_state TEXT,
        to_state TEXT NOT NULL,
        at TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX transitions_file ON transitions (file_id);
    """,
    # Batches Marketo no longer knew, oldest first, comma-separated: the part was sent again.
    """
    ALTER TABLE parts ADD COLUMN lost_batches TEXT NOT NULL DEFAULT '';
    """,
    # What `status` and the status page need to know about the daemon itself (runlog.py): its
    # runs, each instance's health, folders it cannot claim from; and per file, when it was
    # last written before its claim and why it waits now.
    """
    ALTER TABLE files ADD COLUMN dropped_at TEXT;
    ALTER TABLE files ADD COLUMN note TEXT;
    CREATE INDEX files_name ON files (name);
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        pid INTEGER NOT NULL,
        started_at TEXT NOT NULL,
        heartbeat_at TEXT NOT NULL,
        stopped_at TEXT,
        config_path TEXT NOT NULL,
        config_sha256 TEXT NOT NULL,
        config_read_at TEXT NOT NULL,
        reload_rejected TEXT,
        pending TEXT NOT NULL DEFAULT '[]',
        dropboxes TEXT NOT NULL DEFAULT '[]'
    );
    CREATE TABLE instance_health (
        name TEXT PRIMARY KEY,
        run_id INTEGER NOT NULL,
        updated_at TEXT NOT NULL,
        health TEXT NOT NULL
    );
    CREATE TABLE blocked_folders (
        dropbox TEXT NOT NULL,
        folder TEXT NOT NULL,
        reason TEXT NOT NULL,
        since TEXT NOT NULL,
        PRIMARY KEY (dropbox, folder)
    );
    """,
    # How each file was cut (pipeline.cut), so a restart cuts it the same way.
    """
    ALTER TABLE files ADD COLUMN cut TEXT;
    """,
    # Leadership. One row per journal: the fencing epoch and the host that leads under it;
    # one row per host that runs a daemon on this journal, leader or standby, and when last seen.
    """
    CREATE TABLE leadership (
        scope TEXT PRIMARY KEY,
        epoch INTEGER NOT NULL,
        leader TEXT,
        pid INTEGER,
        since TEXT
    );
    INSERT INTO leadership (scope, epoch) VALUES ('journal', 0);
    CREATE TABLE hosts (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        pid INTEGER NOT NULL,
        since TEXT NOT NULL,
        seen_at TEXT NOT NULL
    );
    """,
    # A file is imported in rounds: again, whole, when it was written to after its claim.
    # seen_at: when the daemon first saw it in inbox/ (dropped_at is its mtime, the round's
    # start's); details: what the round's checks learned (encoding, blank rows, ...), as JSON.
    """
    ALTER TABLE files ADD COLUMN seen_at TEXT;
    ALTER TABLE files ADD COLUMN round INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE files ADD COLUMN details TEXT;
    ALTER TABLE parts ADD COLUMN round INTEGER NOT NULL DEFAULT 1;
    """,
    # Jobs several files share: which parts (so which lines of which files) went into each, in
    # the order they were sent; the batch's own counts. Each member part keeps its batch id and
    # its own counts in `parts`, like a part sent alone.
    """
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY,
        dropbox TEXT NOT NULL,
        route TEXT NOT NULL,
        rows INTEGER NOT NULL,
        size INTEGER NOT NULL,
        batch_id INTEGER,
        status TEXT,
        leads_processed INTEGER NOT NULL DEFAULT 0,
        rows_failed INTEGER NOT NULL DEFAULT 0,
        rows_with_warning INTEGER NOT NULL DEFAULT 0,
        message TEXT NOT NULL DEFAULT '',
        recorded_at TEXT NOT NULL,
        created_at TEXT,
        finished_at TEXT
    );
    CREATE INDEX jobs_batch ON jobs (batch_id);
    CREATE TABLE job_members (
        job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        member_index INTEGER NOT NULL,
        file_id INTEGER NOT NULL REFERENCES files (id) ON DELETE CASCADE,
        part_index INTEGER NOT NULL,
        first_row INTEGER NOT NULL,
        first_line INTEGER NOT NULL,
        rows INTEGER NOT NULL,
        PRIMARY KEY (job_id, member_index)
    );
    CREATE INDEX job_members_file ON job_members (file_id);
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


class JournalError(Exception):
    """The journal cannot be used as asked; the message says why and what to do."""


class JournalUnreachable(JournalError):  # noqa: N818 - named for what the operator sees
    """A shared journal's database cannot be reached now (down, refused, wrong password)."""


# Named for what happened, like AlreadyRunning and InvalidTransition.
class Fenced(JournalError):  # noqa: N818
    """A write refused because another leader took over since this one was granted its epoch."""

    def __init__(self, epoch: int, current: LeadershipRecord) -> None:
        super().__init__(
            f"the journal refused a write: this daemon led under epoch {epoch}, but "
            f"{current.leader or 'another host'} took over under epoch {current.epoch}; "
            "standing down"
        )
        self.epoch = epoch
        self.current = current


class RecordNotFoundError(JournalError, KeyError):
    """No file (or part, or batch) with that id in the journal."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _now() -> datetime:
    return datetime.now(UTC)


class Journal:
    """The daemon's durable memory of claimed files; safe to share between threads."""

    def __init__(
        self,
        conn: Connection,
        path: Path | str,
        clock: Callable[[], datetime],
        dialect: Dialect = SQLITE,
    ) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self._clock = clock
        self._dialect = dialect
        self._epoch: int | None = None  # set by claim_leadership: writes are fenced from then on
        self._on_fenced: Callable[[Fenced], None] = lambda _exc: None
        self.path = path  # the SQLite file, or the PostgreSQL URL (never with a password)

    @classmethod
    def over(
        cls,
        conn: Connection,
        location: str,
        dialect: Dialect,
        *,
        clock: Callable[[], datetime] = _now,
    ) -> Journal:
        """A journal over an open connection of another engine, migrated to this schema."""
        journal = cls(conn, location, clock, dialect)
        journal._migrate()
        log.info(
            "journal_opened", path=location, engine=dialect.name, schema_version=SCHEMA_VERSION
        )
        return journal

    @property
    def engine(self) -> str:
        """`sqlite` or `postgresql`."""
        return self._dialect.name

    @classmethod
    def open(cls, state_dir: Path, *, clock: Callable[[], datetime] = _now) -> Journal:
        """Open (creating or migrating) the journal in `state_dir`."""
        state_dir.mkdir(parents=True, exist_ok=True)
        path = state_dir / JOURNAL_NAME
        try:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
        except sqlite3.Error as exc:
            raise JournalError(
                f"cannot open the journal {path}: {exc}; check that the state directory is "
                "writable by the daemon's user"
            ) from exc
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=10000")
        journal = cls(conn, path, clock)
        journal._migrate()
        log.info("journal_opened", path=str(path), schema_version=SCHEMA_VERSION)
        return journal

    def _migrate(self) -> None:
        with self._write() as conn:
            self._dialect.lock_migrations(conn)
            version = self._dialect.schema_version(conn)
            if version > SCHEMA_VERSION:
                raise JournalError(
                    f"the journal {self.path} has schema version {version}, newer than this "
                    f"version understands ({SCHEMA_VERSION}); run the newer dropbox-importer"
                )
            for step in MIGRATIONS[version:]:
                for statement in step.split(";"):
                    if statement.strip():
                        conn.execute(self._dialect.ddl(statement))
            self._dialect.set_schema_version(conn, SCHEMA_VERSION)

    @contextmanager
    def _write(self, *, fenced: bool = True) -> Iterator[Connection]:
        with self._lock:
            self._conn.execute(self._dialect.begin_write)
            try:
                if fenced and self._epoch is not None:
                    self._check_epoch(self._conn, self._epoch)
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                # A failed COMMIT (disk full) leaves the transaction open; never let it linger.
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._lock:
            yield self._conn

    # `runlog.py` keeps the daemon's own records in this journal through these two doors.
    writing = _write
    reading = _read

    def has_table(self, name: str) -> bool:
        """True if the journal has this table (a read-only journal may be an older schema)."""
        with self._read() as conn:
            return self._dialect.has_table(conn, name)

    def close(self) -> None:
        """Close the connection; the journal is complete on disk already."""
        with self._lock:
            self._conn.close()

    # -- files ------------------------------------------------------------------------------

    def record_claim(
        self,
        dropbox: str,
        route: str,
        name: str,
        inbox_path: Path,
        processing_path: Path,
        size: int,
        sha256: str,
        dropped_at: datetime | None = None,
        *,
        seen_at: datetime | None = None,
    ) -> int:
        """Record a file just claimed into processing/; return its id.

        `dropped_at` is when the upload last wrote the file (its mtime), for its history;
        `seen_at` when the daemon first saw it in inbox/ (the claim time if unknown).
        """
        at = stamp(self._clock())
        dropped = None if dropped_at is None else stamp(dropped_at)
        seen = at if seen_at is None else stamp(seen_at)
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT INTO files (dropbox, route, name, inbox_path, processing_path, state,"
                " size, sha256, claimed_at, updated_at, dropped_at, seen_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (dropbox, route, name, str(inbox_path), str(processing_path),
                 FileState.CLAIMED.value, size, sha256, at, at, dropped, seen),
            )  # fmt: skip
            file_id = cursor.lastrowid
            assert file_id is not None
            conn.execute(
                "INSERT INTO transitions (file_id, from_state, to_state, at, detail)"
                " VALUES (?, NULL, ?, ?, 'claimed')",
                (file_id, FileState.CLAIMED.value, at),
            )
        return file_id

    def transition(
        self, file_id: int, new_state: FileState, detail: str = "", *, reason: str | None = None
    ) -> None:
        """Move a file to `new_state` (InvalidTransition if the table forbids it)."""
        at = stamp(self._clock())
        with self._write() as conn:
            old = FileState(self._row(conn, file_id)["state"])
            check_transition(old, new_state)
            conn.execute(
                "UPDATE files SET state = ?, updated_at = ?, reason = COALESCE(?, reason),"
                " finished_at = ?, note = NULL WHERE id = ?",
                (new_state.value, at, reason, at if new_state in TERMINAL else None, file_id),
            )
            conn.execute(
                "INSERT INTO transitions (file_id, from_state, to_state, at, detail)"
                " VALUES (?, ?, ?, ?, ?)",
                (file_id, old.value, new_state.value, at, detail),
            )

    def record_destination(self, file_id: int, destination: Path) -> Path:
        """Record where the file will go, before it moves; return the destination kept.

        Once the file is SETTLING the recorded destination wins: a replayed settle gets the one
        chosen before the crash, so the file and its result files never end up in two places.
        """
        with self._write() as conn:
            row = self._row(conn, file_id)
            kept = row["destination_path"]
            # Kept once SETTLING: from then on files may already have moved there. Before, a
            # replay may decide another outcome (a rejection lives only in memory) and place.
            if kept is not None and row["state"] == FileState.SETTLING.value:
                return Path(kept)
            conn.execute(
                "UPDATE files SET destination_path = ?, updated_at = ? WHERE id = ?",
                (str(destination), stamp(self._clock()), file_id),
            )
        return destination

    def record_details(self, file_id: int, details: Mapping[str, Any]) -> None:
        """Record what the current round's checks learned (encoding, blank rows, ...)."""
        with self._write() as conn:
            self._row(conn, file_id)
            conn.execute(
                "UPDATE files SET details = ? WHERE id = ?",
                (json.dumps(dict(details), sort_keys=True), file_id),
            )

    def start_round(self, file_id: int, size: int, sha256: str, dropped_at: datetime | None) -> int:
        """Begin another import of a file written to after its claim; return its round.

        The file goes from CHANGED back to CLAIMED with its new size and digest; what the
        last round's checks learned and its rows failed locally are forgotten (its parts and
        batches stay, for the result's history).
        """
        at = stamp(self._clock())
        with self._write() as conn:
            row = self._row(conn, file_id)
            old = FileState(row["state"])
            check_transition(old, FileState.CLAIMED)
            next_round = int(row["round"]) + 1
            conn.execute(
                "UPDATE files SET state = ?, updated_at = ?, size = ?, sha256 = ?, round = ?,"
                " dropped_at = ?, details = NULL, reason = NULL, destination_path = NULL"
                " WHERE id = ?",
                (FileState.CLAIMED.value, at, size, sha256, next_round,
                 None if dropped_at is None else stamp(dropped_at), file_id),
            )  # fmt: skip
            conn.execute("DELETE FROM local_failures WHERE file_id = ?", (file_id,))
            conn.execute(
                "INSERT INTO transitions (file_id, from_state, to_state, at, detail)"
                " VALUES (?, ?, ?, ?, ?)",
                (file_id, old.value, FileState.CLAIMED.value, at, f"round {next_round}"),
            )
        return next_round

    def reopen(self, file_id: int, processing_path: Path, detail: str) -> None:
        """A settled file changed: record it CHANGED, back at `processing_path`, before the move."""
        at = stamp(self._clock())
        with self._write() as conn:
            old = FileState(self._row(conn, file_id)["state"])
            check_transition(old, FileState.CHANGED)
            conn.execute(
                "UPDATE files SET state = ?, updated_at = ?, finished_at = NULL,"
                " processing_path = ? WHERE id = ?",
                (FileState.CHANGED.value, at, str(processing_path), file_id),
            )
            conn.execute(
                "INSERT INTO transitions (file_id, from_state, to_state, at, detail)"
                " VALUES (?, ?, ?, ?, ?)",
                (file_id, old.value, FileState.CHANGED.value, at, detail),
            )

    def finished_since(self, since: datetime) -> list[FileRecord]:
        """DONE and FAILED files finished at or after `since`, oldest first."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT * FROM files WHERE state IN (?, ?) AND finished_at >= ? ORDER BY id",
                (FileState.DONE.value, FileState.FAILED.value, stamp(since)),
            ).fetchall()
        return [FileRecord.from_row(row) for row in rows]

    def record_cut(
        self,
        file_id: int,
        cut: CutSettings,
        parts: Sequence[tuple[int, int, int, int, Path | None]],
        *,
        round_number: int = 1,
    ) -> None:
        """Record how the file was cut and its parts `(index, first_line, rows, size, path)`.

        Done before the first batch is created (it replaces the parts of the round recorded
        before; indices run on across rounds); every later try of the round reuses this cut.
        """
        last = max((index for index, *_ in parts), default=-1)
        with self._write() as conn:
            self._row(conn, file_id)
            conn.execute("UPDATE files SET cut = ? WHERE id = ?", (cut.to_json(), file_id))
            conn.execute(
                "DELETE FROM parts WHERE file_id = ? AND round = ? AND part_index > ?",
                (file_id, round_number, last),
            )
            conn.executemany(
                "INSERT INTO parts (file_id, part_index, first_line, rows, size, path, round)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (file_id, part_index) DO UPDATE SET"
                " first_line = excluded.first_line, rows = excluded.rows, size = excluded.size,"
                " path = excluded.path",
                [
                    (file_id, i, line, rows, size, None if path is None else str(path),
                     round_number)
                    for i, line, rows, size, path in parts
                ],
            )  # fmt: skip

    def record_reason(self, file_id: int, reason: str) -> None:
        """Record the sentence that explains why the file failed."""
        with self._write() as conn:
            self._row(conn, file_id)
            conn.execute("UPDATE files SET reason = ? WHERE id = ?", (reason, file_id))

    def set_note(self, file_id: int, note: str | None) -> None:
        """Say why the file waits now (None: it does not, beyond what its state says)."""
        with self._write() as conn:
            conn.execute("UPDATE files SET note = ? WHERE id = ?", (note, file_id))

    def get(self, file_id: int) -> FileRecord:
        """The file with this id (RecordNotFoundError if there is none)."""
        with self._read() as conn:
            return FileRecord.from_row(self._row(conn, file_id))

    def unfinished(self, dropbox: str | None = None) -> list[FileRecord]:
        """Every file not yet DONE or FAILED, oldest first: what recovery must resume."""
        query = "SELECT * FROM files WHERE state NOT IN (?, ?)"
        args: list[object] = [FileState.DONE.value, FileState.FAILED.value]
        if dropbox is not None:
            query += " AND dropbox = ?"
            args.append(dropbox)
        with self._read() as conn:
            rows = conn.execute(query + " ORDER BY id", args).fetchall()
        return [FileRecord.from_row(row) for row in rows]

    def recent(self, limit: int = 20, dropbox: str | None = None) -> list[FileRecord]:
        """The files most recently claimed, newest first."""
        query, args = "SELECT * FROM files", []
        if dropbox is not None:
            query, args = query + " WHERE dropbox = ?", [dropbox]
        with self._read() as conn:
            rows = conn.execute(query + " ORDER BY id DESC LIMIT ?", [*args, limit]).fetchall()
        return [FileRecord.from_row(row) for row in rows]

    def search(
        self,
        *,
        dropbox: str | None = None,
        route: str | None = None,
        name: str | None = None,
        since: datetime | None = None,
        states: frozenset[FileState] | None = None,
        limit: int = 100,
    ) -> list[FileRecord]:
        """Files matching every filter given, last finished (or claimed) first, at most `limit`.

        `name` is a glob (`leads*.csv`) matched against the file name, case-sensitively;
        `since` keeps files claimed or finished at or after that moment.
        """
        clauses, args = [], []
        if dropbox is not None:
            clauses.append("dropbox = ?")
            args.append(dropbox)
        if route is not None:
            clauses.append("route = ?")
            args.append(route)
        if name is not None:
            clauses.append("name GLOB ?")
            args.append(name)
        if since is not None:
            clauses.append("(claimed_at >= ? OR finished_at >= ?)")
            args += [stamp(since), stamp(since)]
        if states is not None:
            clauses.append(f"state IN ({', '.join('?' * len(states))})")
            args += sorted(state.value for state in states)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT * FROM files{where}"  # noqa: S608 - ours
                " ORDER BY COALESCE(finished_at, claimed_at) DESC, id DESC LIMIT ?",
                [*args, limit],
            ).fetchall()
        return [FileRecord.from_row(row) for row in rows]

    def counts(self, dropbox: str | None = None) -> dict[FileState, int]:
        """How many files are in each state (every state present, zero included)."""
        query, args = "SELECT state, COUNT(*) FROM files", []
        if dropbox is not None:
            query, args = query + " WHERE dropbox = ?", [dropbox]
        with self._read() as conn:
            rows = conn.execute(query + " GROUP BY state", args).fetchall()
        out = dict.fromkeys(FileState, 0)
        out.update({FileState(state): n for state, n in rows})
        return out

    def transitions(self, file_id: int) -> list[TransitionRecord]:
        """Every move of the file, in order."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT * FROM transitions WHERE file_id = ? ORDER BY id", (file_id,)
            ).fetchall()
        return [TransitionRecord.from_row(row) for row in rows]

    def compact(self, older_than: timedelta) -> int:
        """Forget DONE and FAILED files finished more than `older_than` ago; return how many."""
        cutoff = stamp(self._clock() - older_than)
        with self._write() as conn:
            cursor = conn.execute(
                "DELETE FROM files WHERE state IN (?, ?) AND finished_at < ?",
                (FileState.DONE.value, FileState.FAILED.value, cutoff),
            )
            removed = cursor.rowcount
            # Shared jobs whose every member was forgotten go with them.
            conn.execute("DELETE FROM jobs WHERE id NOT IN (SELECT job_id FROM job_members)")
        log.info(
            "journal_compacted", removed=removed, older_than_seconds=older_than.total_seconds()
        )
        return removed

    # -- parts ------------------------------------------------------------------------------

    def record_part(
        self,
        file_id: int,
        index: int,
        *,
        first_line: int,
        rows: int,
        size: int,
        path: Path | None = None,
        round_number: int = 1,
    ) -> None:
        """Record (or re-record, identically cut) one part of a file; batch fields are kept.

        Part indices run on across rounds: a file's parts are numbered once, in order.
        """
        with self._write() as conn:
            self._row(conn, file_id)
            conn.execute(
                "INSERT INTO parts (file_id, part_index, first_line, rows, size, path, round)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (file_id, part_index) DO UPDATE SET"
                " first_line = excluded.first_line, rows = excluded.rows,"
                " size = excluded.size, path = excluded.path",
                (file_id, index, first_line, rows, size, None if path is None else str(path),
                 round_number),
            )  # fmt: skip

    def mark_submission_uncertain(self, file_id: int, index: int, uncertain: bool = True) -> None:
        """Flag a part whose create was sent but whose answer was lost (or is about to be sent)."""
        with self._write() as conn:
            self._update_part(conn, file_id, index, "submission_uncertain = ?", (int(uncertain),))

    def record_batch(self, file_id: int, index: int, batch_id: int) -> None:
        """Record the batch id Marketo gave a part; the submission is certain from now on."""
        at = stamp(self._clock())
        with self._write() as conn:
            self._update_part(
                conn,
                file_id,
                index,
                "batch_id = ?, submission_uncertain = 0, created_at = ?",
                (batch_id, at),
            )

    def record_batch_status(self, file_id: int, status: BatchStatus) -> None:
        """Record Marketo's latest answer about one of the file's batches."""
        at = stamp(self._clock())
        finished = at if status.status.terminal else None
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE parts SET status = ?, leads_processed = ?, rows_failed = ?,"
                " rows_with_warning = ?, message = ?, finished_at = COALESCE(finished_at, ?)"
                " WHERE file_id = ? AND batch_id = ?",
                (status.status.value, status.leads_processed, status.rows_failed,
                 status.rows_with_warning, status.message, finished, file_id, status.batch_id),
            )  # fmt: skip
            if cursor.rowcount == 0:
                raise RecordNotFoundError(
                    f"file {file_id} has no part with batch {status.batch_id}"
                )

    def finish_submitting(self, file_id: int) -> bool:
        """SUBMITTING -> POLLING once every part of the file's round has a batch; False (nothing
        changed) if not.

        One transaction with the check, so a batch found lost meanwhile is never left unsent.
        """
        at = stamp(self._clock())
        with self._write() as conn:
            row = self._row(conn, file_id)
            old = FileState(row["state"])
            missing = conn.execute(
                "SELECT COUNT(*) FROM parts WHERE file_id = ? AND round = ? AND batch_id IS NULL",
                (file_id, row["round"]),
            ).fetchone()[0]
            if missing or old is FileState.POLLING:
                return not missing
            self._move(conn, file_id, old, FileState.POLLING, at)
        return True

    def record_lost_batch(
        self, file_id: int, batch_id: int, *, resubmit: bool, message: str
    ) -> tuple[tuple[int, ...], bool]:
        """Marketo no longer knows `batch_id`: free its part to be sent again (`resubmit`), or
        fail the part with `message`.

        With `resubmit`, a POLLING file goes back to SUBMITTING in the same transaction.
        Returns every batch the part has lost (this one last) and whether the file went back
        to SUBMITTING (then it must be queued for its submitter again).
        """
        moved = False
        at = stamp(self._clock())
        with self._write() as conn:
            part = conn.execute(
                "SELECT part_index, lost_batches FROM parts WHERE file_id = ? AND batch_id = ?",
                (file_id, batch_id),
            ).fetchone()
            if part is None:
                raise RecordNotFoundError(f"file {file_id} has no part with batch {batch_id}")
            lost = (*parse_batch_ids(part["lost_batches"]), batch_id)
            kept = ",".join(str(i) for i in lost)
            if resubmit:
                self._update_part(
                    conn,
                    file_id,
                    part["part_index"],
                    "batch_id = NULL, status = NULL, leads_processed = 0, rows_failed = 0,"
                    " rows_with_warning = 0, message = '', created_at = NULL,"
                    " finished_at = NULL, lost_batches = ?",
                    (kept,),
                )
                old = FileState(self._row(conn, file_id)["state"])
                if old is FileState.POLLING:
                    self._move(conn, file_id, old, FileState.SUBMITTING, at, f"lost {batch_id}")
                    moved = True
            else:
                self._update_part(
                    conn,
                    file_id,
                    part["part_index"],
                    "status = ?, message = ?, lost_batches = ?, finished_at = ?",
                    (BatchState.FAILED.value, message, kept, at),
                )
        return lost, moved

    def parts(self, file_id: int) -> list[PartRecord]:
        """The file's parts, in order."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT * FROM parts WHERE file_id = ? ORDER BY part_index", (file_id,)
            ).fetchall()
        return [PartRecord.from_row(row) for row in rows]

    def record_local_failures(self, file_id: int, failures: Mapping[int, str]) -> None:
        """Record rows failed before sending (line number -> reason)."""
        with self._write() as conn:
            self._row(conn, file_id)
            conn.executemany(
                "INSERT OR REPLACE INTO local_failures (file_id, line, reason) VALUES (?, ?, ?)",
                [(file_id, line, reason) for line, reason in failures.items()],
            )

    def local_failures(self, file_id: int) -> dict[int, str]:
        """Rows failed before sending, by original line number."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT line, reason FROM local_failures WHERE file_id = ? ORDER BY line",
                (file_id,),
            ).fetchall()
        return {int(line): str(reason) for line, reason in rows}

    # -- jobs several files share ----------------------------------------------------------

    def record_job(self, dropbox: str, route: str, members: Sequence[JobMember], size: int) -> int:
        """Record a shared job about to be created, and flag every member part uncertain.

        Written before the create, so after a kill -9 the journal says which parts (and so
        which lines of which files) may have reached Marketo together. Returns the job's id.
        """
        at = stamp(self._clock())
        rows = sum(m.rows for m in members)
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT INTO jobs (dropbox, route, rows, size, recorded_at) VALUES (?, ?, ?, ?, ?)",
                (dropbox, route, rows, size, at),
            )
            job_id = cursor.lastrowid
            assert job_id is not None
            for index, m in enumerate(members):
                conn.execute(
                    "INSERT INTO job_members (job_id, member_index, file_id, part_index, first_row,"
                    " first_line, rows) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (job_id, index, m.file_id, m.part_index, m.first_row, m.first_line, m.rows),
                )
                self._update_part(conn, m.file_id, m.part_index, "submission_uncertain = 1", ())
        return job_id

    def record_job_batch(self, job_id: int, batch_id: int) -> list[int]:
        """Marketo created the shared job as `batch_id`: every member part gets the batch, and
        every member file whose parts all have one goes to POLLING, in one transaction.

        Returns the member file ids, in the job's order.
        """
        at = stamp(self._clock())
        with self._write() as conn:
            job = self._job(conn, "id = ?", job_id)
            conn.execute(
                "UPDATE jobs SET batch_id = ?, created_at = ? WHERE id = ?", (batch_id, at, job_id)
            )
            files: list[int] = []
            for m in job.members:
                self._update_part(
                    conn,
                    m.file_id,
                    m.part_index,
                    "batch_id = ?, submission_uncertain = 0, created_at = ?",
                    (batch_id, at),
                )
                if m.file_id not in files:
                    files.append(m.file_id)
            for file_id in files:
                row = self._row(conn, file_id)
                # This round's parts: an earlier round's left unsent stay so (`start_round`).
                missing = conn.execute(
                    "SELECT COUNT(*) FROM parts WHERE file_id = ? AND round = ?"
                    " AND batch_id IS NULL",
                    (file_id, row["round"]),
                ).fetchone()[0]
                old = FileState(row["state"])
                if old is FileState.SUBMITTING and not missing:
                    self._move(conn, file_id, old, FileState.POLLING, at, f"batch {batch_id}")
        return files

    def cancel_job(self, job_id: int) -> None:
        """The shared job was not created (held, refused): forget it; its parts are free."""
        with self._write() as conn:
            job = self._job(conn, "id = ?", job_id)
            for m in job.members:
                self._update_part(conn, m.file_id, m.part_index, "submission_uncertain = 0", ())
            conn.execute("DELETE FROM job_members WHERE job_id = ?", (job_id,))
            conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def job(self, job_id: int) -> JobRecord | None:
        """The shared job with this id; None if there is none (cancelled or forgotten)."""
        with self._read() as conn:
            try:
                return self._job(conn, "id = ?", job_id)
            except RecordNotFoundError:
                return None

    def job_of_batch(self, batch_id: int, file_id: int) -> JobRecord | None:
        """The shared job Marketo created as `batch_id` with `file_id` among its members; None
        for a batch of one part alone. The file decides among instances: batch ids are one
        sequence per Marketo instance, so two instances may each have a batch 5000."""
        with self._read() as conn:
            return self._job_of(conn, batch_id, file_id)

    def _job_of(self, conn: Connection, batch_id: int, file_id: int) -> JobRecord | None:
        row = conn.execute(
            "SELECT jobs.id FROM jobs JOIN job_members ON job_members.job_id = jobs.id"
            " WHERE jobs.batch_id = ? AND job_members.file_id = ? ORDER BY jobs.id DESC LIMIT 1",
            (batch_id, file_id),
        ).fetchone()
        return None if row is None else self._job(conn, "id = ?", row[0])

    def jobs(self, limit: int = 20, dropbox: str | None = None) -> list[JobRecord]:
        """The shared jobs most recently recorded, newest first."""
        query, args = "SELECT id FROM jobs", []
        if dropbox is not None:
            query, args = query + " WHERE dropbox = ?", [dropbox]
        with self._read() as conn:
            ids = conn.execute(query + " ORDER BY id DESC LIMIT ?", [*args, limit]).fetchall()
            return [self._job(conn, "id = ?", row[0]) for row in ids]

    def record_job_status(self, status: BatchStatus, file_id: int) -> list[int]:
        """Record Marketo's answer about a shared batch, the job `file_id` was sent in: the
        batch's counts on the job, its status and message on every member part (their own
        counts come from `record_member_counts`). Returns the member file ids.

        RecordNotFoundError when the file shared no job created as that batch.
        """
        at = stamp(self._clock())
        finished = at if status.status.terminal else None
        with self._write() as conn:
            job = self._job_of(conn, status.batch_id, file_id)
            if job is None:
                raise RecordNotFoundError(
                    f"file {file_id} shared no job created as batch {status.batch_id}"
                )
            conn.execute(
                "UPDATE jobs SET status = ?, leads_processed = ?, rows_failed = ?,"
                " rows_with_warning = ?, message = ?, finished_at = COALESCE(finished_at, ?)"
                " WHERE id = ?",
                (status.status.value, status.leads_processed, status.rows_failed,
                 status.rows_with_warning, status.message, finished, job.id),
            )  # fmt: skip
            for m in job.members:
                conn.execute(
                    "UPDATE parts SET status = ?, message = ?,"
                    " finished_at = COALESCE(finished_at, ?)"
                    " WHERE file_id = ? AND part_index = ? AND batch_id = ?",
                    (status.status.value, status.message, finished, m.file_id, m.part_index,
                     status.batch_id),
                )  # fmt: skip
        return list(dict.fromkeys(m.file_id for m in job.members))

    def record_member_counts(
        self, file_id: int, index: int, leads_processed: int, failed: int, warned: int
    ) -> None:
        """Record a shared batch's counts for one of its member parts alone."""
        with self._write() as conn:
            self._update_part(
                conn,
                file_id,
                index,
                "leads_processed = ?, rows_failed = ?, rows_with_warning = ?",
                (leads_processed, failed, warned),
            )

    def _job(self, conn: Connection, where: str, value: int) -> JobRecord:
        """The job matching `where` (one `?`), the newest if several; RecordNotFoundError."""
        row = conn.execute(
            f"SELECT * FROM jobs WHERE {where} ORDER BY id DESC LIMIT 1",  # noqa: S608
            (value,),
        ).fetchone()
        if row is None:
            raise RecordNotFoundError(f"no shared job with {where.replace('?', str(value))}")
        members = conn.execute(
            "SELECT * FROM job_members WHERE job_id = ? ORDER BY member_index", (row["id"],)
        ).fetchall()
        return JobRecord.from_rows(row, members)

    # -- leadership -------------------------------------------------------------------------

    def claim_leadership(
        self, host: str, *, on_fenced: Callable[[Fenced], None] | None = None
    ) -> int:
        """Become the journal's writer: bump the fencing epoch and return the one granted.

        Every later write of this journal object is refused with `Fenced` (and `on_fenced`
        called) once another host has claimed a newer epoch. On PostgreSQL the bump waits
        until the previous leader's write in progress, if any, has ended.
        """
        at = stamp(self._clock())
        with self._write(fenced=False) as conn:
            conn.execute(
                "UPDATE leadership SET epoch = epoch + 1, leader = ?, pid = ?, since = ?"
                " WHERE scope = 'journal'",
                (host, os.getpid(), at),
            )
            epoch = int(self._leadership_row(conn)["epoch"])
            self._upsert_host(conn, host, "leader", at)
        self._epoch = epoch
        if on_fenced is not None:
            self._on_fenced = on_fenced
        return epoch

    @property
    def epoch(self) -> int | None:
        """The fencing epoch this journal object writes under (None before claiming one)."""
        return self._epoch

    def leadership(self) -> LeadershipRecord:
        """The latest leader: its epoch, host, pid and since when it leads."""
        with self._read() as conn:
            return LeadershipRecord.from_row(self._leadership_row(conn))

    def record_host(self, host: str, role: str) -> None:
        """Note that `host` runs a daemon on this journal in `role` (leader, standby, stopped)."""
        at = stamp(self._clock())
        with self._write(fenced=False) as conn:
            self._upsert_host(conn, host, role, at)

    def hosts(self) -> list[HostRecord]:
        """Every host seen running a daemon on this journal, most recently seen first."""
        with self._read() as conn:
            rows = conn.execute("SELECT * FROM hosts ORDER BY seen_at DESC, name").fetchall()
        return [HostRecord.from_row(row) for row in rows]

    def _check_epoch(self, conn: Connection, epoch: int) -> None:
        # Read under a share lock: a new leader's bump waits for this transaction to end, so
        # no write of an older epoch can commit after a newer epoch was granted.
        row = conn.execute(
            "SELECT * FROM leadership WHERE scope = 'journal'" + self._dialect.for_share  # noqa: S608
        ).fetchone()
        if int(row["epoch"]) != epoch:
            fenced = Fenced(epoch, LeadershipRecord.from_row(row))
            self._on_fenced(fenced)
            raise fenced

    @staticmethod
    def _leadership_row(conn: Connection) -> Any:
        return conn.execute("SELECT * FROM leadership WHERE scope = 'journal'").fetchone()

    @staticmethod
    def _upsert_host(conn: Connection, host: str, role: str, at: str) -> None:
        # `since` moves only when the host changes role or process.
        conn.execute(
            "INSERT INTO hosts (name, role, pid, since, seen_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET role = excluded.role, pid = excluded.pid,"
            " seen_at = excluded.seen_at, since = CASE WHEN hosts.role = excluded.role"
            " AND hosts.pid = excluded.pid THEN hosts.since ELSE excluded.since END",
            (host, role, os.getpid(), at, at),
        )

    # -- rows -------------------------------------------------------------------------------

    @staticmethod
    def _move(
        conn: Connection,
        file_id: int,
        old: FileState,
        new: FileState,
        at: str,
        detail: str = "",
    ) -> None:
        """A transition inside a transaction the caller holds."""
        check_transition(old, new)
        conn.execute(
            "UPDATE files SET state = ?, updated_at = ? WHERE id = ?", (new.value, at, file_id)
        )
        conn.execute(
            "INSERT INTO transitions (file_id, from_state, to_state, at, detail)"
            " VALUES (?, ?, ?, ?, ?)",
            (file_id, old.value, new.value, at, detail),
        )

    @staticmethod
    def _row(conn: Connection, file_id: int) -> sqlite3.Row:
        row: sqlite3.Row | None = conn.execute(
            "SELECT * FROM files WHERE id = ?", (file_id,)
        ).fetchone()
        if row is None:
            raise RecordNotFoundError(f"no file {file_id} in the journal")
        return row

    @staticmethod
    def _update_part(
        conn: Connection,
        file_id: int,
        index: int,
        assignments: str,
        args: tuple[object, ...],
    ) -> None:
        cursor = conn.execute(
            f"UPDATE parts SET {assignments} WHERE file_id = ? AND part_index = ?",  # noqa: S608
            (*args, file_id, index),
        )
        if cursor.rowcount == 0:
            raise RecordNotFoundError(f"file {file_id} has no part {index}")
