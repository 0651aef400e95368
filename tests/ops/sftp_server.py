"""A real OpenSSH SFTP drop box on loopback, laid out as docs/sftp.md tells operators to.

Use it from any test module::

    from tests.ops.sftp_server import SftpServer, sftp_server  # noqa: F401 (the fixture)

    def test_partner_upload(sftp_server: SftpServer, tmp_path: Path) -> None:
        sftp_server.put(tmp_path / "leads.csv", "leads.csv")   # lands in <root>/inbox/

It needs root (Unix accounts, a root-owned chroot under /srv, sshd) and skips with the reason
otherwise; `/usr/sbin/sshd` is installed with apt-get when missing. Owners and modes are those of
docs/sftp.md, with `daemon_user` (a member of the partner's group) standing in for the
`dropbox-importer` account; a daemon under test that runs as root reaches everything anyway.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.waiting import free_port

SSHD = Path("/usr/sbin/sshd")
HOST = "127.0.0.1"
START_DEADLINE_SECONDS = 20.0
COMMAND_TIMEOUT_SECONDS = 60.0
# Same request filter and umask as the production sshd_config in docs/sftp.md.
INTERNAL_SFTP = "internal-sftp -d /inbox -u 0007 -P symlink,hardlink"


class SftpError(Exception):
    """An sftp batch failed; carries the client's exit status and its error output."""

    def __init__(self, returncode: int, stderr: str, server_log: str = "") -> None:
        message = f"sftp exited with {returncode}: {stderr.strip()}"
        if server_log:
            message += f"\nlast sshd log lines:\n{server_log}"
        super().__init__(message)
        self.returncode = returncode
        self.stderr = stderr


@dataclass
class SftpServer:
    """A running sshd serving one partner account chrooted into its drop box `root`."""

    host: str
    port: int
    user: str
    daemon_user: str
    key: Path
    root: Path
    log: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def inbox(self) -> Path:
        """Where the partner's uploads land on the server's disk."""
        return self.root / "inbox"

    def argv(self, *, limit_kbit: int | None = None) -> list[str]:
        """The sftp command line that runs a batch read from stdin as the partner."""
        argv = ["sftp", "-b", "-", "-F", "/dev/null", "-i", str(self.key), "-P", str(self.port)]
        for option in (
            "StrictHostKeyChecking=no",
            "UserKnownHostsFile=/dev/null",
            "LogLevel=ERROR",
            "IdentitiesOnly=yes",
            "BatchMode=yes",
        ):
            argv += ["-o", option]
        if limit_kbit is not None:
            argv += ["-l", str(limit_kbit)]
        argv.append(f"{self.user}@{self.host}")
        return argv

    def batch(self, commands: Sequence[str], *, limit_kbit: int | None = None) -> str:
        """Run sftp batch commands as the partner; return stdout, raise SftpError on failure."""
        script = "\n".join(commands) + "\n"
        done = subprocess.run(
            self.argv(limit_kbit=limit_kbit),
            input=script,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_SECONDS,
        )
        if done.returncode != 0:
            tail = self.log.read_text(errors="replace").splitlines()[-8:]
            raise SftpError(done.returncode, done.stderr, "\n".join(tail))
        return done.stdout

    def put(
        self,
        local: Path,
        remote_name: str,
        *,
        temp_name: str | None = None,
        limit_kbit: int | None = None,
    ) -> None:
        """Upload `local` as `remote_name` (relative names land in inbox/).

        With `temp_name` the file is written under that name and renamed at the end, as
        WinSCP-style clients do; `limit_kbit` throttles the upload to make it slow and in place.
        """
        if temp_name is None:
            commands = [f"put {quote(str(local))} {quote(remote_name)}"]
        else:
            commands = [
                f"put {quote(str(local))} {quote(temp_name)}",
                f"rename {quote(temp_name)} {quote(remote_name)}",
            ]
        self.batch(commands, limit_kbit=limit_kbit)

    def start_put(self, local: Path, remote_name: str, *, limit_kbit: int) -> subprocess.Popen[str]:
        """Start a throttled upload and return at once: sftp (and its ssh) in a process group
        of their own, so a test can stop and continue the whole client, as a stalled network
        would, while the server holds the file open."""
        proc = subprocess.Popen(
            self.argv(limit_kbit=limit_kbit),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert proc.stdin is not None
        proc.stdin.write(f"put {quote(str(local))} {quote(remote_name)}\n")
        proc.stdin.close()
        return proc

    def get(self, remote_name: str, local: Path) -> None:
        """Download `remote_name` (e.g. a result file in /done/) to `local` as the partner."""
        self.batch([f"get {quote(remote_name)} {quote(str(local))}"])


def quote(argument: str) -> str:
    """Quote one argument for an sftp batch line (it splits on spaces, honours double quotes)."""
    escaped = argument.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def require_root_and_sshd() -> None:
    """Skip unless we are root and sshd exists (installing it with apt-get if it is missing)."""
    if os.geteuid() != 0:
        pytest.skip("needs root: creates a Unix account, a root-owned chroot in /srv and sshd")
    if SSHD.exists():
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "openssh-server"],
    ):
        try:
            done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as exc:
            pytest.skip(f"cannot install openssh-server: {exc}")
        if done.returncode != 0:
            pytest.skip(f"cannot install openssh-server ({' '.join(argv)}): {done.stderr[-500:]}")
    if not SSHD.exists():
        pytest.skip("openssh-server installed but /usr/sbin/sshd is still missing")


