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
from datetime import UTC, datetime
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


# Line ends a finished file's last line may close with (UTF-16: a line feed and its NUL).
_LINE_ENDS = (b"\n", b"\r", b"\n\x00", b"\r\x00", b"\x00\n", b"\x00\r")


def ends_with_line_end(path: Path) -> bool:
    """True if the file's last bytes are a line end (False for an empty or unreadable file)."""
    try:
        with path.open("rb") as stream:
            stream.seek(0, os.SEEK_END)
            size = stream.tell()
            stream.seek(max(size - 2, 0))
            tail = stream.read(2)
    except OSError:
        return False
    return tail.endswith(_LINE_ENDS)


@dataclass
class _Seen:
    size: int
    mtime_ns: int
    inode: int
    still_since: float  # monotonic time of the last change seen
    first_seen: float  # monotonic
    seen_at: datetime  # wall clock, for the result's `dropped`
    closed_at: float | None = None  # when its writer closed it, if it has not changed since
    close_pending: bool = False  # a close (or rename into place) noted, not yet applied


@dataclass(frozen=True)
class Candidate:
    """A path that is ready to be claimed, or that is no regular file and must be set aside.

    `closed`: its local writer was seen closing it (or renaming it into place) after its last
    change; `seen_at`: when the daemon first saw it.
    """

    path: Path
    regular: bool
    marker: Path | None = None
    seen_at: datetime | None = None
    closed: bool = False


def _always(_st: os.stat_result) -> bool:
    return True


