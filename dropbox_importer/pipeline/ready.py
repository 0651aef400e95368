"""Deciding when a dropped file is finished: still for the settle time, or its marker present.

An SFTP or SMB upload gives no reliable "done" signal: clients write in place, write under a
temporary name and rename, or pause mid-way. So a file is ready only once its size and mtime
have not moved for `settle_seconds` (or, where partners agreed to it, once `<file>.done` or
`<file>.ok` exists). Pure bookkeeping over stat results; the caller supplies the clock.
"""

from __future__ import annotations

import fnmatch
import os
import stat
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_IGNORE = ("*.part", "*.filepart", "*.tmp", "~*")
MARKER_SUFFIXES = {"done": ".done", "ok": ".ok"}


def is_ignored(name: str, patterns: Sequence[str]) -> bool:
    """True for dotfiles and names that match an upload-in-progress pattern."""
    if name.startswith("."):
        return True
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


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
        ignore: Sequence[str] = DEFAULT_IGNORE,
        marker: str | None = None,
        lstat: Callable[[Path], os.stat_result] = os.lstat,
        on_error: Callable[[Path, OSError], None] | None = None,
    ) -> None:
        self.settle_seconds = settle_seconds
        self.ignore = tuple(ignore)
        self.marker_suffix = MARKER_SUFFIXES[marker] if marker else None
        self._lstat = lstat
        self._on_error = on_error
        self._lock = threading.Lock()
        self._pending: set[Path] = set()
        self._seen: dict[Path, _Seen] = {}

    def note(self, path: Path) -> None:
        """Record that `path` may have changed (thread-safe; called by watcher threads)."""
        if self.marker_suffix and path.name.endswith(self.marker_suffix):
            path = path.with_name(path.name[: -len(self.marker_suffix)])
        if is_ignored(path.name, self.ignore):
            return
        with self._lock:
            self._pending.add(path)

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

    def due(self, now: float, until: Callable[[], bool] | None = None) -> list[Candidate]:
        """Re-stat every tracked path; return those that have settled, in order of arrival.

        `until()` turning true stops the re-stat part-way (a stop must not wait for 100,000
        paths); the paths not looked at are looked at next time.
        """
        with self._lock:
            for path in self._pending:
                self._seen.setdefault(path, _Seen(-1, -1, -1, now))
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
        if (st.st_size, st.st_mtime_ns, st.st_ino) != (seen.size, seen.mtime_ns, seen.inode):
            seen.size, seen.mtime_ns, seen.inode = st.st_size, st.st_mtime_ns, st.st_ino
            seen.still_since = now
            return None
        if self.marker_suffix:
            marker = path.with_name(path.name + self.marker_suffix)
            return Candidate(path, regular=True, marker=marker) if _exists(marker) else None
        if now - seen.still_since >= self.settle_seconds:
            return Candidate(path, regular=True)
        return None


def _exists(path: Path) -> bool:
    """Whether `path` exists; False too when it cannot be looked at."""
    try:
        os.lstat(path)
    except OSError:
        return False
    return True