def run(*argv: str) -> None:
    """Run an administration command; fail with its output if it fails."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_SECONDS)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip()}")


def make_drop_box(root: Path, partner: str, daemon: str) -> None:
    """The chroot of docs/sftp.md: root-owned, inbox/ writable by the partner's group only."""
    root.mkdir(mode=0o755)
    os.chmod(root, 0o755)  # mkdir's mode is filtered by the umask
    # inbox: the partner writes, the daemon (through the partner's group) renames files out;
    # setgid keeps every upload and route folder in the partner's group.
    # processing: the daemon's alone. done, failed: the partner reads its results.
    folders = {
        "inbox": (partner, 0o2770),
        "processing": (daemon, 0o700),
        "done": (partner, 0o2750),
        "failed": (partner, 0o2750),
    }
    for name, (group, mode) in folders.items():
        folder = root / name
        folder.mkdir()
        shutil.chown(folder, daemon, group)
        os.chmod(folder, mode)


def write_sshd_config(work: Path, *, port: int, group: str, root: Path, keys: Path) -> Path:
    """A private sshd_config: loopback only, keys only, the partner group chrooted."""
    config = work / "sshd_config"
    config.write_text(
        f"""Port {port}
ListenAddress {HOST}
HostKey {work / "host_key"}
PidFile {work / "sshd.pid"}
AuthorizedKeysFile {keys}/%u
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
LogLevel VERBOSE
Subsystem sftp internal-sftp
Match Group {group}
    ChrootDirectory {root}
    ForceCommand {INTERNAL_SFTP}
    AllowTcpForwarding no
    X11Forwarding no
    PermitTTY no
"""
    )
    return config


def wait_until_listening(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    """Return once sshd accepts connections; raise with its log if it exits or time runs out."""
    deadline = time.monotonic() + START_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=1.0):
                return
        except OSError:
            pass
        try:
            # Waiting on the process doubles as the pause between attempts.
            code = process.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            continue
        raise RuntimeError(f"sshd exited with {code}: {log.read_text(errors='replace')}")
    raise RuntimeError(f"sshd not listening on {port} after {START_DEADLINE_SECONDS} s")


def start_sshd(
    work: Path, *, group: str, root: Path, keys: Path
) -> tuple[subprocess.Popen[bytes], int]:
    """Start sshd on a free port, retrying if another process takes the port first."""
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
    last: Exception | None = None
    for _attempt in range(3):
        port = free_port(HOST)
        config = write_sshd_config(work, port=port, group=group, root=root, keys=keys)
        log = work / "sshd.log"
        process = subprocess.Popen([str(SSHD), "-D", "-f", str(config), "-E", str(log)])
        try:
            wait_until_listening(process, port, log)
        except RuntimeError as exc:
            stop(process)
            last = exc
            continue
        return process, port
    raise RuntimeError(f"sshd did not start: {last}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop sshd: SIGTERM, then SIGKILL if it has not gone within 10 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture
def sftp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SftpServer]:
    """A partner account, its chrooted drop box under /srv and an sshd serving it on loopback."""
    require_root_and_sshd()
    suffix = secrets.token_hex(4)
    user, group = f"dbi-partner-{suffix}", f"dbi-sftp-{suffix}"
    daemon = f"dbi-daemon-{suffix}"
    root = Path(f"/srv/dbi-test-{suffix}")
    # sshd reads authorized keys as the partner, who cannot enter pytest's private tmp folder;
    # a root-owned folder outside the chroot is also what docs/sftp.md recommends.
    keys = Path(f"/srv/dbi-test-{suffix}.keys")
    work = tmp_path_factory.mktemp("sshd")
    cleanups: list[tuple[str, ...]] = []
    process: subprocess.Popen[bytes] | None = None
    try:
        run("groupadd", group)
        cleanups.append(("groupdel", group))
        run("useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", "-G", group, user)
        cleanups.insert(0, ("userdel", "--force", user))
        # With UsePAM no, useradd's locked password field ("!") refuses even key logins.
        run("usermod", "-p", "*", user)
        # The daemon's stand-in joins the partner's group, as `dropbox-importer` does.
        run("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", daemon)
        cleanups.insert(0, ("userdel", "--force", daemon))
        run("usermod", "-aG", user, daemon)
        make_drop_box(root, user, daemon)
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / "host_key"))
        key = work / "client_key"
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key))
        keys.mkdir(mode=0o755)
        shutil.copy(key.with_suffix(".pub"), keys / user)
        (keys / user).chmod(0o644)
        process, port = start_sshd(work, group=group, root=root, keys=keys)
        yield SftpServer(HOST, port, user, daemon, key, root, work / "sshd.log", process)
    finally:
        if process is not None:
            stop(process)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(keys, ignore_errors=True)
        for argv in cleanups:
            subprocess.run(argv, capture_output=True, timeout=COMMAND_TIMEOUT_SECONDS)
