"""Can the user running this work in a drop box: its root there, its folders writable.

The daemon renames files out of inbox/<route>/ into processing/, then into done/ or failed/,
and writes result files there; each of those folders needs write and search permission for the
daemon's user (docs/sftp.md). `check` runs these before partners drop a file, as the user it
runs as: run it as the daemon's user to check the daemon's view.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from dropbox_importer.dropbox.layout import DropboxLayout

_WORK = os.W_OK | os.X_OK


def current_user() -> str:
    """The name of the effective user (its uid if it has no name)."""
    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _writable(path: Path) -> bool:
    # effective_ids: the user the process acts as (sudo -u keeps the real id of the caller).
    effective = os.access in os.supports_effective_ids
    return os.access(path, _WORK, effective_ids=effective)


def folder_problems(layout: DropboxLayout, routes: list[Path] | None = None) -> list[str]:
    """What keeps the current user from working in the drop box; empty when nothing does.

    `routes` are folders under inbox/ to check as well (files dropped there are renamed out).
    """
    user = current_user()
    root = layout.root
    if not root.exists():
        return [f"root {root} does not exist: create it (docs/sftp.md) or fix its path"]
    if not root.is_dir():
        return [f"root {root} is not a folder"]
    problems = []
    for folder in (layout.inbox, layout.processing, layout.done, layout.failed):
        name = f"{folder.name}/"
        if folder.exists():
            if not folder.is_dir():
                problems.append(f"{name} is not a folder")
            elif not _writable(folder):
                problems.append(f"{name} is not writable by user {user}")
        elif not _writable(root):
            problems.append(f"{name} is missing and user {user} cannot create it in {root}")
    for route in routes or []:
        folder = layout.inbox / route
        if folder.is_dir() and not folder.is_symlink() and not _writable(folder):
            problems.append(
                f"inbox/{route.as_posix()}/ is not writable by user {user}: files dropped there "
                "would never be claimed"
            )
    return problems


def state_dir_problem(state_dir: Path) -> str | None:
    """Why the current user cannot keep the journal in `state_dir`, or None."""
    user = current_user()
    folder = state_dir
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the daemon creates what is missing below the first that exists
    if not folder.is_dir():
        return f"state_dir {state_dir}: {folder} is not a folder"
    if not _writable(folder):
        return f"state_dir {state_dir} is not writable by user {user}"
    return None
