"""The failed originals of a drop box, found on disk: what `retry --since/--route` picks from.

The folder is the truth, not the journal (which forgets old files): every regular file under
failed/ that is no result file, no dotfile and not inside a `<file>.retried-<UTC>/` folder of
put-aside results. When it failed is read from its result.json (`timings.finished`), else taken
from that file's mtime.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from dropbox_importer.dropbox.layout import RESULT_SUFFIXES, DropboxLayout

RETRIED_MARK = ".retried-"


@dataclass(frozen=True)
class FailedFile:
    """A file in failed/<route>/ and when it failed (None if nothing says)."""

    path: Path
    route: str  # "" for failed/ itself
    failed_at: datetime | None


def _failed_at(path: Path) -> datetime | None:
    result = path.with_name(path.name + ".result.json")
    try:
        finished = json.loads(result.read_bytes())["timings"]["finished"]
        return datetime.fromisoformat(str(finished).replace("Z", "+00:00"))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        return datetime.fromtimestamp(result.stat().st_mtime, UTC)
    except OSError:
        return None


def failed_files(
    layout: DropboxLayout, *, route: str | None = None, since: datetime | None = None
) -> list[FailedFile]:
    """Failed originals, oldest failure first; `route` keeps one route folder, `since` later ones.

    OSError if failed/ cannot be listed.
    """
    found: list[FailedFile] = []
    if not layout.failed.is_dir():
        return found
    wanted = None if route is None else route.strip("/")
    for folder, dirs, files in os.walk(layout.failed, followlinks=False):
        dirs[:] = sorted(d for d in dirs if RETRIED_MARK not in d and not d.startswith("."))
        relative = Path(folder).relative_to(layout.failed).as_posix()
        here = "" if relative == "." else relative
        if wanted is not None and here != wanted:
            continue
        for name in sorted(files):
            path = Path(folder, name)
            if name.startswith(".") or name.endswith(RESULT_SUFFIXES) or path.is_symlink():
                continue
            failed_at = _failed_at(path)
            if since is not None and (failed_at is None or failed_at < since):
                continue
            found.append(FailedFile(path, here, failed_at))
    return sorted(found, key=lambda f: (f.failed_at or datetime.min.replace(tzinfo=UTC), f.path))
