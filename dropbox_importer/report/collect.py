"""Everything `status` and the status page show, gathered into one JSON-ready document.

Read-only and safe beside a running daemon: the journal is opened with SQLite's `mode=ro` (WAL
lets it read while the daemon writes), the state directory's lock is never taken (the kernel's
lock table says who holds it), and no secret is read. The document's keys are only ever added
to (`status --json` is its contract):

    schema, generated_at, journal {path, found, error?, leadership? (a shared journal:
      observe/leadership.py)}, config {path, sha256},
    daemon {running, pid, host? (a shared journal: the leader's), since, heartbeat_at,
      stopped_at, ended, config {path, read_at, matches_file, reload_rejected,
      pending [{dropbox, reason, since}]}, dropboxes},
    instances [{name, state, since, last_call_at, last_ok_at, last_error_at, last_error,
      failures, paused_until, operator_reason, waiting_for, waiting_since, queued_jobs,
      max_queued_jobs, recorded_at}],
    filters {dropbox, route, file, since, outcome},
    dropboxes [{name, root, instance, live, waiting [...], ignored [...], in_flight [...],
      recent [...], more_recent, shared_jobs [...], blocked_folders [{folder, reason, since}],
      problems [text], reported [{route, folder, stage, reason, since}]}],
    history [{id, dropbox, route, file, state, reason, ..., events [{at, what, detail}]}]

`reported` is what the running daemon last said it cannot use (its `<state_dir>/problems.json`,
see pipeline/problems.py): inbox folders (also in `blocked_folders`), a `done/` or `failed/`
folder a file cannot be settled into, a root it cannot create; the last two are in `problems`
too. Waiting and ignored entries are described in `inbox.py`, in-flight ones in `flight.py`, history
in `history.py`. `shared_jobs` lists the drop box's most recent jobs several files shared
(coalesce.py), newest first: {batch_id, files, rows, status, leads_processed, rows_failed,
rows_with_warning, recorded_at, created_at, finished_at, first_file}.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dropbox_importer.config import Config
from dropbox_importer.dropbox.layout import DropboxLayout
from dropbox_importer.marketo.health import HealthSnapshot
from dropbox_importer.observe.leadership import leadership_document
from dropbox_importer.pipeline.coalesce import coalesces
from dropbox_importer.pipeline.engine import journal_location, open_shared_read_only
from dropbox_importer.pipeline.journal import JOURNAL_NAME, SCHEMA_VERSION, Journal, JournalError
from dropbox_importer.pipeline.lock import holder
from dropbox_importer.pipeline.problems import read_published
from dropbox_importer.pipeline.records import FileRecord, JobRecord
from dropbox_importer.pipeline.runlog import HEARTBEAT_SECONDS, RunLog, RunRecord
from dropbox_importer.pipeline.states import FileState
from dropbox_importer.report.flight import flight_item, relative
from dropbox_importer.report.history import file_history
from dropbox_importer.report.inbox import inbox_entries
from dropbox_importer.report.times import iso

SCHEMA = 1
OUTCOMES = ("done", "failed", "in_flight", "waiting")
# Histories shown at most for one `--file` search: the newest first.
MAX_HISTORIES = 20


@dataclass(frozen=True)
class Filters:
    """What to show: every field None shows everything (the last `recent` outcomes per box)."""

    dropbox: str | None = None
    route: str | None = None
    file: str | None = None  # a glob on the file name; asks for each match's history
    since: datetime | None = None
    outcome: str | None = None  # one of OUTCOMES

    def to_json(self) -> dict[str, Any]:
        """The filters as the document echoes them."""
        return {
            "dropbox": self.dropbox,
            "route": self.route,
            "file": self.file,
            "since": iso(self.since),
            "outcome": self.outcome,
        }

    def shows(self, section: str) -> bool:
        """True if `--outcome` leaves this section (waiting, in_flight, recent) in."""
        if self.outcome is None:
            return True
        if section == "recent":
            return self.outcome in ("done", "failed")
        return self.outcome == section

    def keeps(self, route: str, name: str, moment: str | None) -> bool:
        """True if an entry of this route, name and time passes --route, --file and --since."""
        if self.route is not None and route != self.route.strip("/"):
            return False
        if self.file is not None and not fnmatch.fnmatchcase(name, self.file):
            return False
        return self.since is None or (moment is not None and moment >= (iso(self.since) or ""))


@contextmanager
def open_read_only(state_dir: Path) -> Iterator[Journal | None]:
    """The journal opened read-only (None when the daemon never ran); JournalError if unusable."""
    path = state_dir / JOURNAL_NAME
    if not path.exists():
        yield None
        return
    try:
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
        conn.row_factory = sqlite3.Row
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.Error as exc:
        raise JournalError(
            f"cannot read the journal {path}: {exc}; run status as the daemon's user"
        ) from exc
    if version > SCHEMA_VERSION:
        conn.close()
        raise JournalError(
            f"the journal {path} has schema version {version}, newer than this version "
            f"understands ({SCHEMA_VERSION}); run the newer dropbox-importer"
        )
    journal = Journal(conn, path, lambda: datetime.now(UTC))
    try:
        yield journal
    finally:
        conn.close()


def open_config_journal(config: Config) -> AbstractContextManager[Journal | None]:
    """The config's journal read-only: the state dir's SQLite file, or the shared database."""
    if config.state.shared:
        return open_shared_read_only(config)
    return open_read_only(config.state_dir)


def file_sha256(path: Path) -> str | None:
    """The SHA-256 of a file's bytes, or None if it cannot be read."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    return True


