"""The daemon under systemd and an operator: notify socket, reload, marker files, set-aside."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.daemon.harness import DaemonProcess, originals_under, wait_for, write_config

pytestmark = pytest.mark.slow

FAST = {"rows_per_second": 2000.0, "job_overhead_seconds": 0.05, "window_seconds": 2.0}


def config_for(tmp_path: Path, sandbox: Any, boxes: dict[str, dict[str, Any]]) -> Path:
    return write_config(
        tmp_path,
        base_url=sandbox.base_url,
        client_id=sandbox.settings.client_id,
        client_secret=sandbox.settings.client_secret,
        dropboxes=boxes,
    )


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(0.2)
    yield sock
    sock.close()


def received(sock: socket.socket, into: list[str]) -> list[str]:
    """Drain every datagram waiting on `sock` into `into`."""
    while True:
        try:
            into.extend(sock.recv(4096).decode().splitlines())
        except TimeoutError:
            return into


def test_daemon_tells_systemd_it_is_ready_alive_and_stopping(
    tmp_path: Path, make_sandbox: Callable[..., Any], notify_socket: socket.socket
) -> None:
    sandbox = make_sandbox(**FAST)
    config = config_for(tmp_path, sandbox, {"box": {"root": str(tmp_path / "box")}})
    daemon = DaemonProcess(
        config,
        tmp_path / "daemon.log",
        env={"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "600000"},
    )
    daemon.start()
    messages: list[str] = []
    try:
        wait_for(lambda: "READY=1" in received(notify_socket, messages), what="READY=1")
        assert any(m.startswith("STATUS=") and "waiting" in m for m in messages)
        # WatchdogSec=0.6 s: pings must keep coming, more often than every 0.6 s.
        wait_for(
            lambda: received(notify_socket, messages).count("WATCHDOG=1") >= 3,
            timeout=10,
            what="three watchdog pings",
        )
    finally:
        assert daemon.stop() == 0
    assert "STOPPING=1" in received(notify_socket, messages)


def test_sighup_reloads_a_valid_config_and_keeps_the_old_one_otherwise(
    tmp_path: Path, make_sandbox: Callable[..., Any]
) -> None:
    sandbox = make_sandbox(**FAST)
    first, second = tmp_path / "first", tmp_path / "second"
    config = config_for(tmp_path, sandbox, {"first": {"root": str(first)}})
    daemon = DaemonProcess(config, tmp_path / "daemon.log").start()
    try:
        data = yaml.safe_load(config.read_text())
        data["dropboxes"]["second"] = {**data["dropboxes"]["first"], "root": str(second)}
        config.write_text(yaml.safe_dump(data))
        daemon.signal(signal.SIGHUP)
        wait_for(lambda: daemon.count("config_reloaded") == 1, what="config_reloaded")
        (second / "inbox" / "csv").mkdir(parents=True, exist_ok=True)
        (second / "inbox" / "csv" / "new.csv").write_text("email\nnew@example.com\n")
        wait_for((second / "done" / "csv" / "new.csv").exists, timeout=30, what="new box imports")
        config.write_text("instances: [this is not a config\n")
        daemon.signal(signal.SIGHUP)
        wait_for(lambda: daemon.count("config_reload_rejected") == 1, what="reload rejected")
        (first / "inbox" / "csv").mkdir(parents=True, exist_ok=True)
        (first / "inbox" / "csv" / "still.csv").write_text("email\nstill@example.com\n")
        wait_for((first / "done" / "csv" / "still.csv").exists, timeout=30, what="old config works")
    finally:
        assert daemon.stop() == 0


@pytest.mark.parametrize("marker", ["done", "ok"])
def test_marker_file_holds_a_file_back_until_it_appears(
    tmp_path: Path, make_sandbox: Callable[..., Any], marker: str
) -> None:
    sandbox = make_sandbox(**FAST)
    root = tmp_path / "box"
    config = config_for(
        tmp_path, sandbox, {"box": {"root": str(root), "ready_marker": marker, "settle_seconds": 0}}
    )
    daemon = DaemonProcess(config, tmp_path / "daemon.log").start()
    try:
        inbox = root / "inbox" / "csv"
        inbox.mkdir(parents=True)
        (inbox / "held.csv").write_text("email\nheld@example.com\n")
        (inbox / "other.csv").write_text("email\nother@example.com\n")
        (inbox / f"other.csv.{marker}").touch()
        wait_for((root / "done" / "csv" / "other.csv").exists, timeout=30, what="other.csv")
        assert (inbox / "held.csv").exists()  # no marker: left alone, however long
        assert not (inbox / f"other.csv.{marker}").exists()  # a consumed marker is removed
        (inbox / f"held.csv.{marker}").touch()
        wait_for((root / "done" / "csv" / "held.csv").exists, timeout=30, what="held.csv")
    finally:
        daemon.stop()


def test_symlink_in_the_inbox_is_never_followed_and_the_daemon_carries_on(
    tmp_path: Path, make_sandbox: Callable[..., Any]
) -> None:
    sandbox = make_sandbox(**FAST)
    root = tmp_path / "box"
    secret = tmp_path / "outside.csv"
    secret.write_text("email\nleak@example.com\n")
    # Rescans every 0.3 s, so the entries are seen many times while the test runs.
    config = config_for(tmp_path, sandbox, {"box": {"root": str(root), "rescan_seconds": 0.3}})
    daemon = DaemonProcess(config, tmp_path / "daemon.log").start()
    try:
        inbox = root / "inbox" / "csv"
        inbox.mkdir(parents=True)
        (inbox / "link.csv").symlink_to(secret)
        os.mkfifo(inbox / "pipe.csv")
        wait_for(lambda: daemon.count("not_a_regular_file") >= 2, what="both set aside")
        (inbox / "real.csv").write_text("email\nreal@example.com\n")
        wait_for((root / "done" / "csv" / "real.csv").exists, timeout=30, what="real.csv")
        assert (inbox / "link.csv").is_symlink() and secret.read_text().startswith("email")
        assert daemon.count("not_a_regular_file") == 2  # logged once each, not every rescan
        assert not originals_under(root / "processing")
    finally:
        daemon.stop()
