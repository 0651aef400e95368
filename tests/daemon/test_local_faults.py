"""A folder, a file or a drop box the daemon cannot use stops nothing else, and is served again.

The daemon runs unprivileged, as the unit runs it (tests/unprivileged.py), so permission bits
bind it. In every case: the fault is reported once, with its drop box and route, in the log,
in `status` and in `check`; files of every other folder and drop box still reach done/; the
daemon keeps running; and once the fault is fixed the folder is served again.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.daemon.harness import DaemonProcess, wait_for, write_config
from tests.unprivileged import Current, ServiceAccount

pytestmark = pytest.mark.slow

FAST = {"rows_per_second": 5000.0, "job_overhead_seconds": 0.02, "window_seconds": 2.0}
NOBODY = 65534


@pytest.fixture
def unprivileged(service_account: ServiceAccount | None) -> ServiceAccount | None:
    """Skip when the daemon would run as root, where no permission bit binds it."""
    if os.geteuid() == 0 and service_account is None:
        pytest.skip("root without setpriv/useradd: the daemon would run as root")
    return service_account


def needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: gives a folder or a file to another user")


@dataclass
class Running:
    """A daemon on several drop boxes `tmp_path/<name>`, and its sandbox."""

    tmp_path: Path
    daemon: DaemonProcess
    sandbox: Any

    def root(self, name: str) -> Path:
        """The drop box's root, as the config on disk says now."""
        config = yaml.safe_load(self.daemon.config.read_text())
        return Path(config["dropboxes"][name]["root"])

    def events(self, name: str, **fields: Any) -> list[dict[str, Any]]:
        return [
            e
            for e in self.daemon.events()
            if e.get("event") == name and all(e.get(k) == v for k, v in fields.items())
        ]

    def drop(self, box: str, relative: str, text: str) -> Path:
        target = self.root(box) / "inbox" / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_name(f".{target.name}.uploading")
        staging.write_text(text)
        staging.rename(target)
        return target

    def assert_imports(self, box: str, route: str = "csv") -> None:
        """The daemon is alive and a normal file dropped now in `box` reaches done/."""
        assert not self.daemon.proc_exited(), self.daemon.log_path.read_text()[-3000:]
        email = f"ok-{uuid.uuid4().hex[:8]}@example.com"
        name = f"normal-{email[3:11]}.csv"
        self.drop(box, f"{route}/{name}", f"email\n{email}\n")
        final = self.root(box) / "done" / route / name
        wait_for(final.exists, timeout=30, what=f"{box}: {name} in done/")
        assert not self.daemon.proc_exited()

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A command of the CLI, run as the daemon's user (what it sees is what it reports)."""
        prefix = Current.account.command() if Current.account is not None else []
        return subprocess.run(
            [*prefix, sys.executable, "-m", "dropbox_importer", *args,
             "--config", str(self.daemon.config)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    def reported(self, box: str) -> list[dict[str, Any]]:
        """What `status --json` says the daemon reported for `box`."""
        done = self.cli("status", "--json")
        document = json.loads(done.stdout)
        [entry] = [b for b in document["dropboxes"] if b["name"] == box]
        reported: list[dict[str, Any]] = entry["reported"]
        return reported


Start = Callable[..., Running]


@pytest.fixture
def start(
    tmp_path: Path, make_sandbox: Callable[..., Any], unprivileged: ServiceAccount | None
) -> Iterator[Start]:
    """`start(a={...}, b={...})`: the daemon on drop boxes tmp_path/a, tmp_path/b, ..."""
    started: list[DaemonProcess] = []

    def run(**boxes: dict[str, Any]) -> Running:
        sandbox = make_sandbox(**FAST)
        config = write_config(
            tmp_path,
            base_url=sandbox.base_url,
            client_id=sandbox.settings.client_id,
            client_secret=sandbox.settings.client_secret,
            dropboxes={
                name: {"root": str(tmp_path / name), "rescan_seconds": 0.5, **options}
                for name, options in boxes.items()
            },
        )
        daemon = DaemonProcess(config, tmp_path / "daemon.log").start()
        started.append(daemon)
        return Running(tmp_path, daemon, sandbox)

    yield run
    for daemon in started:
        assert daemon.stop() == 0, "the daemon did not stop cleanly on SIGTERM"


def folder_lines(report: str, box: str) -> list[str]:
    """`check`'s line about a drop box's folders (not the policy lines below it)."""
    return [
        line
        for line in report.splitlines()
        if line.startswith(f"drop box {box}: ") and "who can" not in line
    ]


def leads(sandbox: Any) -> set[str]:
    reply = requests.get(f"{sandbox.base_url}/sandbox/leads.json", timeout=10)
    return {lead["fields"]["email"] for lead in reply.json()["leads"]}


# -- folders a partner made unusable -----------------------------------------------------------


@pytest.mark.parametrize("mode", [0o444, 0o000], ids=["0444", "000"])
def test_an_unreadable_route_folder_is_reported_once_and_served_again_once_fixed(
    tmp_path: Path, start: Start, mode: int
) -> None:
    # What a partner can do over plain SFTP: mkdir inbox/x/y; chmod 0444 inbox/x.
    x = tmp_path / "a" / "inbox" / "ssv"
    held = x / "list=1001" / "held.csv"
    held.parent.mkdir(parents=True)
    held.write_text("email\nheld@example.com\n")
    x.chmod(mode)
    running = start(a={}, b={})
    wait_for(lambda: running.events("folder_unusable", dropbox="a"), what="the folder reported")
    running.assert_imports("a")
    running.assert_imports("b")
    wait_for(lambda: len(running.events("inbox_rescanned", dropbox="a")) >= 4, what="rescans")
    [event] = running.events("folder_unusable", dropbox="a")  # once, however many rescans
    assert event["route"] == "ssv" and event["folder"] == str(x)
    assert event["stage"] == "scan" and "Permission denied" in event["reason"]
    [reported] = running.reported("a")
    assert reported["route"] == "ssv" and "Permission denied" in reported["reason"]
    assert running.reported("b") == []
    checked = running.cli("check")
    assert checked.returncode == 1
    [line] = folder_lines(checked.stdout, "a")
    assert "PROBLEM" in line and "inbox/ssv" in line
    assert "drop box b: folders OK" in checked.stdout

    x.chmod(0o2770)
    final = tmp_path / "a" / "done" / "ssv" / "list=1001" / "held.csv"
    wait_for(final.exists, what="held.csv imported once the folder is readable")
    assert final.read_text() == "email\nheld@example.com\n"
    wait_for(lambda: running.events("folder_usable_again", dropbox="a"), what="fix logged")
    assert running.reported("a") == []
    assert "held@example.com" in leads(running.sandbox)


def test_a_folder_made_unreadable_while_its_file_waits_for_its_marker(
    tmp_path: Path, start: Start
) -> None:
    running = start(a={"ready_marker": "ok"}, b={})
    waiting = running.drop("a", "tsv/wait.csv", "email\nwait@example.com\n")
    folder = waiting.parent
    # Time for the watcher's event: the tracker then looks at the file every tick while it
    # waits for wait.csv.ok.
    running.assert_imports("b")
    folder.chmod(0o000)
    wait_for(lambda: running.events("folder_unusable", dropbox="a"), what="the folder reported")
    running.assert_imports("b")
    folder.chmod(0o2770)
    (folder / "wait.csv.ok").write_text("")
    final = tmp_path / "a" / "done" / "tsv" / "wait.csv"
    wait_for(final.exists, what="wait.csv imported once its folder is readable and marked")
    assert not (folder / "wait.csv.ok").exists()  # the marker is removed at the claim
    assert len(running.events("folder_unusable", dropbox="a")) == 1


def test_a_folder_given_to_another_user_is_served_again_once_given_back(
    tmp_path: Path, start: Start
) -> None:
    needs_root()
    theirs = tmp_path / "a" / "inbox" / "tsv"
    theirs.mkdir(parents=True)
    (theirs / "later.csv").write_text("email\nlater@example.com\n")
    owner = theirs.stat()
    os.chown(theirs, NOBODY, NOBODY)
    theirs.chmod(0o700)
    running = start(a={}, b={})
    wait_for(lambda: running.events("folder_unusable", dropbox="a"), what="the folder reported")
    running.assert_imports("a")
    running.assert_imports("b")
    os.chown(theirs, owner.st_uid, owner.st_gid)
    theirs.chmod(0o2770)
    wait_for((tmp_path / "a" / "done" / "tsv" / "later.csv").exists, what="later.csv imported")


# -- files -----------------------------------------------------------------------------------


def test_a_read_only_file_is_imported_and_an_unreadable_one_fails_with_a_reason(
    tmp_path: Path, start: Start
) -> None:
    running = start(a={}, b={})
    inbox = tmp_path / "a" / "inbox" / "csv"
    inbox.mkdir(parents=True)
    for name, mode, email in (("ro.csv", 0o444, "ro@example.com"), ("no.csv", 0o000, "no@x.com")):
        staging = inbox / f".{name}"
        staging.write_text(f"email\n{email}\n")
        if os.geteuid() == 0:
            os.chown(staging, NOBODY, NOBODY)  # a partner's upload, not the daemon's file
        staging.chmod(mode)
        staging.rename(inbox / name)
    done = tmp_path / "a" / "done" / "csv" / "ro.csv"
    failed = tmp_path / "a" / "failed" / "csv" / "no.csv"
    wait_for(lambda: done.exists() and failed.exists(), what="ro.csv done, no.csv failed")
    assert done.read_text() == "email\nro@example.com\n"
    result = json.loads(failed.with_name("no.csv.result.json").read_text())
    assert result["outcome"] == "failed"
    assert "cannot read this file" in result["reason"] and "chmod g+r" in result["reason"]
    assert failed.read_text() == "email\nno@x.com\n"  # kept byte for byte
    assert "no@x.com" not in leads(running.sandbox)
    running.assert_imports("a")
    running.assert_imports("b")


# -- drop boxes whose root cannot be created -------------------------------------------------


def locked_root(tmp_path: Path) -> Path:
    """A root inside a folder the daemon's user may not write: it cannot be created."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    return locked / "box"


def unlock(root: Path) -> None:
    root.parent.chmod(0o2777)


def test_a_drop_box_whose_root_cannot_be_created_does_not_stop_the_others(
    tmp_path: Path, start: Start
) -> None:
    root = locked_root(tmp_path)
    running = start(a={"root": str(root)}, b={})
    [ready] = running.events("daemon_ready")
    assert ready["dropboxes"] == ["b"]
    [event] = running.events("dropbox_unavailable", dropbox="a")
    assert str(root) in event["reason"] and "Permission denied" in event["reason"]
    running.assert_imports("b")
    [reported] = running.reported("a")
    assert reported["stage"] == "dropbox"
    checked = running.cli("check")
    assert checked.returncode == 1
    [line] = folder_lines(checked.stdout, "a")
    assert "PROBLEM" in line and str(root) in line
    assert len(running.events("dropbox_unavailable", dropbox="a")) == 1

    unlock(root)
    wait_for(lambda: running.events("dropbox_available", dropbox="a"), what="a started")
    running.assert_imports("a")
    assert running.reported("a") == []


def test_a_reload_adding_a_drop_box_whose_root_cannot_be_created_applies_the_rest(
    tmp_path: Path, start: Start
) -> None:
    running = start(b={})
    config = yaml.safe_load(running.daemon.config.read_text())
    root = locked_root(tmp_path)
    template = config["dropboxes"]["b"]
    config["dropboxes"]["a"] = {**template, "root": str(root)}
    config["dropboxes"]["c"] = {**template, "root": str(tmp_path / "c")}
    running.daemon.config.write_text(yaml.safe_dump(config))
    running.daemon.signal(1)  # SIGHUP
    wait_for(lambda: running.events("config_reloaded"), what="the reload")
    [reloaded] = running.events("config_reloaded")
    assert reloaded["dropboxes"] == ["b", "c"] and reloaded["unavailable"] == ["a"]
    assert running.events("dropbox_unavailable", dropbox="a")
    running.assert_imports("c")
    running.assert_imports("b")
    unlock(root)
    wait_for(lambda: running.events("dropbox_available", dropbox="a"), what="a started")
    running.assert_imports("a")


# -- a drop box across two filesystems -------------------------------------------------------


def test_a_done_folder_on_another_filesystem_is_named_and_the_file_waits(
    tmp_path: Path, start: Start
) -> None:
    needs_root()
    done = tmp_path / "a" / "done"
    done.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(done)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        shutil.chown(done, group=tmp_path.stat().st_gid)
        done.chmod(0o2770)
        running = start(a={}, b={})
        running.drop("a", "csv/far.csv", "email\nfar@example.com\n")
        wait_for(lambda: running.events("settle_move_failed", dropbox="a"), what="the failed move")
        [event] = running.events("settle_move_failed", dropbox="a")
        assert "another filesystem" in event["reason"] and "one filesystem" in event["reason"]
        [problem] = running.events("folder_unusable", dropbox="a", stage="settle")
        assert problem["route"] == "csv"
        assert (tmp_path / "a" / "processing" / "csv" / "far.csv").exists()
        running.assert_imports("b")
    finally:
        subprocess.run(["umount", "-l", str(done)], capture_output=True)