def daemon_view(
    config: Config, run: RunRecord | None, config_sha256: str | None, now: datetime
) -> dict[str, Any]:
    """Whether the daemon runs, since when, and whether it runs on the config file as it is."""
    lock = holder(config.state_dir)
    running = lock.held
    if config.state.shared:
        # The leader may run on another host: its run's heartbeat tells, not this host's lock
        # (runs are recorded by leaders only; pipeline/leadership.py).
        lock = replace(lock, pid=None)
        fresh = run is not None and now - run.heartbeat_at < timedelta(
            seconds=HEARTBEAT_SECONDS * 3
        )
        running = run is not None and run.stopped_at is None and fresh
    elif running is None and run is not None:
        # No kernel lock table to read: a fresh heartbeat of a live pid says it runs.
        fresh = now - run.heartbeat_at < timedelta(seconds=HEARTBEAT_SECONDS * 3)
        running = run.stopped_at is None and fresh and _pid_alive(run.pid)
    view: dict[str, Any] = {
        "running": running,
        "pid": lock.pid if lock.pid is not None else (run.pid if run and running else None),
        "since": None,
        "heartbeat_at": None,
        "stopped_at": None,
        "ended": None,
        "config": None,
        "dropboxes": None,
    }
    if run is None:
        return view
    view["heartbeat_at"] = iso(run.heartbeat_at)
    if running:
        view["since"] = iso(run.started_at)
    else:
        view["stopped_at"] = iso(run.stopped_at or run.heartbeat_at)
        view["ended"] = "stopped" if run.stopped_at is not None else "died (killed or crashed)"
    view["dropboxes"] = run.dropboxes
    view["config"] = {
        "path": run.config_path,
        "read_at": iso(run.config_read_at),
        "matches_file": None if config_sha256 is None else config_sha256 == run.config_sha256,
        "same_path": run.config_path == str(config.path),
        "reload_rejected": run.reload_rejected,
        "pending": [p.to_json() for p in run.pending],
    }
    return view


def instance_views(
    config: Config, health: dict[str, tuple[HealthSnapshot, datetime]]
) -> list[dict[str, Any]]:
    """Each configured instance's last recorded health (state `unknown` before any call)."""
    out = []
    for name in sorted(config.instances):
        if name in health:
            snapshot, recorded = health[name]
            view = {"name": name, **snapshot.to_json(), "recorded_at": iso(recorded)}
            view.pop("instance", None)
            for key, value in vars(snapshot).items():
                if isinstance(value, datetime):
                    view[key] = iso(value)  # the document's one time format
            out.append(view)
        else:
            out.append({"name": name, "state": "unknown", "recorded_at": None})
    return out


