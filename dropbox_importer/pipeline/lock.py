"""One daemon per state directory: an `flock` on `state_dir/daemon.lock` that holds the pid.

`flock` locks belong to the open file description, so the kernel drops the lock when the holder
exits for any reason, kill -9 included: a stale lock file never blocks a restart. The pid written
inside is only for the operator's message; the lock itself decides. (`flock` on NFS is emulated
with POSIX locks by Linux; keep the state directory on a local disk anyway, as SQLite wants.)
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import structlog

log = structlog.get_logger(__name__)

LOCK_NAME = "daemon.lock"


# Named for what the operator sees; `run` matches on it to exit with its own code.
class AlreadyRunning(Exception):  # noqa: N818
    """Another process holds the state directory's lock."""

    def __init__(self, pid: int | None, lock_path: Path) -> None:
        holder = f"process {pid}" if pid is not None else "another process"
        super().__init__(
            f"{holder} already runs a daemon on this state directory (lock file {lock_path}); "
            "stop it first, or give this one another state_dir"
        )
        self.pid = pid
        self.lock_path = lock_path


class StateDirLock:
    """The exclusive, non-blocking lock of one state directory; usable as a context manager."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock and write our pid into it, or raise AlreadyRunning at once."""
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Opened without O_TRUNC: truncating before we hold the lock would erase the holder's pid.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise AlreadyRunning(pid, self.path) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        os.fsync(fd)
        self._fd = fd
        log.info("state_dir_locked", lock_file=str(self.path), pid=os.getpid())

    def release(self) -> None:
        """Let go of the lock (the kernel also does this when the process dies)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        # Empty the pid before unlocking, so a reader never sees our pid after we are gone.
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def __enter__(self) -> StateDirLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


@dataclass(frozen=True)
class Holder:
    """Who holds a state directory's lock, as another process can tell without taking it."""

    held: bool | None  # None: this system does not say (no /proc/locks)
    pid: int | None = None


def holder(state_dir: Path, *, proc_locks: Path = Path("/proc/locks")) -> Holder:
    """Whether a daemon holds `state_dir`'s lock now, read from the kernel's lock table.

    Never takes the lock, not even for a moment: a daemon starting at that instant must not
    find it taken by a reader and refuse to start.
    """
    path = state_dir / LOCK_NAME
    try:
        st = path.stat()
    except FileNotFoundError:
        return Holder(False)
    except OSError:
        return Holder(None)
    try:
        table = proc_locks.read_text()
    except OSError:
        return Holder(None)
    # "1: FLOCK  ADVISORY  WRITE 29713 fe:00:2148536 0 EOF": major and minor in hex, inode.
    wanted = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in table.splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == wanted:
            pid = int(fields[4]) if fields[4].isdigit() else None
            return Holder(True, pid or None)
    return Holder(False)


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip())
    except (OSError, ValueError):
        # The holder may be between taking the lock and writing its pid.
        return None
