"""What the daemon tells `status` and the status page about itself, kept in its journal.

Its runs (pid, start, heartbeat, the config it read, a reload it refused or holds back), each
Marketo instance's health, and the inbox folders it cannot claim from. The daemon writes; the
readers open the journal read-only and may find an older schema without these tables, which
reads as "nothing known".

Blocked folders: a folder whose files cannot be moved out (a lost group write bit, a partner's
chmod) is recorded when a claim there fails with an OS error and cleared when one there
succeeds; `status` shows the files waiting in it with that reason.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dropbox_importer.marketo.health import HealthSnapshot
from dropbox_importer.pipeline.journal import Journal
from dropbox_importer.pipeline.records import parse_stamp, stamp

# How often a running daemon writes its heartbeat; a reader calls a run dead well past this.
HEARTBEAT_SECONDS = 5.0
# Instance health goes to the journal at most this often while it changes.
HEALTH_WRITE_SECONDS = 1.0


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Pending:
    """A config change held back: one drop box's, until it has no file in flight."""

    dropbox: str
    reason: str
    since: str  # ISO 8601 UTC

    def to_json(self) -> dict[str, str]:
        """A JSON-ready dict."""
        return {"dropbox": self.dropbox, "reason": self.reason, "since": self.since}


@dataclass(frozen=True)
class RunRecord:
    """One run of the daemon, as it recorded itself."""

    id: int
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    stopped_at: datetime | None
    config_path: str
    config_sha256: str  # of the config file's bytes the daemon runs on
    config_read_at: datetime
    reload_rejected: str | None  # why the last SIGHUP's config was refused, until one works
    pending: list[Pending] = field(default_factory=list)
    dropboxes: list[str] = field(default_factory=list)  # the drop boxes it runs now

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> RunRecord:
        """Build a record from a `runs` row."""
        data: dict[str, Any] = dict(row)
        for key in ("started_at", "heartbeat_at", "stopped_at", "config_read_at"):
            data[key] = parse_stamp(data[key])
        data["pending"] = [Pending(**item) for item in json.loads(data["pending"] or "[]")]
        data["dropboxes"] = list(json.loads(data["dropboxes"] or "[]"))
        return cls(**data)


@dataclass(frozen=True)
class BlockedFolder:
    """An inbox folder the daemon could not claim files from, and the OS's reason."""

    dropbox: str
    folder: str  # the route folder, relative to inbox/ ("" for inbox/ itself)
    reason: str
    since: datetime


