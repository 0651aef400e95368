"""Noticing files in an inbox: inotify events or the polling observer, plus a full rescan.

The watcher only says "something may have changed at this path"; whether a file is finished is
decided by `ready.ReadinessTracker`, and whether it may be read at all by `dropbox.layout.claim`.
Events can be lost (inotify queue overflow, renames across watches, network shares that never
send any), so the daemon also walks every inbox periodically: the watcher makes it fast, the
rescan makes it correct.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path

import structlog
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

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


def filesystem_type(path: Path, mounts: Path = Path("/proc/self/mounts")) -> str:
    """The type of the filesystem holding `path` (longest matching mount point)."""
    target = os.path.realpath(path)
    best, best_type = "", "unknown"
    try:
        lines = mounts.read_text().splitlines()
    except OSError:
        return best_type
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        # /proc/mounts escapes spaces and other bytes in octal (\040).
        point = fields[1].encode().decode("unicode_escape")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, best_type = point, fields[2]
    return best_type


def choose_mode(configured: str, root: Path) -> WatchMode:
    """Resolve `auto` to events on local filesystems and polling on network shares."""
    if configured != "auto":
        return WatchMode(configured)
    if filesystem_type(root) in NETWORK_FILESYSTEMS:
        return WatchMode.POLLING
    return WatchMode.EVENTS


def scan_inbox(inbox: Path) -> Iterator[Path]:
    """Every non-directory entry below `inbox`, without following symbolic links.

    A symbolic link to a folder is listed as an entry of its own, so it can be set aside.
    """
    for folder, dirs, files in os.walk(inbox, followlinks=False):
        for name in dirs:
            if Path(folder, name).is_symlink():
                yield Path(folder, name)
        for name in files:
            yield Path(folder, name)


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
            PollingObserver(timeout=polling_interval) if mode is WatchMode.POLLING else Observer()
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

    def stop(self) -> None:
        """Stop the observer thread and wait for it."""
        if self._observer.is_alive():
            self._observer.stop()
            self._observer.join(timeout=5)