def _recent(
    journal: Journal, box: str, root: Path, filters: Filters, limit: int
) -> tuple[list[dict[str, Any]], bool]:
    states = frozenset({FileState.DONE, FileState.FAILED})
    if filters.outcome in ("done", "failed"):
        states = frozenset({FileState(filters.outcome)})
    records = journal.search(
        dropbox=box,
        route=None if filters.route is None else filters.route.strip("/"),
        name=filters.file,
        since=filters.since,
        states=states,
        limit=limit + 1,
    )
    rows = [
        {
            "id": r.id,
            "route": r.route,
            "file": r.name,
            "outcome": r.state.value,
            "reason": r.reason,
            "finished_at": iso(r.finished_at),
            "claimed_at": iso(r.claimed_at),
            "size": r.size,
            "destination": None if r.destination_path is None else str(r.destination_path),
            "destination_in_box": relative(r.destination_path, root),
        }
        for r in records[:limit]
    ]
    return rows, len(records) > limit


def _in_flight(
    journal: Journal,
    config: Config,
    box: str,
    health: dict[str, tuple[HealthSnapshot, datetime]],
    running: bool | None,
    now: datetime,
) -> list[dict[str, Any]]:
    instance = config.dropboxes[box].instance
    root = config.dropboxes[box].root
    same_instance = {n for n, b in config.dropboxes.items() if b.instance == instance}
    waiting_turn = [
        r
        for r in journal.unfinished()
        if r.dropbox in same_instance and r.state in (FileState.CLAIMED, FileState.SUBMITTING)
    ]
    out = []
    jobs: dict[int, JobRecord] = {}
    for record in journal.unfinished(box):
        ahead = sum(1 for r in waiting_turn if r.id < record.id)
        snapshot = health.get(instance, (None, now))[0]
        parts = journal.parts(record.id)
        for part in parts:
            if part.batch_id is not None and part.batch_id not in jobs:
                job = journal.job_of_batch(part.batch_id, record.id)
                if job is not None:
                    jobs[part.batch_id] = job
        out.append(
            flight_item(
                record,
                parts,
                instance=instance,
                health=snapshot,
                daemon_running=running,
                ahead=ahead,
                root=root,
                now=now,
                jobs=jobs,
                may_share=coalesces(record.route, config.dropboxes[box]),
            )
        )
    return out


def shared_jobs(journal: Journal, box: str, limit: int) -> list[dict[str, Any]]:
    """The drop box's most recent jobs several files shared, newest first."""
    out = []
    for job in journal.jobs(limit, box):
        if job.batch_id is None:
            continue  # never created: its files were sent again
        first = job.members[0].file_id
        out.append(
            {
                "batch_id": job.batch_id,
                "files": len({m.file_id for m in job.members}),
                "rows": job.rows,
                "status": None if job.status is None else job.status.value,
                "leads_processed": job.leads_processed,
                "rows_failed": job.rows_failed,
                "rows_with_warning": job.rows_with_warning,
                "recorded_at": iso(job.recorded_at),
                "created_at": iso(job.created_at),
                "finished_at": iso(job.finished_at),
                "first_file": journal.get(first).relative,
            }
        )
    return out


def _histories(journal: Journal, config: Config, filters: Filters) -> list[dict[str, Any]]:
    records: list[FileRecord] = journal.search(
        dropbox=filters.dropbox,
        route=None if filters.route is None else filters.route.strip("/"),
        name=filters.file,
        since=filters.since,
        limit=MAX_HISTORIES,
    )
    out = []
    for record in records:
        box = config.dropboxes.get(record.dropbox)
        root = box.root if box is not None else Path("/")
        out.append(
            file_history(record, journal.parts(record.id), journal.transitions(record.id), root)
        )
    return out


def collect(
    config: Config, filters: Filters, recent: int, now: datetime, *, histories: bool = True
) -> dict[str, Any]:
    """The whole document; problems reading a folder or the journal are reported in it.

    With a file filter the matching files' histories are added, unless `histories` is False.
    """
    config_sha = file_sha256(config.path)
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "generated_at": iso(now),
        "journal": {"path": journal_location(config), "found": False},
        "config": {"path": str(config.path), "sha256": config_sha},
        "daemon": daemon_view(config, None, config_sha, now),
        "instances": instance_views(config, {}),
        "filters": filters.to_json(),
        "dropboxes": [],
        "history": [],
    }
    names = [n for n in config.dropboxes if filters.dropbox in (None, n)]
    boxes: dict[str, dict[str, Any]] = {
        name: {
            "name": name,
            "root": str(config.dropboxes[name].root),
            "instance": config.dropboxes[name].instance,
            "live": None,
            "waiting": [],
            "ignored": [],
            "in_flight": [],
            "recent": [],
            "more_recent": False,
            "shared_jobs": [],
            "blocked_folders": [],
            "problems": [],
            "reported": [],
        }
        for name in names
    }
    _reported(boxes, config.state_dir)
    doc["dropboxes"] = list(boxes.values())
    try:
        with open_config_journal(config) as journal:
            _from_journal(doc, boxes, journal, config, filters, recent, now)
            if journal is not None and filters.file is not None and histories:
                doc["history"] = _histories(journal, config, filters)
    except (JournalError, sqlite3.Error) as exc:
        doc["journal"]["error"] = str(exc)
        for status in boxes.values():
            status["problems"].append(str(exc))
    running = doc["daemon"]["running"]
    live = doc["daemon"]["dropboxes"]
    for name, status in boxes.items():
        if live is not None and running:
            status["live"] = name in live
        _from_folders(status, config, name, filters, running, now)
    return doc


