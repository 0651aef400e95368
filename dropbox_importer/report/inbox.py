"""What lies in a drop box's inbox/ and why each entry waits, read from the folder alone.

Readiness is the daemon's (pipeline/ready.py, dropbox/layout.py): the same ignore patterns,
marker suffixes and claim refusals decide here, so `status` never says "waiting" about a file
the daemon will never take. Each entry gets a `why` sentence and a stable `why_code`:

    waiting:  settling, waiting_for_marker, ready, blocked_folder, daemon_stopped
    ignored:  ignored_name, set_aside (a link, fifo, hard link or unusable name), orphan_marker
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dropbox_importer.config import DropboxConfig
from dropbox_importer.dropbox.layout import DropboxLayout, refusal
from dropbox_importer.pipeline.ready import MARKER_SUFFIXES, ignored_because
from dropbox_importer.pipeline.watch import scan_inbox
from dropbox_importer.report.times import age, iso


def _entry(path: Path, inbox: Path, now: datetime) -> dict[str, Any] | None:
    try:
        st = path.lstat()
    except OSError:
        return None  # claimed while we looked, or in a folder we may not look into
    modified = datetime.fromtimestamp(st.st_mtime, UTC)
    route = path.parent.relative_to(inbox).as_posix()
    return {
        "route": "" if route == "." else route,
        "file": os.fsencode(path.name).decode("utf-8", "backslashreplace"),
        "size": st.st_size,
        "modified": iso(modified),
        "age_seconds": round((now - modified).total_seconds(), 1),
    }


def inbox_entries(
    layout: DropboxLayout,
    box: DropboxConfig,
    now: datetime,
    *,
    blocked: dict[str, str],
    daemon_running: bool | None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The files waiting to be claimed and the entries never to be, each with its reason.

    `blocked` maps a route folder the daemon cannot claim from to the OS's reason;
    `daemon_running` False says nothing is claimed until it starts. OSError if the inbox
    cannot be listed.
    """
    marker = MARKER_SUFFIXES.get(box.ready_marker)
    waiting: list[dict[str, Any]] = []
    ignored: list[dict[str, Any]] = []
    if not layout.inbox.is_dir():
        return waiting, ignored
    # Folders that cannot be read are skipped: the daemon reports them (blocked folders).
    for path in scan_inbox(layout.inbox, lambda _folder, _error: None):
        entry = _entry(path, layout.inbox, now)
        if entry is None:
            continue
        if marker and path.name.endswith(marker) and len(path.name) > len(marker):
            original = path.name[: -len(marker)]
            if os.path.lexists(path.with_name(original)):
                continue  # the marker of a file listed on its own
            ignored.append(
                {
                    **entry,
                    "why_code": "orphan_marker",
                    "why": f"a marker without its file: no '{original}' beside it",
                }
            )
            continue
        # The daemon's own rule: the built-in temporary and system names, then `ignore`.
        because = ignored_because(path.name, box.ignore)
        if because is not None:
            ignored.append(
                {
                    **entry,
                    "why_code": "ignored_name",
                    "why": f"ignored name ({because}): never imported; an upload under a "
                    "temporary name is taken once renamed",
                }
            )
            continue
        refused = refusal(layout, path)
        if refused is not None:
            ignored.append({**entry, "why_code": "set_aside", "why": f"set aside: {refused}"})
            continue
        waiting.append({**entry, **_why_waiting(path, entry, box, marker, blocked, daemon_running)})
    key = ("modified", "route", "file")
    return (
        sorted(waiting, key=lambda e: tuple(e[k] for k in key)),
        sorted(ignored, key=lambda e: tuple(e[k] for k in key)),
    )


def _why_waiting(
    path: Path,
    entry: dict[str, Any],
    box: DropboxConfig,
    marker: str | None,
    blocked: dict[str, str],
    daemon_running: bool | None,
) -> dict[str, str]:
    if entry["route"] in blocked:
        return {
            "why_code": "blocked_folder",
            "why": f"blocked folder: the daemon cannot move files out of it: "
            f"{blocked[entry['route']]}",
        }
    if daemon_running is False:
        return {"why_code": "daemon_stopped", "why": "the daemon is not running"}
    if marker and not os.path.lexists(path.with_name(path.name + marker)):
        return {
            "why_code": "waiting_for_marker",
            "why": f"waiting for its marker '{path.name}{marker}' (ready_marker: "
            f"{box.ready_marker})",
        }
    still = entry["age_seconds"]
    if still < box.settle_seconds:
        return {
            "why_code": "settling",
            "why": f"settling: unchanged for {age(still)} of {box.settle_seconds:g}s",
        }
    return {"why_code": "ready", "why": "ready: the daemon takes it at its next look"}
