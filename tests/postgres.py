"""A real PostgreSQL for tests: Debian's package, a cluster of its own, stopped afterwards.

`PostgresServer.start()` runs `initdb` in a fresh folder under /tmp, as an unprivileged user
(PostgreSQL refuses to run as root: when the tests run as root it is the `postgres` account the
Debian package creates), and starts the server on its own loopback port with its socket in that
folder, so it never meets a system cluster or another test run's. Password authentication is on
(scram-sha-256): the daemon reaches it as a role of its own with the password in a file, exactly as
in production. `fsync=off` because the tests kill daemons, never the database server.

`ensure_installed()` finds the server programs, installing Debian's `postgresql` package when
they are missing and the tests run as root; otherwise it says why the tests must skip.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import pwd
import re
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from dropbox_importer.testing import free_port

SUPERUSER = "postgres"
DAEMON_ROLE = "importer"
INSTALL_TIMEOUT = 600


def _version(bindir: Path) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", bindir.parent.name))


def find_bindir() -> Path | None:
    """The folder holding initdb and pg_ctl (the newest Debian version first), or None."""
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version, reverse=True)
    for bindir in debian:
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            return bindir
    found = shutil.which("pg_ctl")
    if found is not None and (Path(found).parent / "initdb").exists():
        return Path(found).resolve().parent
    return None


def ensure_installed() -> tuple[Path | None, str]:
    """(the server programs' folder, "") or (None, why PostgreSQL cannot be had here).

    Test workers (pytest-xdist) ask at once: the first installs, the others wait on a lock.
    """
    bindir = find_bindir()
    if bindir is not None:
        return bindir, ""
    with Path(tempfile.gettempdir(), "dbi-postgres-install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _install()


def _install() -> tuple[Path | None, str]:
    bindir = find_bindir()  # another worker may have installed it while this one waited
    if bindir is not None:
        return bindir, ""
    if os.geteuid() != 0:
        return None, (
            "PostgreSQL is not installed and installing it needs root: "
            "apt-get install postgresql (Debian's package), then run the tests again"
        )
    if shutil.which("apt-get") is None:
        return None, "PostgreSQL is not installed and this system has no apt-get to install it"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update"], ["apt-get", "install", "-y", "postgresql"]):
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, env=env, timeout=INSTALL_TIMEOUT
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"installing PostgreSQL failed: {' '.join(argv)}: {exc}"
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            return None, f"installing PostgreSQL failed: {' '.join(argv)}: {' / '.join(tail)}"
    bindir = find_bindir()
    if bindir is None:
        return None, "apt-get installed postgresql but no initdb/pg_ctl was found"
    return bindir, ""


@dataclass
class PostgresDatabase:
    """One empty database on the test server, owned by the daemon's role."""

    url: str  # no password in it, as in a config
    password_file: Path
    name: str

    def password(self) -> str:
        """The daemon role's password, as its file holds it."""
        return self.password_file.read_text().strip()

    def state(self, **extra: object) -> dict[str, object]:
        """The config's `state` section for a daemon on this database."""
        return {"journal": self.url, "password_file": str(self.password_file), **extra}


@dataclass
class PostgresServer:
    """A PostgreSQL cluster in a temporary folder, on 127.0.0.1 and a port of its own."""

    bindir: Path
    root: Path
    port: int
    owner: str | None  # the account the server runs as (None: this process's)
    superuser_password: str = field(repr=False)
    daemon_password: str = field(repr=False)
    _names: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @classmethod
    def start(cls, bindir: Path) -> PostgresServer:
        """initdb a new cluster and start it; raise RuntimeError with its log if it fails."""
        owner = None
        if os.geteuid() == 0:
            owner = SUPERUSER if _has_user(SUPERUSER) else "nobody"
        root = Path(tempfile.mkdtemp(prefix="dbi-postgres-"))
        server = cls(
            bindir,
            root,
            free_port(),
            owner,
            secrets.token_urlsafe(16),
            secrets.token_urlsafe(16),
        )
        try:
            server._init()
            options = [
                "-c listen_addresses=127.0.0.1",
                f"-c port={server.port}",
                f"-c unix_socket_directories={root}",
                "-c fsync=off",
                "-c max_connections=200",
            ]
            log = str(root / "server.log")
            server._run_ctl("start", "-w", "-t", "60", "-l", log, "-o", " ".join(options))
            server._bootstrap()
        except BaseException:
            server.stop()
            raise
        return server

    @property
    def data(self) -> Path:
        """The cluster's data folder."""
        return self.root / "data"

    def _init(self) -> None:
        pwfile = self.root / "superuser-password"
        pwfile.write_text(self.superuser_password)
        if self.owner is not None:
            entry = pwd.getpwnam(self.owner)
            for path in (self.root, pwfile):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self._run(
            str(self.bindir / "initdb"),
            "-D", str(self.data),
            "-U", SUPERUSER,
            "--pwfile", str(pwfile),
            "--auth", "scram-sha-256",
            "--encoding", "UTF8",
            "--no-sync",
        )  # fmt: skip
        pwfile.unlink()

    def _run_ctl(self, *args: str) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), *args)

    def _run(self, *argv: str) -> None:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=120,
            user=self.owner,
            cwd=self.root,
            stdin=subprocess.DEVNULL,
        )
        if done.returncode != 0:
            log = self.root / "server.log"
            extra = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{argv[0]} failed:\n{done.stdout}\n{done.stderr}\n{extra}")

    def _bootstrap(self) -> None:
        with self.admin() as conn:
            conn.execute(f"CREATE ROLE {DAEMON_ROLE} LOGIN PASSWORD '{self.daemon_password}'")

    def admin(self, dbname: str = "postgres") -> psycopg.Connection[tuple[Any, ...]]:
        """A superuser connection in autocommit mode."""
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=SUPERUSER,
            password=self.superuser_password,
            dbname=dbname,
            autocommit=True,
        )

    def create_database(self, directory: Path) -> PostgresDatabase:
        """A new empty database owned by the daemon's role; its password file in `directory`."""
        name = f"journal_{os.getpid()}_{next(self._names)}"
        with self.admin() as conn:
            conn.execute(f"CREATE DATABASE {name} OWNER {DAEMON_ROLE}")
        password_file = directory / "journal-password"
        password_file.write_text(self.daemon_password + "\n")
        # Readable by the group too: in tests/daemon the folder is setgid to the daemon's group.
        password_file.chmod(0o640)
        url = f"postgresql://{DAEMON_ROLE}@127.0.0.1:{self.port}/{name}"
        return PostgresDatabase(url, password_file, name)

    def stop(self) -> None:
        """Stop the server at once and delete its folder."""
        if (self.data / "postmaster.pid").exists():
            # The folder goes anyway; a server that would not stop dies with its data folder.
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self._run_ctl("stop", "-m", "immediate", "-w", "-t", "30")
        shutil.rmtree(self.root, ignore_errors=True)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