def _reported(boxes: dict[str, dict[str, Any]], state_dir: Path) -> None:
    """What the daemon last published it cannot use; roots and settle folders as problems."""
    published = read_published(state_dir) or {}
    problems = published.get("problems")
    for problem in problems if isinstance(problems, list) else []:
        status = boxes.get(str(problem.get("dropbox"))) if isinstance(problem, dict) else None
        if status is None:
            continue
        keys = ("route", "folder", "stage", "reason", "since")
        status["reported"].append({key: problem.get(key) for key in keys})
        if problem.get("stage") in ("dropbox", "settle"):
            status["problems"].append(f"the daemon reports: {problem.get('reason')}")


def _from_journal(
    doc: dict[str, Any],
    boxes: dict[str, dict[str, Any]],
    journal: Journal | None,
    config: Config,
    filters: Filters,
    recent: int,
    now: datetime,
) -> None:
    if journal is None:
        return
    doc["journal"]["found"] = True
    if config.state.shared:  # one host on SQLite: no leadership to tell
        lease = config.state.lease_seconds
        doc["journal"]["leadership"] = leadership_document(journal, lease, now)
    runlog = RunLog(journal)
    health = runlog.health()
    doc["daemon"] = daemon_view(config, runlog.last_run(), doc["config"]["sha256"], now)
    if config.state.shared:
        # Runs are the leaders'; the leader read the config file of its own host.
        leader = doc["journal"]["leadership"]["leader"] if doc["journal"]["leadership"] else None
        doc["daemon"]["host"] = leader
        if leader != config.state.host_name and doc["daemon"]["config"] is not None:
            doc["daemon"]["config"].update(same_path=True, matches_file=None)
    doc["instances"] = instance_views(config, health)
    blocked = runlog.blocked_folders()
    running = doc["daemon"]["running"]
    for name, status in boxes.items():
        status["blocked_folders"] = [
            {"folder": b.folder, "reason": b.reason, "since": iso(b.since)}
            for b in blocked
            if b.dropbox == name
        ]
        root = config.dropboxes[name].root
        if filters.shows("in_flight"):
            flying = _in_flight(journal, config, name, health, running, now)
            status["in_flight"] = [
                f for f in flying if filters.keeps(f["route"], f["file"], f["claimed_at"])
            ]
        if filters.shows("recent"):
            status["recent"], status["more_recent"] = _recent(journal, name, root, filters, recent)
        if filters.shows("in_flight"):
            status["shared_jobs"] = shared_jobs(journal, name, recent)


def _from_folders(
    status: dict[str, Any],
    config: Config,
    name: str,
    filters: Filters,
    running: bool | None,
    now: datetime,
) -> None:
    box = config.dropboxes[name]
    layout = DropboxLayout(box.root)
    if not layout.inbox.is_dir():
        status["problems"].append(f"{layout.inbox} does not exist (the daemon creates it)")
        return
    if not filters.shows("waiting"):
        return
    blocked = {b["folder"]: b["reason"] for b in status["blocked_folders"]}
    try:
        waiting, ignored = inbox_entries(layout, box, now, blocked=blocked, daemon_running=running)
    except OSError as exc:
        status["problems"].append(f"cannot read {layout.inbox}: {exc.strerror or exc}")
        return
    status["waiting"] = [w for w in waiting if filters.keeps(w["route"], w["file"], w["modified"])]
    status["ignored"] = [i for i in ignored if filters.keeps(i["route"], i["file"], i["modified"])]