class RunLog:
    """The daemon's own records in the journal; one per run, shared by its threads."""

    def __init__(self, journal: Journal, *, clock: Callable[[], datetime] = _now) -> None:
        self._journal = journal
        self._clock = clock
        self.run_id: int | None = None
        self._written: dict[str, HealthSnapshot] = {}
        self._next_heartbeat = 0.0
        self._next_health = 0.0

    # -- the daemon writes --------------------------------------------------------------------

    def started(self, config_path: str, config_sha256: str) -> int:
        """Record this process's run; return its id."""
        at = stamp(self._clock())
        with self._journal.writing() as conn:
            cursor = conn.execute(
                "INSERT INTO runs (pid, started_at, heartbeat_at, config_path, config_sha256,"
                " config_read_at) VALUES (?, ?, ?, ?, ?, ?)",
                (os.getpid(), at, at, config_path, config_sha256, at),
            )
            run_id = cursor.lastrowid
            assert run_id is not None
            # Health of an earlier run (an instance since removed) would mislead.
            conn.execute("DELETE FROM instance_health WHERE run_id != ?", (run_id,))
            conn.execute("DELETE FROM blocked_folders")
        self.run_id = run_id
        return run_id

    def _update_run(self, assignments: str, args: tuple[object, ...]) -> None:
        if self.run_id is None:
            return
        with self._journal.writing() as conn:
            conn.execute(
                f"UPDATE runs SET {assignments} WHERE id = ?",  # noqa: S608 - ours
                (*args, self.run_id),
            )

    def keep(self, now: float, health: Callable[[], list[HealthSnapshot]]) -> None:
        """From the main loop (`now` monotonic): the heartbeat, and health that changed."""
        if now >= self._next_heartbeat:
            self.heartbeat()
            self._next_heartbeat = now + HEARTBEAT_SECONDS
        if now >= self._next_health:
            self.write_health(health())
            self._next_health = now + HEALTH_WRITE_SECONDS

    def write_health(self, snapshots: list[HealthSnapshot], *, force: bool = False) -> None:
        """Record each instance's health that differs from what was recorded last."""
        for snapshot in snapshots:
            if force or self._written.get(snapshot.instance) != snapshot:
                self.record_health(snapshot)
                self._written[snapshot.instance] = snapshot

    def heartbeat(self) -> None:
        """Say the daemon is alive now."""
        self._update_run("heartbeat_at = ?", (stamp(self._clock()),))

    def config_applied(self, config_sha256: str) -> None:
        """A reload read this config (all of it applied, or some of it held back)."""
        self._update_run(
            "config_sha256 = ?, config_read_at = ?, reload_rejected = NULL",
            (config_sha256, stamp(self._clock())),
        )

    def running_dropboxes(self, names: list[str]) -> None:
        """The drop boxes the daemon watches now (after a start or a reload)."""
        self._update_run("dropboxes = ?", (json.dumps(sorted(names)),))

    def reload_refused(self, reason: str) -> None:
        """A SIGHUP's config did not load; the one in force stays."""
        self._update_run("reload_rejected = ?", (reason,))

    def set_pending(self, pending: list[Pending]) -> None:
        """The config changes held back until their drop box is idle (empty: none)."""
        self._update_run("pending = ?", (json.dumps([p.to_json() for p in pending]),))

    def stopped(self) -> None:
        """The daemon stops cleanly."""
        at = stamp(self._clock())
        self._update_run("stopped_at = ?, heartbeat_at = ?", (at, at))

    def record_health(self, snapshot: HealthSnapshot) -> None:
        """Keep an instance's latest health."""
        if self.run_id is None:
            return
        with self._journal.writing() as conn:
            conn.execute(
                "INSERT INTO instance_health (name, run_id, updated_at, health)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET run_id = excluded.run_id,"
                " updated_at = excluded.updated_at, health = excluded.health",
                (
                    snapshot.instance,
                    self.run_id,
                    stamp(self._clock()),
                    json.dumps(snapshot.to_json()),
                ),
            )

    def folder_blocked(self, dropbox: str, folder: str, reason: str) -> None:
        """Claims out of this inbox folder fail with `reason` (kept from the first failure)."""
        with self._journal.writing() as conn:
            conn.execute(
                "INSERT INTO blocked_folders (dropbox, folder, reason, since) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (dropbox, folder) DO UPDATE SET reason = excluded.reason",
                (dropbox, folder, reason, stamp(self._clock())),
            )

    def folder_cleared(self, dropbox: str, folder: str) -> None:
        """A claim out of this folder worked again."""
        with self._journal.writing() as conn:
            conn.execute(
                "DELETE FROM blocked_folders WHERE dropbox = ? AND folder = ?", (dropbox, folder)
            )

    # -- readers --------------------------------------------------------------------------

    def last_run(self) -> RunRecord | None:
        """The most recent run, or None when the daemon never ran on this journal."""
        if not self._journal.has_table("runs"):
            return None
        with self._journal.reading() as conn:
            row = conn.execute("SELECT * FROM runs ORDER BY id DESC LIMIT 1").fetchone()
        return None if row is None else RunRecord.from_row(row)

    def health(self) -> dict[str, tuple[HealthSnapshot, datetime]]:
        """Each instance's last recorded health and when it was recorded."""
        if not self._journal.has_table("instance_health"):
            return {}
        with self._journal.reading() as conn:
            rows = conn.execute("SELECT * FROM instance_health ORDER BY name").fetchall()
        out = {}
        for row in rows:
            updated = parse_stamp(row["updated_at"])
            assert updated is not None
            out[row["name"]] = (HealthSnapshot.from_json(json.loads(row["health"])), updated)
        return out

    def blocked_folders(self) -> list[BlockedFolder]:
        """Every folder the daemon currently cannot claim from."""
        if not self._journal.has_table("blocked_folders"):
            return []
        with self._journal.reading() as conn:
            rows = conn.execute("SELECT * FROM blocked_folders ORDER BY dropbox, folder")
            found = rows.fetchall()
        out = []
        for row in found:
            since = parse_stamp(row["since"])
            assert since is not None
            out.append(BlockedFolder(row["dropbox"], row["folder"], row["reason"], since))
        return out
