"""Show, per drop box, what waits in inbox/, what is in flight and what recently finished.

Read-only and safe beside a running daemon: the journal is opened with SQLite's `mode=ro` (WAL
lets it read while the daemon writes), or a shared PostgreSQL journal in a read-only session
from any host, and the state directory's lock is never taken. It says which host leads, since
when, and the standby hosts seen (observe/leadership.py). Exit
codes: 0 when everything could be read, 1 when a journal or an inbox could not be read, 2 for a
config error. `--json` prints one document whose keys are stable (added to, never renamed):

    schema, generated_at, journal {path, found, leadership {engine, epoch, leader, leader_pid,
    since, leader_seen_at, leader_seen, hosts [{name, role, pid, since, seen_at,
    seen_seconds_ago, seen}]}}, dropboxes [{name, root, instance,
    waiting [{route, file, size, modified, age_seconds}],
    in_flight [{id, route, file, state, batch_ids, parts, parts_final, claimed_at, age_seconds}],
    recent [{id, route, file, outcome, reason, finished_at, destination}], problems [text]}]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dropbox_importer.config import Config, ConfigError, DropboxConfig, load_config
from dropbox_importer.dropbox.layout import DropboxLayout
from dropbox_importer.observe.leadership import leadership_document, leadership_lines
from dropbox_importer.pipeline.engine import journal_location, open_shared_read_only
from dropbox_importer.pipeline.journal import JOURNAL_NAME, SCHEMA_VERSION, Journal, JournalError
from dropbox_importer.pipeline.ready import is_ignored
from dropbox_importer.pipeline.records import FileRecord
from dropbox_importer.pipeline.watch import scan_inbox

EXIT_OK, EXIT_PROBLEMS, EXIT_CONFIG = 0, 1, 2
SCHEMA = 1
DEFAULT_RECENT = 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register `status`'s options."""
    parser.add_argument("--config", type=Path, required=True, help="the YAML config file")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument(
        "--recent",
        type=int,
        default=DEFAULT_RECENT,
        metavar="N",
        help=f"how many finished files to show per drop box (default {DEFAULT_RECENT})",
    )


@dataclass
class BoxStatus:
    """What `status` knows about one drop box."""

    name: str
    root: Path
    instance: str
    waiting: list[dict[str, Any]] = field(default_factory=list)
    in_flight: list[dict[str, Any]] = field(default_factory=list)
    recent: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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


def waiting_files(layout: DropboxLayout, box: DropboxConfig, now: datetime) -> list[dict[str, Any]]:
    """Files in inbox/ not yet claimed, oldest first (upload leftovers and dotfiles skipped)."""
    out = []
    for path in scan_inbox(layout.inbox):
        if is_ignored(path.name, box.ignore):
            continue
        try:
            st = path.lstat()
        except FileNotFoundError:
            continue  # claimed while we looked
        modified = datetime.fromtimestamp(st.st_mtime, UTC)
        route = path.parent.relative_to(layout.inbox).as_posix()
        out.append(
            {
                "route": "" if route == "." else route,
                "file": path.name,
                "size": st.st_size,
                "modified": _iso(modified),
                "age_seconds": round((now - modified).total_seconds(), 1),
            }
        )
    return sorted(out, key=lambda item: (item["modified"], item["route"], item["file"]))


def in_flight(journal: Journal, box: str, now: datetime) -> list[dict[str, Any]]:
    """Files claimed and not yet settled, oldest first, with their batch ids."""
    out = []
    for record in journal.unfinished(box):
        parts = journal.parts(record.id)
        out.append(
            {
                "id": record.id,
                "route": record.route,
                "file": record.name,
                "state": record.state.value,
                "batch_ids": [p.batch_id for p in parts if p.batch_id is not None],
                "parts": len(parts),
                "parts_final": sum(1 for p in parts if p.final),
                "claimed_at": _iso(record.claimed_at),
                "age_seconds": round((now - record.claimed_at).total_seconds(), 1),
            }
        )
    return out


def recently_finished(journal: Journal, box: str, limit: int) -> list[dict[str, Any]]:
    """The last `limit` files that reached done/ or failed/, newest first."""
    # recent() mixes in unfinished files; asking for that many more still yields `limit` done.
    unfinished = len(journal.unfinished(box))
    records: list[FileRecord] = [
        r for r in journal.recent(limit + unfinished, box) if r.state.terminal
    ][:limit]
    return [
        {
            "id": r.id,
            "route": r.route,
            "file": r.name,
            "outcome": r.state.value,
            "reason": r.reason,
            "finished_at": _iso(r.finished_at),
            "destination": None if r.destination_path is None else str(r.destination_path),
        }
        for r in records
    ]