class ReadinessTracker:
    """Tracks candidate paths of one inbox until they have settled.

    A file counts as written when it has not changed for `settle_seconds`, or, sooner, for
    `close_quiet_seconds` after its local writer closed it (inotify's close-write, or a rename
    into place). A zero-byte file must also be `empty_seconds` old (export tools create one and
    fill it later). A file whose last line has no line end, and whose writers the kernel cannot
    show (`writers_visible` False: a network share, no CAP_LEASE), must be still for
    `unterminated_seconds` unless its writer was seen closing it. Whether a process still has it
    open for writing is asked at the claim (dropbox.writers).
    """

    def __init__(
        self,
        settle_seconds: float,
        *,
        ignore: Sequence[str] = (),
        marker: str | None = None,
        lstat: Callable[[Path], os.stat_result] = os.lstat,
        dropbox: str = "",
        close_quiet_seconds: float = 1.0,
        empty_seconds: float = 60.0,
        unterminated_seconds: float = 60.0,
        writers_visible: Callable[[os.stat_result], bool] = _always,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_error: Callable[[Path, OSError], None] | None = None,
    ) -> None:
        self.settle_seconds = settle_seconds
        self.close_quiet_seconds = close_quiet_seconds
        self.empty_seconds = empty_seconds
        self.unterminated_seconds = unterminated_seconds
        self.ignore = tuple(ignore)
        self._log = log.bind(dropbox=dropbox) if dropbox else log
        # Paths already logged as ignored, oldest first; bounded, as temporary names are unique.
        self._ignored: dict[Path, None] = {}
        self.marker_suffix = MARKER_SUFFIXES[marker] if marker else None
        self._lstat = lstat
        self._writers_visible = writers_visible
        self._wall_clock = wall_clock
        self._on_error = on_error
        self._lock = threading.Lock()
        self._pending: dict[Path, bool] = {}  # path -> a close was noted
        self._seen: dict[Path, _Seen] = {}

    def note(self, path: Path, closed: bool = False) -> None:
        """Record that `path` may have changed (thread-safe; called by watcher threads).

        `closed`: its writer just closed it after writing, or renamed it into place.
        """
        if self.marker_suffix and path.name.endswith(self.marker_suffix):
            path = path.with_name(path.name[: -len(self.marker_suffix)])
            closed = False
        reason = ignored_because(path.name, self.ignore)
        if reason is not None:
            self._ignored_once(path, reason)
            return
        with self._lock:
            self._pending[path] = self._pending.get(path, False) or closed

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
            return len(self._seen) + len(self._pending.keys() - self._seen.keys())

    def forget(self, path: Path) -> None:
        """Stop tracking `path` (claimed, or handled otherwise)."""
        with self._lock:
            self._seen.pop(path, None)
            self._pending.pop(path, None)

    def defer(self, path: Path, now: float, seen_at: datetime | None = None) -> None:
        """A writer still holds `path` open: track it again, a full quiet time from `now`.

        `seen_at` keeps when the daemon first saw it (for the result's `dropped`).
        """
        with self._lock:
            seen = self._seen.get(path)
            if seen is None:
                seen = _Seen(-1, -1, -1, now, now, seen_at or self._wall_clock())
                self._seen[path] = seen
            seen.still_since = now
            seen.closed_at = None

    def due(self, now: float, until: Callable[[], bool] | None = None) -> list[Candidate]:
        """Re-stat every tracked path; return those that have settled, in order of arrival.

        `until()` turning true stops the re-stat part-way (a stop must not wait for 100,000
        paths); the paths not looked at are looked at next time.
        """
        with self._lock:
            for path, closed in self._pending.items():
                seen = self._seen.get(path)
                if seen is None:
                    seen = _Seen(-1, -1, -1, now, now, self._wall_clock())
                    self._seen[path] = seen
                seen.close_pending = seen.close_pending or closed
            self._pending.clear()
            tracked = list(self._seen.items())
        ready: list[tuple[int, Candidate]] = []
        for n, (path, seen) in enumerate(tracked):
            if until is not None and n % 256 == 0 and until():
                break
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
        except OSError as exc:
            # Its folder was made unreadable (chmod 000 by a partner): forgotten until a rescan
            # finds it again; the folder is reported, never the daemon stopped.
            self.forget(path)
            if self._on_error is not None:
                self._on_error(path.parent, exc)
            return None
        if stat.S_ISDIR(st.st_mode):
            self.forget(path)
            return None
        if not stat.S_ISREG(st.st_mode):
            # Never opened, never followed: handed over at once to be set aside.
            return Candidate(path, regular=False)
        with self._lock:
            closed, seen.close_pending = seen.close_pending, False
        if (st.st_size, st.st_mtime_ns, st.st_ino) != (seen.size, seen.mtime_ns, seen.inode):
            seen.size, seen.mtime_ns, seen.inode = st.st_size, st.st_mtime_ns, st.st_ino
            seen.still_since = now
            seen.closed_at = now if closed else None
            return None
        if closed and seen.closed_at is None:
            seen.closed_at = now
        if self.marker_suffix:
            marker = path.with_name(path.name + self.marker_suffix)
            if not _exists(marker):
                return None
            return Candidate(path, regular=True, marker=marker, seen_at=seen.seen_at)
        return self._ready(path, seen, st, now)

    def _ready(self, path: Path, seen: _Seen, st: os.stat_result, now: float) -> Candidate | None:
        """The candidate, if the file has been quiet long enough by every rule that applies."""
        quiet = now - seen.still_since
        closed = seen.closed_at is not None and now - seen.closed_at >= self.close_quiet_seconds
        if not closed and quiet < self.settle_seconds:
            return None
        if st.st_size == 0 and now - seen.first_seen < self.empty_seconds:
            return None
        if (
            not closed
            and quiet < self.unterminated_seconds
            and st.st_size > 0
            and not self._writers_visible(st)
            and not ends_with_line_end(path)
        ):
            return None  # maybe stalled mid-line, by a writer no check can see
        return Candidate(path, regular=True, seen_at=seen.seen_at, closed=closed)


def _exists(path: Path) -> bool:
    """Whether `path` exists; False too when it cannot be looked at."""
    try:
        os.lstat(path)
    except OSError:
        return False
    return True
