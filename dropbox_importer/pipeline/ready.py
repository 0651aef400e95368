"""Deciding when a dropped file is finished: still for the settle time, or its marker present.

An SFTP or SMB upload gives no reliable "done" signal: clients write in place, write under a
temporary name and rename, or pause mid-way. So a file is ready only once its size and mtime
have not moved for `settle_seconds` (or, where partners agreed to it, once `<file>.done` or
`<file>.ok` exists). Temporary and system names (uploads in progress, lock files, desktop
files) are never tracked: they are logged once and left where they are. Bookkeeping over stat
results; the caller supplies the clock.
"""

from __future__ import annotations

import fnmatch
import os
import stat
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

# Names that are never a partner's finished lead file, always ignored (the drop box's `ignore`
# setting adds to them). Each comes with what it is, for the one log line an ignored file gets.
# Matched without regard to case: Windows and macOS clients write these names in any case.
BUILTIN_IGNORE: tuple[tuple[str, str], ...] = (
    (
        ".*",
        "a hidden file (dotfile): system files and upload temporaries such as .DS_Store, "
        "._leads.csv, .~lock.leads.csv#",
    ),
    ("*.part", "an upload in progress (*.part)"),
    ("*.filepart", "an upload in progress (WinSCP's *.filepart)"),
    ("*.partial", "an upload in progress (rclone's *.partial)"),
    ("*.crdownload", "a download in progress (Chrome's *.crdownload)"),
    ("*.download", "a download in progress (Safari's *.download)"),
    ("*.tmp", "a temporary file (*.tmp)"),
    ("*.temp", "a temporary file (*.temp)"),
    ("~*", "an Office lock or temporary file (~$leads.xlsx, ~*)"),
    ("*~", "an editor's backup copy (*~)"),
    ("#*#", "an editor's autosave file (#*#)"),
    ("*.swp", "a vim swap file (*.swp)"),
    ("*.swo", "a vim swap file (*.swo)"),
    ("*.swx", "a vim swap file (*.swx)"),
    ("desktop.ini", "a Windows folder settings file (desktop.ini)"),
    ("thumbs.db", "a Windows thumbnail cache (Thumbs.db)"),
    ("ehthumbs.db", "a Windows thumbnail cache (ehthumbs.db)"),
    ("icon\r", "a macOS folder icon file (Icon)"),
)
DEFAULT_IGNORE = tuple(pattern for pattern, _ in BUILTIN_IGNORE)
# How many ignored paths are remembered so that each is logged once.
IGNORED_REMEMBERED = 10_000
MARKER_SUFFIXES = {"done": ".done", "ok": ".ok"}


def ignored_because(name: str, patterns: Sequence[str] = ()) -> str | None:
    """Why `name` is never imported (a built-in or configured pattern), or None if it may be."""
    folded = name.lower()
    for pattern, what in BUILTIN_IGNORE:
        if fnmatch.fnmatchcase(folded, pattern):
            return what
    for pattern in patterns:
        if fnmatch.fnmatchcase(name, pattern):
            return f"its name matches the drop box's ignore pattern {pattern!r}"
    return None


def is_ignored(name: str, patterns: Sequence[str] = ()) -> bool:
    """True for the built-in temporary and system names and names matching `patterns`."""
    return ignored_because(name, patterns) is not None


@dataclass
class _Seen:
    size: int
    mtime_ns: int
    inode: int
    still_since: float


@dataclass(frozen=True)
class Candidate:
    """A path that is ready to be claimed, or that is no regular file and must be set aside."""

    path: Path
    regular: bool
    marker: Path | None = None


class ReadinessTracker:
    """Tracks candidate paths of one inbox until they have settled."""

    def __init__(
        self,
        settle_seconds: float,
        *,
        ignore: Sequence[str] = (),
        marker: str | None = None,
        lstat: Callable[[Path], os.stat_result] = os.lstat,
        dropbox: str = "",
    ) -> None:
        self.settle_seconds = settle_seconds
        self.ignore = tuple(ignore)
        self._log = log.bind(dropbox=dropbox) if dropbox else log
        # Paths already logged as ignored, oldest first; bounded, as temporary names are unique.
        self._ignored: dict[Path, None] = {}
        self.marker_suffix = MARKER_SUFFIXES[marker] if marker else None
        self._lstat = lstat
        self._lock = threading.Lock()
        self._pending: set[Path] = set()
        self._seen: dict[Path, _Seen] = {}

    def note(self, path: Path) -> None:
        """Record that `path` may have changed (thread-safe; called by watcher threads)."""
        if self.marker_suffix and path.name.endswith(self.marker_suffix):
            path = path.with_name(path.name[: -len(self.marker_suffix)])
        reason = ignored_because(path.name, self.ignore)
        if reason is not None:
            self._ignored_once(path, reason)
            return
        with self._lock:
            self._pending.add(path)

    def _ignored_once(self, path: Path, reason: str) -> None:
        """Log an ignored name the first time it is seen; it is left where it is."""
        with self._lock:
            if path in self._ignored:
                return
            self._ignored[path] = None
            if len(self._ignored) > IGNORED_REMEMBERED:
                del self._ignored[next(iter(self._ignored))]
        self._log.info("file_ignored", file=str(path), reason=reason)

    def note_all(self, paths: Iterable[Path]) -> None:
        """Record many paths at once (a rescan)."""
        for path in paths:
            self.note(path)

    @property
    def waiting(self) -> int:
        """How many paths are being watched until they settle."""
        with self._lock:
            return len(self._seen) + len(self._pending - self._seen.keys())

    def forget(self, path: Path) -> None:
        """Stop tracking `path` (claimed, or handled otherwise)."""
        with self._lock:
            self._seen.pop(path, None)
            self._pending.discard(path)

    def due(self, now: float) -> list[Candidate]:
        """Re-stat every tracked path; return those that have settled, in order of arrival."""
        with self._lock:
            for path in self._pending:
                self._seen.setdefault(path, _Seen(-1, -1, -1, now))
            self._pending.clear()
            tracked = list(self._seen.items())
        ready: list[tuple[int, Candidate]] = []
        for path, seen in tracked:
            candidate = self._check(path, seen, now)
            if candidate is not None:
                # The last write ends an upload: mtime orders files by arrival (FIFO).
                ready.append((seen.mtime_ns, candidate))
        ready.sort(key=lambda item: item[0])
        return [candidate for _, candidate in ready]

    def _check(self, path: Path, seen: _Seen, now: float) -> Candidate | None:
        try:
            st = self._lstat(path)
        except FileNotFoundError:
            self.forget(path)
            return None
        if stat.S_ISDIR(st.st_mode):
            self.forget(path)
            return None
        if not stat.S_ISREG(st.st_mode):
            # Never opened, never followed: handed over at once to be set aside.
            return Candidate(path, regular=False)
        if (st.st_size, st.st_mtime_ns, st.st_ino) != (seen.size, seen.mtime_ns, seen.inode):
            seen.size, seen.mtime_ns, seen.inode = st.st_size, st.st_mtime_ns, st.st_ino
            seen.still_since = now
            return None
        if self.marker_suffix:
            marker = path.with_name(path.name + self.marker_suffix)
            return Candidate(path, regular=True, marker=marker) if marker.exists() else None
        if now - seen.still_since >= self.settle_seconds:
            return Candidate(path, regular=True)
        return None
