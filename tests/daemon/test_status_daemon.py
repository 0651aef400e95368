"""`status` against the real daemon: running or not, its config, failing instances, progress."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml

from dropbox_importer.cli import main as cli_main
from tests.daemon.harness import DaemonProcess, wait_for, write_config

pytestmark = pytest.mark.slow

FAST = {"rows_per_second": 2000.0, "job_overhead_seconds": 0.05, "window_seconds": 2.0}


# A line the test's in-process sandbox logged while stdout was redirected to catch `status`.
SANDBOX_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[\w+ *\] sandbox_.*\n", re.M)


def status(config: Path, *args: str) -> tuple[dict[str, Any], str]:
    """`status --json` and `status` as text, run in this process."""
    # The sandbox's threads log to stdout: keep their lines out of the captured document.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.__stderr__))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        cli_main(["status", "--config", str(config), "--json", *args])
    doc = json.loads(SANDBOX_LOG_LINE.sub("", out.getvalue()))
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        cli_main(["status", "--config", str(config), *args])
    return doc, SANDBOX_LOG_LINE.sub("", text.getvalue())


def box_of(doc: dict[str, Any], name: str = "box") -> dict[str, Any]:
    (box,) = [b for b in doc["dropboxes"] if b["name"] == name]
    return box


def instance_of(doc: dict[str, Any]) -> dict[str, Any]:
    (instance,) = doc["instances"]
    return instance


def config_for(
    tmp_path: Path, sandbox: Any, boxes: dict[str, dict[str, Any]], **instance: Any
) -> Path:
    return write_config(
        tmp_path,
        base_url=sandbox.base_url,
        client_id=sandbox.settings.client_id,
        client_secret=instance.pop("client_secret", sandbox.settings.client_secret),
        dropboxes=boxes,
        instance=instance,
    )


@pytest.fixture
def daemons() -> Iterator[list[DaemonProcess]]:
    """Daemons a test starts; each still running at the end must stop cleanly on SIGTERM."""
    started: list[DaemonProcess] = []
    yield started
    for daemon in started:
        assert daemon.stop() == 0


def test_status_tells_a_running_daemon_from_a_stopped_one_and_its_config_from_the_file(
    tmp_path: Path, make_sandbox: Callable[..., Any], daemons: list[DaemonProcess]
) -> None:
    sandbox = make_sandbox(**FAST)
    config = config_for(tmp_path, sandbox, {"box": {"root": str(tmp_path / "box")}})
    daemon = DaemonProcess(config, tmp_path / "daemon.log").start()
    daemons.append(daemon)
    assert daemon.proc is not None

    doc, text = status(config)
    assert doc["daemon"]["running"] is True
    assert doc["daemon"]["pid"] == daemon.proc.pid
    assert doc["daemon"]["config"]["matches_file"] is True
    assert box_of(doc)["live"] is True
    assert text.startswith("daemon: running since ")
    assert f"pid {daemon.proc.pid}, up " in text

    data = yaml.safe_load(config.read_text())
    data["dropboxes"]["box"]["settle_seconds"] = 1
    config.write_text(yaml.safe_dump(data))
    doc, text = status(config)
    assert doc["daemon"]["config"]["matches_file"] is False
    assert "config: the file CHANGED after the daemon read it" in text

    daemon.signal(signal.SIGHUP)
    wait_for(lambda: daemon.count("config_reloaded") == 1, what="config_reloaded")
    assert status(config)[0]["daemon"]["config"]["matches_file"] is True

    data["instances"]["main"]["poll_max_seconds"] = 2.0  # a key only a restart applies
    config.write_text(yaml.safe_dump(data))
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: daemon.count("config_reload_needs_restart") == 1, what="reload refused")
    doc, text = status(config)
    assert "restart" in doc["daemon"]["config"]["reload_rejected"]
    assert "config: the last reload was NOT APPLIED in full (file read at" in text
    assert "instances.main.poll_max_seconds need a restart" in text

    assert daemon.stop() == 0
    doc, text = status(config)
    assert doc["daemon"]["running"] is False
    assert doc["daemon"]["ended"] == "stopped"
    assert text.startswith("daemon: NOT RUNNING (stopped at ")


def test_a_long_import_shows_rows_processed_then_a_killed_daemon_holds_it(
    tmp_path: Path, make_sandbox: Callable[..., Any]
) -> None:
    slow = make_sandbox(rows_per_second=500.0, job_overhead_seconds=0.05, window_seconds=2.0)
    root = tmp_path / "box"
    config = config_for(tmp_path, slow, {"box": {"root": str(root)}})
    daemon = DaemonProcess(config, tmp_path / "daemon.log").start()
    inbox = root / "inbox" / "csv"
    inbox.mkdir(parents=True)
    rows = "".join(f"lead{n}@example.com\n" for n in range(3000))
    (inbox / "big.csv").write_text("email\n" + rows)

    def importing() -> dict[str, Any] | None:
        flying = box_of(status(config)[0])["in_flight"]
        if flying and 0 < flying[0]["rows"]["processed"] < 3000:
            return dict(flying[0])
        return None

    try:
        item = wait_for(importing, timeout=30, what="rows processed mid-import")
        assert item["why_code"] == "importing" and item["rows"]["total"] == 3000
        assert item["location"] == "processing/csv/big.csv"
        text = status(config)[1]
        assert "csv/big.csv  polling" in text and "of 3,000 rows" in text
    finally:
        daemon.kill()

    doc, text = status(config)
    assert doc["daemon"]["running"] is False
    assert doc["daemon"]["ended"] == "died (killed or crashed)"
    (item,) = box_of(doc)["in_flight"]
    assert item["why_code"] == "daemon_stopped"
    assert "the daemon is not running: resumes at its next start" in text


def test_refused_credentials_show_as_an_instance_that_needs_an_operator(
    tmp_path: Path, make_sandbox: Callable[..., Any], daemons: list[DaemonProcess]
) -> None:
    sandbox = make_sandbox(**FAST)
    root = tmp_path / "box"
    config = config_for(
        tmp_path, sandbox, {"box": {"root": str(root)}}, client_secret="not-the-secret"
    )
    daemons.append(DaemonProcess(config, tmp_path / "daemon.log").start())
    (root / "inbox" / "csv").mkdir(parents=True)
    (root / "inbox" / "csv" / "leads.csv").write_text("email\na@example.com\n")

    def held() -> dict[str, Any] | None:
        doc = status(config)[0]
        flying = box_of(doc)["in_flight"]
        noted = flying and flying[0]["why_code"] == "note"
        return doc if noted and instance_of(doc)["state"] == "needs_operator" else None

    doc = wait_for(held, timeout=30, what="the file held for an operator")
    instance = instance_of(doc)
    assert "the identity service refused client id" in instance["operator_reason"]
    assert "not-the-secret" not in json.dumps(doc)
    (item,) = box_of(doc)["in_flight"]
    assert item["why"].startswith("instance main needs an operator")
    text = status(config)[1]
    assert "instance main: NEEDS AN OPERATOR since" in text


def _immutable(folder: Path) -> Callable[[], None]:
    """Make `folder` refuse renames out of it, even to root; return how to undo it."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return lambda: folder.chmod(0o755)
    done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"root cannot make a folder read-only here (chattr: {done.stderr!r})")
    return lambda: subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_a_folder_the_daemon_cannot_move_files_out_of_shows_as_blocked(
    tmp_path: Path, make_sandbox: Callable[..., Any], daemons: list[DaemonProcess]
) -> None:
    sandbox = make_sandbox(**FAST)
    root = tmp_path / "box"
    config = config_for(tmp_path, sandbox, {"box": {"root": str(root)}})
    stuck = root / "inbox" / "csv"
    stuck.mkdir(parents=True)
    (stuck / "leads.csv").write_text("email\na@example.com\n")
    undo = _immutable(stuck)
    try:
        daemons.append(DaemonProcess(config, tmp_path / "daemon.log").start())

        def blocked() -> dict[str, Any] | None:
            box = box_of(status(config)[0])
            return box if box["blocked_folders"] else None

        box = wait_for(blocked, timeout=30, what="a blocked folder in status")
        (folder,) = box["blocked_folders"]
        assert folder["folder"] == "csv"
        assert "the daemon's user needs write permission on the folder" in folder["reason"]
        (waiting,) = box["waiting"]
        assert waiting["why_code"] == "blocked_folder"
        assert "BLOCKED FOLDER inbox/csv/" in status(config)[1]
    finally:
        undo()
    wait_for((root / "done" / "csv" / "leads.csv").exists, timeout=30, what="claimed once open")
    wait_for(
        lambda: not box_of(status(config)[0])["blocked_folders"], what="blocked folder cleared"
    )
