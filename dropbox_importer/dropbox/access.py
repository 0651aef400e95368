"""Whether the user running a command can use a drop box's folders, as the daemon must.

`check` runs this as whoever calls it: as the daemon's user (`sudo -u dropbox-importer`) it
sees what the daemon will meet; as root it sees almost nothing wrong, and says so.
"""

from __future__ import annotations

import os
from pathlib import Path

from dropbox_importer.dropbox.layout import DropboxLayout
from dropbox_importer.pipeline.watch import scan_inbox

_USE = os.R_OK | os.W_OK | os.X_OK


def _can(path: Path, mode: int) -> bool:
    return os.access(path, mode, effective_ids=os.access in os.supports_effective_ids)


def _nearest_existing(path: Path) -> Path:
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


def folder_problems(layout: DropboxLayout) -> list[str]:
    """What keeps this user from using the drop box: its root, its four folders, inbox folders."""
    root = layout.root
    if not os.path.lexists(root):
        parent = _nearest_existing(root.parent)
        if not parent.is_dir() or not _can(parent, os.W_OK | os.X_OK):
            return [
                f"the root {root} does not exist and cannot be created here: {parent} is not "
                "writable; create the root and give it to the daemon's user"
            ]
        return []
    if not root.is_dir():
        return [f"the root {root} is no folder"]
    problems = []
    for folder in (root, layout.inbox, layout.processing, layout.done, layout.failed):
        if folder.exists() and not (folder.is_dir() and _can(folder, _USE)):
            problems.append(
                f"cannot read, write or search {folder}; give it to the daemon's user or group"
            )
    if not problems and layout.inbox.is_dir():
        for folder, exc in _unreadable(layout.inbox):
            problems.append(f"cannot read {folder}: {exc.strerror or exc}")
    return problems


def _unreadable(inbox: Path) -> list[tuple[Path, OSError]]:
    found: list[tuple[Path, OSError]] = []
    for _ in scan_inbox(inbox, lambda folder, exc: found.append((folder, exc))):
        pass
    return found
