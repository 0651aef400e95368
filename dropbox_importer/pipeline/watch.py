"""Noticing files in an inbox: inotify events or the polling observer, plus a full rescan.

The watcher only says "something may have changed at this path"; whether a file is finished is
decided by `ready.ReadinessTracker`, and whether it may be read at all by `dropbox.layout.claim`.
Events can be lost (inotify queue overflow, renames across watches, network shares that never
send any), so the daemon also walks every inbox periodically: the watcher makes it fast, the
rescan makes it correct.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path

import structlog
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserverVFS

log = structlog.get_logger(__name__)

# Filesystems on which inotify sees only local writes, or nothing: use the polling observer.
NETWORK_FILESYSTEMS = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "9p",
        "afs",
        "ceph",
        "glusterfs",
        "fuse.glusterfs",
        "fuse.sshfs",
        "fuse.rclone",
        "davfs",
        "fuse.davfs2",
        "lustre",
        "gpfs",
    }
)


class WatchMode(StrEnum):
    """How an inbox is watched."""

    EVENTS = "events"
    POLLING = "polling"


def _mount_point(field: bytes) -> str:
    """A mount point as /proc/self/mounts writes it, decoded.

    The kernel escapes only space, tab, newline and backslash, as three octal digits (`\\040`);
    every other byte, UTF-8 included, is written as it is. So only those escapes are undone and
    the bytes are decoded as the filesystem's names are (`os.fsdecode`), never as `unicode_escape`
    would (which reads UTF-8 bytes as Latin-1: `partagé` would match no path).
    """
    return os.fsdecode(_OCTAL_ESCAPE.sub(lambda m: bytes([int(m.group(1), 8)]), field))


_OCTAL_ESCAPE = re.compile(rb"\\([0-7]{3})")


MOUNTS = Path("/proc/self/mounts")


def filesystem_type(path: Path, mounts: Path = MOUNTS) -> str:
    """The type of the filesystem holding `path` (longest matching mount point)."""
    target = os.path.realpath(path)
    best, best_type = "", "unknown"
    try:
        lines = mounts.read_bytes().splitlines()
    except OSError:
        return best_type
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = _mount_point(fields[1])
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, best_type = point, os.fsdecode(fields[2])
    return best_type


def choose_mode(configured: str, root: Path, mounts: Path = MOUNTS) -> WatchMode:
    """Resolve `auto` to events on local filesystems and polling on network shares."""
    if configured != "auto":
        return WatchMode(configured)
    if filesystem_type(root, mounts) in NETWORK_FILESYSTEMS:
        return WatchMode.POLLING
    return WatchMode.EVENTS


def scan_inbox(
    inbox: Path, on_error: Callable[[Path, OSError], None] | None = None
) -> Iterator[Path]:
    """Every non-directory entry below `inbox`, without following symbolic links.

    A symbolic link to a folder is listed as an entry of its own, so it can be set aside. A
    folder that cannot be read, or can be listed but not entered, is skipped and handed to
    `on_error(folder, error)`; the rest of the tree is still walked.
    """
    stack = [inbox]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except FileNotFoundError:
            continue  # removed while we walked
        except OSError as exc:
            if on_error is not None:
                on_error(*_blocked(folder, exc))
            continue
        if entries:
            try:
                # Listing needs read permission, looking inside needs search (x): a folder
                # made 0444 lists its names and lets nothing be opened.
                entries[0].stat(follow_symlinks=False)
            except FileNotFoundError:
                pass
            except OSError as exc:
                if on_error is not None:
                    on_error(folder, exc)
                continue
        for entry in entries:
            try:
                is_folder = entry.is_dir(follow_symlinks=False)
            except OSError as exc:
                if on_error is not None:
                    on_error(folder, exc)
                continue
            if is_folder:
                stack.append(Path(entry.path))
            else:
                yield Path(entry.path)


def _blocked(folder: Path, exc: OSError) -> tuple[Path, OSError]:
    """The folder to blame: `folder`, or its parent when the parent cannot be entered."""
    if exc.errno in (errno.EACCES, errno.EPERM):
        try:
            folder.lstat()
        except OSError as parent_exc:
            return folder.parent, parent_exc
    return folder, exc


def _listing(folder: str | None) -> Iterator[os.DirEntry[str]]:
    """The polling observer's directory listing; a folder it may not read lists as empty.

    watchdog's own listing raises there and its thread dies; the daemon's rescan reports the
    folder instead, and finds its files once it can be read again.
    """
    try:
        with os.scandir(folder) as listing:
            return iter(list(listing))
    except PermissionError:
        return iter(())


Notify = Callable[[Path, bool], None]


class _Forward(FileSystemEventHandler):
    """Turns every file event into `notify(path, closed)`; directories are rescanned.

    `closed` is True when the writer is done with the path as far as inotify can tell: it was
    closed after being written (close-write), or renamed into place (the destination of a move).
    """

    def __init__(self, notify: Notify, rescan: Callable[[Path], None]) -> None:
        self._notify = notify
        self._rescan = rescan

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write", "deleted"):
            return
        for raw, closed in (
            (event.src_path, event.event_type == "closed"),
            (event.dest_path, event.event_type == "moved"),
        ):
            if not raw:
                continue
            path = Path(os.fsdecode(raw))
            if event.is_directory:
                # A folder moved in whole (or created with files already inside) brings files
                # for which no event of their own will ever come.
                if event.event_type in ("created", "moved"):
                    self._rescan(path)
            else:
                self._notify(path, closed)


class InboxWatcher:
    """Watches one inbox recursively with inotify or by polling; calls `notify` per path.

    `notify(path, closed)`: `closed` only ever comes from inotify (the polling observer sees
    sizes and times, never a close).
    """

    def __init__(
        self,
        inbox: Path,
        mode: WatchMode,
        notify: Notify,
        *,
        polling_interval: float = 5.0,
    ) -> None:
        self.inbox = inbox
        self.mode = mode
        self._notify = notify
        self._observer: BaseObserver = (
            PollingObserverVFS(os.stat, _listing, polling_interval=polling_interval)
            if mode is WatchMode.POLLING
            else Observer()
        )

    def _rescan_folder(self, folder: Path) -> None:
        for path in scan_inbox(folder):
            self._notify(path, False)

    def start(self) -> None:
        """Start watching; files already present are reported by a first scan."""
        self.inbox.mkdir(parents=True, exist_ok=True)
        handler = _Forward(self._notify, self._rescan_folder)
        self._observer.schedule(handler, str(self.inbox), recursive=True)
        self._observer.daemon = True
        self._observer.start()
        log.info("watch_started", inbox=str(self.inbox), mode=self.mode.value)
        self._rescan_folder(self.inbox)

    def stop(self, *, wait: bool = True, timeout: float = 5.0) -> None:
        """Stop the observer thread and (unless `wait` is False) wait for it up to `timeout` s."""
        if self._observer.is_alive():
            self._observer.stop()
            if wait:
                self._observer.join(timeout=timeout)
