"""Is a process still writing this file? The kernel knows: a read lease says.

`fcntl(F_SETLEASE, F_RDLCK)` is granted only while no file description anywhere on the host has
the file open for writing (the kernel counts them, whoever holds them: a local script, OpenSSH's
`internal-sftp`, Samba, even the kernel's own NFS server), and it is refused with EAGAIN
otherwise. Held across the claim's rename, it also closes the race of a writer opening the file
in between: that open waits for the lease to be released (the lease is "broken"), and the claim
sees the break and hands the file back.

Why a read lease, and not the alternatives:
- a write lease (F_WRLCK) is refused while anyone has the file open at all, readers included: a
  backup or virus scanner reading the inbox would hold claims up, and it tells nothing more;
- a scan of /proc/*/fd needs CAP_SYS_PTRACE to see other users' processes (every SFTP session
  runs as its partner), is slow on a busy host, and cannot see kernel writers (knfsd, ksmbd);
- inotify's close-write alone cannot tell a writer that paused from one that finished.

What it needs: a process may lease a file it owns; for files owned by others (every partner's
upload) it needs CAP_LEASE in the initial user namespace. The systemd unit grants exactly that
(`AmbientCapabilities=CAP_LEASE`, no `PrivateUsers=`; docs/install.md). Without it, or on a
filesystem without leases (network shares: their writers are on other hosts anyway), the check
answers "unknown" and readiness falls back on the settle time.

The lease break is signalled to the holder; by default with SIGIO, whose default action kills
the process. F_SETSIG switches it to SIGURG, ignored by default, before any lease is taken.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import os
import signal
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import structlog

# A signal ignored unless handled: a lease break must never kill the daemon (SIGIO would).
LEASE_BREAK_SIGNAL = signal.SIGURG
CAP_LEASE = 28  # linux/capability.h


class Writers(Enum):
    """What the kernel says about writers of a file."""

    NONE = "none"  # nobody has it open for writing
    OPEN = "open"  # some process has it open for writing
    UNKNOWN = "unknown"  # no lease could be asked for (no permission, no support)


class StillOpen(Exception):  # noqa: N818 - named for what the claim found
    """A process holds the file open for writing: it is not claimed yet."""


@dataclass
class Lease:
    """A read lease held on a file (or the reason none could be asked for)."""

    fd: int | None
    writers: Writers
    why_unknown: str = ""

    def broken(self) -> bool:
        """True if a process has tried to open the file for writing since the lease was taken."""
        if self.fd is None:
            return False
        try:
            # During a break the kernel reports the type the lease must fall to: F_UNLCK.
            return int(fcntl.fcntl(self.fd, fcntl.F_GETLEASE)) != fcntl.F_RDLCK
        except OSError:
            return True


def _unknown(exc: OSError) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM):
        return (
            "the daemon may not lease files it does not own: grant it CAP_LEASE "
            "(AmbientCapabilities=CAP_LEASE in the unit, see docs/install.md)"
        )
    return f"this filesystem does not support leases ({os.strerror(exc.errno or 0)})"


@contextlib.contextmanager
def lease(path: Path | str, dir_fd: int | None = None) -> Iterator[Lease]:
    """Hold a read lease on `path` (relative to `dir_fd` if given) for the `with` block.

    Yields a Lease saying NONE (held: nobody writes, and a writer opening it meanwhile shows in
    `broken()`) or UNKNOWN (not permitted or not supported; `why_unknown` says which). Raises
    StillOpen when a process has the file open for writing, FileNotFoundError when it is gone.
    Symbolic links are never followed.
    """
    try:
        # O_NONBLOCK: fail with EWOULDBLOCK instead of waiting out another holder's lease break.
        fd = os.open(
            path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd
        )
    except BlockingIOError:
        raise StillOpen(f"{path} is leased by another process (Samba?)") from None
    except PermissionError:
        # A file the daemon may not read: no lease to ask for, and the claim's own checks say
        # what is wrong with it (the partner's result names the chmod that fixes it).
        yield Lease(None, Writers.UNKNOWN, "the daemon may not open this file")
        return
    try:
        held = _take(fd, path)
        try:
            yield held
        finally:
            if held.fd is not None:
                with contextlib.suppress(OSError):
                    fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
    finally:
        os.close(fd)


def _take(fd: int, path: Path | str) -> Lease:
    try:
        fcntl.fcntl(fd, fcntl.F_SETSIG, LEASE_BREAK_SIGNAL)
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    except BlockingIOError:
        raise StillOpen(f"{path} is open for writing") from None
    except OSError as exc:
        return Lease(None, Writers.UNKNOWN, _unknown(exc))
    return Lease(fd, Writers.NONE)


def no_writer(folder: int, name: str, _st: os.stat_result) -> None:
    """The claim's last check (a `dropbox.layout.ClaimCheck`), just before the rename: raises
    StillOpen while a process has `name` (in the open `folder`) open for writing.

    Where no lease can be asked for (no permission, no support) it says nothing: readiness
    already waited by the rules for writers it cannot see (`WriterCheck.visible`).
    """
    if writers_of(name, dir_fd=folder) is Writers.OPEN:
        raise StillOpen(f"{name} is open for writing")


def writers_of(path: Path | str, dir_fd: int | None = None) -> Writers:
    """Ask once whether a process has `path` open for writing (FileNotFoundError if gone)."""
    try:
        with lease(path, dir_fd) as held:
            return held.writers
    except StillOpen:
        return Writers.OPEN


def can_lease(owner_uid: int) -> bool:
    """True if this process may lease a file owned by `owner_uid` (by ownership or CAP_LEASE)."""
    if owner_uid == os.geteuid():
        return True
    return _has_cap_lease()


@functools.cache
def _has_cap_lease() -> bool:
    """CAP_LEASE in effect, and in the initial user namespace (where the kernel checks it).

    Read once: a process's capabilities do not change while the daemon runs.
    """
    try:
        status = Path("/proc/self/status").read_text()
        uid_map = Path("/proc/self/uid_map").read_text().split()
    except OSError:
        return False
    if uid_map[:3] != ["0", "0", "4294967295"]:
        return False  # a user namespace (PrivateUsers=yes): its capabilities do not count
    for line in status.splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> CAP_LEASE & 1)
    return False


def lease_support(folder: Path) -> str | None:
    """Why leases cannot be taken on `folder`'s filesystem, or None when they can.

    Probed on a temporary file of the daemon's own (ownership is never the problem there).
    """
    fd, name = tempfile.mkstemp(prefix=".lease-probe-", dir=folder)
    os.close(fd)
    try:
        with lease(name) as held:
            return held.why_unknown or None
    except StillOpen:
        return None  # something opened our probe: leases work
    finally:
        with contextlib.suppress(OSError):
            Path(name).unlink()


class WriterCheck:
    """One drop box's writer check: on, or off with the reason; says once when it is blind.

    `visible(st)` tells readiness whether the claim's lease can see the writers of a file with
    that stat: leases work there and the daemon may lease a file of that owner.
    """

    def __init__(self, dropbox: str, off_because: str | None) -> None:
        self.dropbox = dropbox
        self.off_because = off_because
        self._warned = False
        self._log = structlog.get_logger(__name__).bind(dropbox=dropbox)

    @property
    def on(self) -> bool:
        """True if claims take a lease at all."""
        return self.off_because is None

    def visible(self, st: os.stat_result) -> bool:
        """True if a lease at the claim can prove nobody writes a file with this stat."""
        if not self.on:
            return False
        if can_lease(st.st_uid):
            return True
        if not self._warned:
            self._warned = True
            self._log.warning(
                "writer_check_unavailable",
                owner_uid=st.st_uid,
                reason=_unknown(OSError(errno.EACCES, "")),
            )
        return False