def collect(config: Config, recent: int, now: datetime) -> tuple[dict[str, Any], list[BoxStatus]]:
    """Everything status reports: the journal's summary and one BoxStatus per drop box."""
    boxes = [BoxStatus(b.name, b.root, b.instance) for b in config.dropboxes.values()]
    journal_info: dict[str, Any] = {"path": journal_location(config), "found": False}
    for status in boxes:
        layout = DropboxLayout(status.root)
        try:
            status.waiting = waiting_files(layout, config.dropboxes[status.name], now)
        except OSError as exc:
            status.problems.append(f"cannot read {layout.inbox}: {exc.strerror or exc}")
        if not layout.inbox.is_dir():
            status.problems.append(f"{layout.inbox} does not exist (the daemon creates it)")
    shared = config.state.shared
    opened = open_shared_read_only(config) if shared else open_read_only(config.state_dir)
    try:
        with opened as journal:
            journal_info["found"] = journal is not None
            if journal is not None and shared:  # one host on SQLite: no leadership to tell
                lease = config.state.lease_seconds
                journal_info["leadership"] = leadership_document(journal, lease, now)
            for status in boxes:
                if journal is not None:
                    status.in_flight = in_flight(journal, status.name, now)
                    status.recent = recently_finished(journal, status.name, recent)
    except (JournalError, sqlite3.Error) as exc:
        journal_info["error"] = str(exc)
        for status in boxes:
            status.problems.append(str(exc))
    return journal_info, boxes


def to_document(journal: dict[str, Any], boxes: list[BoxStatus], now: datetime) -> dict[str, Any]:
    """The `--json` document."""
    return {
        "schema": SCHEMA,
        "generated_at": _iso(now),
        "journal": journal,
        "dropboxes": [
            {
                "name": b.name,
                "root": str(b.root),
                "instance": b.instance,
                "waiting": b.waiting,
                "in_flight": b.in_flight,
                "recent": b.recent,
                "problems": b.problems,
            }
            for b in boxes
        ],
    }


def _age(seconds: float) -> str:
    """A duration the way people read it at a glance: 45s, 12m, 3h05m, 2d04h."""
    whole = max(int(seconds), 0)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def _size(n: int) -> str:
    if n < 1000:
        return f"{n} B"
    return f"{n / 1000:.1f} kB" if n < 1_000_000 else f"{n / 1_000_000:.1f} MB"


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = [headers, *rows]
    return [
        "    " + "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    ]


def render(journal: dict[str, Any], boxes: list[BoxStatus]) -> str:
    """The human report: one block per drop box, one small table per section."""
    out: list[str] = []
    if not journal["found"]:
        out.append(f"no journal at {journal['path']} yet: the daemon has not claimed any file")
    elif "leadership" in journal:
        out += [*leadership_lines(journal["leadership"]), ""]
    for b in boxes:
        out.append(f"{b.name}  ({b.root}, instance {b.instance})")
        for problem in b.problems:
            out.append(f"  PROBLEM: {problem}")
        out.append(f"  waiting in inbox: {len(b.waiting)}")
        if b.waiting:
            rows = [
                [w["route"] or "-", w["file"], _size(w["size"]), _age(w["age_seconds"])]
                for w in b.waiting
            ]
            out += _table(["ROUTE", "FILE", "SIZE", "AGE"], rows)
        out.append(f"  in flight: {len(b.in_flight)}")
        if b.in_flight:
            rows = [
                [
                    f["route"] or "-",
                    f["file"],
                    f["state"],
                    ",".join(str(i) for i in f["batch_ids"]) or "-",
                    f"{f['parts_final']}/{f['parts']}",
                    _age(f["age_seconds"]),
                ]
                for f in b.in_flight
            ]
            out += _table(["ROUTE", "FILE", "STATE", "BATCHES", "PARTS DONE", "CLAIMED"], rows)
        out.append(f"  recently finished: {len(b.recent)}")
        if b.recent:
            rows = [
                [
                    r["finished_at"] or "-",
                    r["outcome"].upper(),
                    r["route"] or "-",
                    r["file"],
                    r["reason"] or "",
                ]
                for r in b.recent
            ]
            out += _table(["FINISHED (UTC)", "OUTCOME", "ROUTE", "FILE", "REASON"], rows)
        out.append("")
    return "\n".join(out)


def main(args: argparse.Namespace) -> int:
    """Print the status of every drop box; 1 if something could not be read."""
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"dropbox-importer: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.recent < 0:
        print("dropbox-importer: --recent must be 0 or more", file=sys.stderr)
        return EXIT_CONFIG
    now = datetime.now(UTC)
    journal, boxes = collect(config, args.recent, now)
    if args.json:
        print(json.dumps(to_document(journal, boxes, now), indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(render(journal, boxes))
    return EXIT_PROBLEMS if any(b.problems for b in boxes) else EXIT_OK
