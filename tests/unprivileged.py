"""The daemon as the systemd unit runs it: a system user of its own, without any capability.

CI runs the suite as root, and root reads and writes everything: a daemon run as root would
never meet a folder it cannot read. So, when the suite runs as root, a session fixture creates
a throw-away system user, and every daemon that `tests.daemon.harness.DaemonProcess` starts in
tests/daemon and tests/stress runs as that user through `setpriv`, with what the unit grants
(systemd/dropbox-importer.service): its own user and group only (`User=`, `Group=`, no
supplementary groups), only the unit's capabilities (`AmbientCapabilities=`, the same bounding
set: CAP_LEASE), no new privileges (`NoNewPrivileges=yes`) and `UMask=0027`.

It reaches the test's folders the way it reaches a partner's drop box (docs/sftp.md): each test
gets a setgid folder of the daemon's group, and the test process writes with umask 002, so
what a test creates (as the partner would) is the daemon's to read and to rename out. A test
that wants a folder the daemon cannot read makes it so, as a partner could.

Not root: the daemon runs as the current user, unprivileged already; the session header says
so, and tests that need a second account skip with a reason.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "dropbox-importer.service"
UMASK = 0o027  # the unit's UMask=
TEST_UMASK = 0o002  # the partner's side: folders and files its group (the daemon's) may use


def unit_capabilities(unit: Path = UNIT) -> list[str]:
    """The capabilities the unit grants (`AmbientCapabilities=`), as setpriv names them."""
    names: list[str] = []
    for line in unit.read_text().splitlines():
        key, _, value = line.strip().partition("=")
        if key == "AmbientCapabilities":
            names = [cap.lower().removeprefix("cap_") for cap in value.split()]
    return names


@dataclass(frozen=True)
class ServiceAccount:
    """A system user standing in for `dropbox-importer`, and a folder it may work in."""

    user: str
    uid: int
    gid: int
    base: Path

    def command(self) -> list[str]:
        """The argv prefix that runs a program as this user with what the unit grants, only."""
        caps = "".join(f",+{cap}" for cap in unit_capabilities())
        return [
            "setpriv",
            f"--reuid={self.uid}",
            f"--regid={self.gid}",
            # The user's groups from /etc/group, as systemd's User= gives them: the way the
            # daemon reaches partner drop boxes (docs/sftp.md). A fresh account has none.
            "--init-groups",
            f"--inh-caps=-all{caps}",
            f"--ambient-caps=-all{caps}",
            f"--bounding-set=-all{caps}",
            "--no-new-privs",
            "--",
        ]

    def folder(self, name: str) -> Path:
        """A new folder for one test: setgid, of the account's group, group-writable."""
        prefix = "".join(c if c.isalnum() else "_" for c in name)[:40] + "-"
        path = Path(tempfile.mkdtemp(prefix=prefix, dir=self.base))
        os.chown(path, 0, self.gid)
        path.chmod(0o2770)
        return path


def _run(*argv: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip()}")


def existing_account(user: str) -> ServiceAccount:
    """An account for an existing user, with a new base folder it can pass through."""
    entry = pwd.getpwnam(user)
    base = Path(tempfile.mkdtemp(prefix="dbi-unprivileged-"))
    base.chmod(0o711)  # passed through, never listed
    return ServiceAccount(user, entry.pw_uid, entry.pw_gid, base)


def create_account() -> ServiceAccount:
    """Create a system user (with a group of its own) and a base folder it can pass through."""
    user = f"dbi-svc-{secrets.token_hex(4)}"
    _run("useradd", "--system", "--user-group", "--no-create-home", "--shell",
         "/usr/sbin/nologin", user)  # fmt: skip
    return existing_account(user)


def remove_folders(account: ServiceAccount) -> None:
    """Remove everything the account's tests left (kept with DBI_KEEP_TEST_FOLDERS=1)."""
    if os.environ.get("DBI_KEEP_TEST_FOLDERS") == "1":
        return
    # Files a test made immutable would survive rmtree; clear the flag first.
    subprocess.run(["chattr", "-R", "-i", str(account.base)], capture_output=True, timeout=60)
    shutil.rmtree(account.base, ignore_errors=True)


def remove_account(account: ServiceAccount) -> None:
    """Remove the account, its group and everything its tests left."""
    remove_folders(account)
    subprocess.run(["userdel", "--force", account.user], capture_output=True, timeout=60)


def session_account() -> Iterator[ServiceAccount | None]:
    """The body of the session fixture: an account when root, None otherwise."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None or shutil.which("useradd") is None:
        yield None
        return
    account = create_account()
    try:
        yield account
    finally:
        remove_account(account)


def report_header() -> str:
    """One line for the session header: who the daemon under test runs as."""
    if os.geteuid() != 0:
        return (
            f"daemon under test: runs as the current user (uid {os.geteuid()}), not root, so "
            "no service account is made; tests needing a second account skip"
        )
    if shutil.which("setpriv") is None or shutil.which("useradd") is None:
        return "daemon under test: runs as ROOT: setpriv or useradd is missing (util-linux, passwd)"
    caps = ", ".join(f"CAP_{cap.upper()}" for cap in unit_capabilities()) or "none"
    return (
        "daemon under test: runs as a throw-away system user via setpriv, with the unit's "
        f"capabilities only ({caps}), as systemd/dropbox-importer.service runs it"
    )


class Current:
    """The account daemons of the running test start as (None: the current user)."""

    account: ServiceAccount | None = None


@pytest.fixture(autouse=True)
def daemon_runs_unprivileged(service_account: ServiceAccount | None) -> Iterator[None]:
    """Every daemon the test starts runs as the service account; the test writes as a partner."""
    Current.account = service_account
    old = os.umask(TEST_UMASK) if service_account is not None else None
    try:
        yield
    finally:
        Current.account = None
        if old is not None:
            os.umask(old)


@pytest.fixture
def tmp_path(
    tmp_path: Path, service_account: ServiceAccount | None, request: pytest.FixtureRequest
) -> Path:
    """The test's folder, reachable by the service account (pytest's own is root's alone)."""
    if service_account is None:
        return tmp_path
    return service_account.folder(request.node.name)
