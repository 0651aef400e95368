"""sd_notify: real datagrams from a real subprocess to a socket standing in for systemd."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dropbox_importer import systemd

# A subprocess that sends is bounded by this; reading a datagram already queued is immediate.
DEADLINE_SECONDS = 20.0


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket bound in tmp_path, as systemd binds its notification socket."""
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(DEADLINE_SECONDS)
        yield sock, str(path)


@pytest.fixture
def abstract_listener() -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket in the abstract namespace; its NOTIFY_SOCKET form starts with `@`."""
    name = f"dropbox-importer-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(DEADLINE_SECONDS)
        yield sock, "@" + name


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run `python -c code` with exactly the given extra environment; fail on a non-zero exit."""
    base = {k: v for k, v in os.environ.items() if k not in {"NOTIFY_SOCKET", "WATCHDOG_USEC"}}
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=DEADLINE_SECONDS,
        check=True,
    )


def test_subprocess_ready_and_status_arrive_as_one_datagram(
    listener: tuple[socket.socket, str],
) -> None:
    sock, path = listener
    done = run_python(
        "from dropbox_importer.systemd import notify\n"
        "print(notify('READY=1', 'STATUS=watching 2 drop boxes'))",
        {"NOTIFY_SOCKET": path},
    )
    assert done.stdout.strip() == "True"
    assert sock.recv(4096) == b"READY=1\nSTATUS=watching 2 drop boxes"


def test_abstract_namespace_socket_is_reached(
    abstract_listener: tuple[socket.socket, str],
) -> None:
    sock, address = abstract_listener
    run_python(
        "from dropbox_importer import systemd\nassert systemd.ready('up')",
        {"NOTIFY_SOCKET": address},
    )
    assert sock.recv(4096) == b"READY=1\nSTATUS=up"


def test_convenience_calls_send_their_states(
    listener: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, path = listener
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    assert systemd.status("3 files in flight")
    assert systemd.watchdog_ping()
    assert systemd.reloading()
    assert systemd.stopping()
    received = [sock.recv(4096) for _ in range(4)]
    assert received == [b"STATUS=3 files in flight", b"WATCHDOG=1", b"RELOADING=1", b"STOPPING=1"]


def test_status_newlines_cannot_forge_another_state(
    listener: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, path = listener
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    assert systemd.status("bad name\nREADY=1")
    assert sock.recv(4096) == b"STATUS=bad name READY=1"


def test_without_notify_socket_every_call_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.notify("READY=1") is False
    assert systemd.ready("up") is False
    assert systemd.watchdog_ping() is False


def test_unreachable_socket_returns_false_instead_of_raising(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens.sock"))
    assert systemd.notify("WATCHDOG=1") is False


def test_watchdog_interval_from_usec_for_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert systemd.watchdog_interval() == 30.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert systemd.watchdog_interval() == 30.0


def test_watchdog_meant_for_another_process_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert systemd.watchdog_interval() is None


@pytest.mark.parametrize("value", [None, "", "0", "-5", "thirty"])
def test_watchdog_off_or_unparsable_gives_none(
    value: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    if value is None:
        monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    else:
        monkeypatch.setenv("WATCHDOG_USEC", value)
    assert systemd.watchdog_interval() is None


def test_watchdog_interval_in_a_subprocess_named_by_pid() -> None:
    # WATCHDOG_PID names the child itself only if it reads its own pid; a parent's pid is refused.
    code = (
        "import os\n"
        "os.environ['WATCHDOG_PID'] = str(os.getpid())\n"
        "from dropbox_importer.systemd import watchdog_interval\n"
        "print(watchdog_interval())"
    )
    done = run_python(code, {"WATCHDOG_USEC": "1500000"})
    assert done.stdout.strip() == "1.5"
    parent = run_python(
        "from dropbox_importer.systemd import watchdog_interval\nprint(watchdog_interval())",
        {"WATCHDOG_USEC": "1500000", "WATCHDOG_PID": str(os.getpid())},
    )
    assert parent.stdout.strip() == "None"
