"""Hostile drop boxes, end to end: links, special files, odd names, files that move under us.

Each case ends the same way: the entry is left untouched or moved with a reason, nothing is
ever read through a link (no lead of a linked file reaches the sandbox), and the daemon is still
running: alive, and a normal file dropped afterwards still imports.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.daemon.harness import DaemonProcess, originals_under, wait_for, write_config

pytestmark = pytest.mark.slow

FAST = {"rows_per_second": 5000.0, "job_overhead_seconds": 0.02, "window_seconds": 2.0}
LEAK = "leak@outside.example.com"


@dataclass
class Box:
    """A running daemon on one drop box, with its sandbox."""

    root: Path
    daemon: DaemonProcess
    sandbox: Any

    @property
    def inbox(self) -> Path:
        """The csv route folder of the inbox, created."""
        folder = self.root / "inbox" / "csv"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def leads(self) -> set[str]:
        """Every email the sandbox holds."""
        reply = requests.get(f"{self.sandbox.base_url}/sandbox/leads.json", timeout=10)
        return {lead["fields"]["email"] for lead in reply.json()["leads"]}

    def batches(self) -> list[dict[str, Any]]:
        """Every batch the sandbox was sent."""
        reply = requests.get(f"{self.sandbox.base_url}/sandbox/batches.json", timeout=10)
        batches: list[dict[str, Any]] = reply.json()["batches"]
        return batches

    def events(self, name: str) -> list[dict[str, Any]]:
        """The daemon's log events named `name`."""
        return [e for e in self.daemon.events() if e.get("event") == name]

    def assert_still_imports(self, route: str = "csv") -> None:
        """The daemon is alive and imports a normal file dropped now."""
        assert not self.daemon.proc_exited(), self.daemon.log_path.read_text()[-3000:]
        email = f"ok-{uuid.uuid4().hex[:8]}@example.com"
        name = f"normal-{email[3:11]}.csv"
        folder = self.root / "inbox" / route
        folder.mkdir(parents=True, exist_ok=True)
        staging = folder / f".{name}.uploading"
        staging.write_text(f"email\n{email}\n")
        staging.rename(folder / name)
        wait_for((self.root / "done" / route / name).exists, timeout=30, what=f"{name} in done/")
        assert email in self.leads()
        assert not self.daemon.proc_exited()


@pytest.fixture
def start_box(tmp_path: Path, make_sandbox: Callable[..., Any]) -> Iterator[Callable[..., Box]]:
    """A factory: `start_box(root=..., **box_options)` runs a daemon on one drop box."""
    daemons: list[DaemonProcess] = []

    def start(root: Path | None = None, sandbox: dict[str, Any] | None = None, **box: Any) -> Box:
        running = make_sandbox(**{**FAST, **(sandbox or {})})
        root = root or tmp_path / "box"
        config = write_config(
            tmp_path,
            base_url=running.base_url,
            client_id=running.settings.client_id,
            client_secret=running.settings.client_secret,
            dropboxes={"box": {"root": str(root), "rescan_seconds": 0.5, **box}},
        )
        daemon = DaemonProcess(config, tmp_path / "daemon.log").start()
        daemons.append(daemon)
        return Box(root, daemon, running)

    yield start
    for daemon in daemons:
        daemon.stop()


def outside_file(tmp_path: Path) -> Path:
    """A lead file outside the drop box: importing it would be a leak."""
    secret = tmp_path / "outside" / "secret.csv"
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_text(f"email\n{LEAK}\n")
    return secret


# -- links and special files -----------------------------------------------------------------


@pytest.mark.parametrize("watch", ["events", "polling"])
def test_links_to_files_and_folders_outside_are_never_followed(
    tmp_path: Path, start_box: Callable[..., Box], watch: str
) -> None:
    secret = outside_file(tmp_path)
    box = start_box(watch=watch, polling_interval_seconds=0.2)
    inbox = box.inbox
    (inbox / "file-link.csv").symlink_to(secret)
    os.link(secret, inbox / "hard-link.csv")
    (inbox / "dir-link").symlink_to(secret.parent, target_is_directory=True)
    # A whole route folder that is a link: files "inside" it live outside the drop box.
    (box.root / "inbox" / "tsv").symlink_to(secret.parent, target_is_directory=True)
    (inbox / "dangling.csv").symlink_to(tmp_path / "nowhere.csv")
    wait_for(lambda: len(box.events("not_a_regular_file")) >= 5, timeout=20, what="links set aside")
    box.assert_still_imports()
    assert LEAK not in box.leads()
    assert secret.read_text() == f"email\n{LEAK}\n" and secret.stat().st_nlink == 2
    assert (inbox / "file-link.csv").is_symlink() and (inbox / "hard-link.csv").is_file()
    assert (inbox / "dir-link").is_symlink() and (box.root / "inbox" / "tsv").is_symlink()
    for folder in ("processing", "done", "failed"):
        assert not [p for p in originals_under(box.root / folder) if "normal-" not in p.name]


def test_a_file_inside_a_linked_folder_is_not_claimed_through_the_link(
    tmp_path: Path, start_box: Callable[..., Box]
) -> None:
    secret = outside_file(tmp_path)
    box = start_box(watch="events")
    (box.root / "inbox" / "linked").symlink_to(secret.parent, target_is_directory=True)
    # An event for a path through the link (a watcher that followed it, an operator's
    # script) must not make the daemon move the outside file.
    (secret.parent / "another.csv").write_text(f"email\n{LEAK}\n")
    box.assert_still_imports()
    assert secret.exists() and (secret.parent / "another.csv").exists()
    assert LEAK not in box.leads()


def test_fifo_and_device_files_are_set_aside_without_being_opened(
    tmp_path: Path, start_box: Callable[..., Box]
) -> None:
    box = start_box()
    os.mkfifo(box.inbox / "pipe.csv")
    expected = 1
    if os.geteuid() == 0:
        os.mknod(box.inbox / "null.csv", 0o600 | 0o020000, os.makedev(1, 3))
        expected = 2
    wait_for(lambda: len(box.events("not_a_regular_file")) >= expected, what="set aside")
    box.assert_still_imports()
    assert (box.inbox / "pipe.csv").exists()  # a reader of the fifo would have blocked
    if expected == 1:
        pytest.skip("mknod needs root: the device-file case did not run")


def test_a_directory_named_like_a_file_is_left_alone(
    tmp_path: Path, start_box: Callable[..., Box]
) -> None:
    box = start_box()
    (box.inbox / "leads.csv").mkdir()
    box.assert_still_imports()
    assert (box.inbox / "leads.csv").is_dir()
    assert not originals_under(box.root / "failed")


# -- names -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "new\nline.csv",
        "bell\x07 and \x1b[31mred.csv",
        "-rf.csv",
        "--help.csv",
        " spaced .csv",
        "x" * 196 + ".csv",  # 200 bytes: the longest name that still gets its result files
    ],
    ids=["newline", "control", "dash", "double-dash", "spaces", "200-bytes"],
)
def test_odd_names_are_imported_with_their_name_kept(
    tmp_path: Path, start_box: Callable[..., Box], name: str
) -> None:
    box = start_box()
    email = f"odd-{uuid.uuid4().hex[:8]}@example.com"
    (box.inbox / name).write_text(f"email\n{email}\n")
    final = box.root / "done" / "csv" / name
    wait_for(final.exists, timeout=30, what="odd name in done/")
    result = json.loads(final.with_name(name + ".result.json").read_text())
    assert result["file"] == name and result["outcome"] == "done"
    assert email in box.leads()
    box.assert_still_imports()


@pytest.mark.parametrize(
    "name",
    [os.fsdecode(b"x" * 251 + b".csv"), os.fsdecode("é".encode() * 125 + b".csv")],
    ids=["255-ascii", "254-utf8"],
)
def test_a_name_too_long_for_its_result_files_is_left_in_the_inbox_with_a_reason(
    tmp_path: Path, start_box: Callable[..., Box], name: str
) -> None:
    box = start_box()
    (box.inbox / name).write_text("email\nlong@example.com\n")
    wait_for(lambda: box.events("not_a_regular_file"), what="long name set aside")
    [event] = box.events("not_a_regular_file")
    assert "bytes" in event["reason"] and "shorter" in event["reason"]
    box.assert_still_imports()
    assert (box.inbox / name).exists()
    assert not box.events("settle_failed")


def test_a_name_that_is_not_utf8_is_left_in_the_inbox_with_a_reason(
    tmp_path: Path, start_box: Callable[..., Box]
) -> None:
    box = start_box()
    name = os.fsdecode(b"caf\xe9-latin1.csv")
    (box.inbox / name).write_text("email\nlatin@example.com\n")
    wait_for(lambda: box.events("not_a_regular_file"), what="latin-1 name set aside")
    [event] = box.events("not_a_regular_file")
    assert "UTF-8" in event["reason"]
    box.assert_still_imports()
    assert (box.inbox / name).exists()
    assert "latin@example.com" not in box.leads()


def test_claim_refuses_a_path_through_a_linked_route_folder(tmp_path: Path) -> None:
    # No watcher reports such a path today; claim() refuses it all the same, as a last line.
    from dropbox_importer.dropbox.layout import DropboxLayout, NotARegularFile, claim

    secret = outside_file(tmp_path)
    layout = DropboxLayout(tmp_path / "box")
    layout.ensure()
    (layout.inbox / "linked").symlink_to(secret.parent, target_is_directory=True)
    with pytest.raises(NotARegularFile, match="symbolic link"):
        claim(layout, layout.inbox / "linked" / secret.name)
    assert secret.read_text() == f"email\n{LEAK}\n"
    assert not originals_under(layout.processing)


# -- files that vanish or change -------------------------------------------------------------


def slow_preflight() -> dict[str, Any]:
    """Sandbox overrides that hold the first preflight call (describe.json) for 2 s.

    That is a window, between the claim and the file being read again to be cut into parts,
    in which a test can act on the claimed file without racing the daemon.
    """
    from dropbox_importer.sandbox import FaultSettings

    return {"faults": FaultSettings(latency_seconds=2.0, latency_rate=1.0, endpoints=("describe",))}


def test_temporary_and_system_files_are_left_in_place_and_logged_once(
    tmp_path: Path, start_box: Callable[..., Box]
) -> None:
    box = start_box()
    leftovers = {
        "desktop.ini": "[.ShellClassInfo]\nIconResource=C:\\icon.ico\n",
        "Thumbs.db": "\0\0binary",
        "~$leads.xlsx": "owner",
        "leads.csv.a1b2c3.partial": "email\npartial@example.com\n",  # rclone, mid-upload
    }
    for name, text in leftovers.items():
        (box.inbox / name).write_text(text)
    wait_for(
        lambda: len(box.events("file_ignored")) >= len(leftovers), what="every leftover logged"
    )
    # rclone's final rename of the same upload is imported, once.
    (box.inbox / "leads.csv.a1b2c3.partial").rename(box.inbox / "leads.csv")
    wait_for((box.root / "done" / "csv" / "leads.csv").exists, what="leads.csv in done/")
    box.assert_still_imports()  # and a rescan (every 0.5 s here) has passed meanwhile
    for name, text in leftovers.items():
        if name.endswith(".partial"):
            continue
        assert (box.inbox / name).read_text() == text, name  # left in place, untouched
    logged = [Path(e["file"]).name for e in box.events("file_ignored")]
    assert sorted(n for n in logged if not n.startswith(".")) == sorted(leftovers)
    assert not originals_under(box.root / "failed")
    assert "partial@example.com" in box.leads()


def test_a_file_deleted_before_it_settles_is_forgotten(
    tmp_path: Path, start_box: Callable[..., Box]
) -> None:
    box = start_box(settle_seconds=1.0)
    (box.inbox / "gone.csv").write_text("email\ngone@example.com\n")
    (box.inbox / "gone.csv").unlink()
    box.assert_still_imports()
    assert "gone@example.com" not in box.leads()
    assert not box.events("submit_crashed") and not box.events("claim_failed")


def test_a_claimed_file_deleted_while_processed_is_recorded_as_failed(
    tmp_path: Path, start_box: Callable[..., Box]
) -> None:
    box = start_box(sandbox=slow_preflight())
    (box.inbox / "vanish.csv").write_text("email\nvanish@example.com\n")
    claimed = box.root / "processing" / "csv" / "vanish.csv"
    wait_for(claimed.exists, what="vanish.csv claimed")
    claimed.unlink()  # an operator's clean-up, or a partner with rights there
    box.assert_still_imports()
    assert not box.events("submit_crashed")
    wait_for(lambda: box.events("file_failed"), timeout=10, what="vanish.csv recorded as failed")


def test_a_file_that_grows_after_it_was_claimed_is_imported_again_whole(
    tmp_path: Path, start_box: Callable[..., Box]
) -> None:
    # writer_check: off stands for a writer the daemon cannot see (another host of a share).
    box = start_box(sandbox=slow_preflight(), settle_seconds=0.3, writer_check="off")
    path = box.inbox / "growing.csv"
    with path.open("w") as writer:  # an upload that paused longer than settle_seconds
        writer.write("email\nfirst@example.com\n")
        writer.flush()
        claimed = box.root / "processing" / "csv" / "growing.csv"
        wait_for(claimed.exists, what="growing.csv claimed mid-upload")
        writer.write("late@example.com\n")  # the rename did not stop the writer
    final = box.root / "done" / "csv" / "growing.csv"
    wait_for(final.exists, timeout=30, what="growing.csv in done/")
    assert {"first@example.com", "late@example.com"} <= box.leads()
    result = json.loads(final.with_name("growing.csv.result.json").read_text())
    # Round 1 read the file when it was cut: after the late row on a slow machine (one round),
    # else before it, and the change then made a second round. Either way, the whole file.
    assert result["outcome"] == "done" and result["rounds"] in (1, 2)
    assert result["original"]["size"] == final.stat().st_size
    assert result["imported"]["size"] == final.stat().st_size
    assert result["counts"]["leads_processed"] == 2
    assert bool(box.events("file_changed_after_claim")) == (result["rounds"] == 2)
    box.assert_still_imports()


# -- a read-only done/ and a full disk -------------------------------------------------------


def chattr(flag: str, path: Path) -> bool:
    """Set or clear a file attribute; False when the tool or the filesystem can't."""
    try:
        done = subprocess.run(["chattr", flag, str(path)], capture_output=True, timeout=10)
    except FileNotFoundError:
        return False
    return done.returncode == 0


def test_a_read_only_done_folder_keeps_the_file_in_processing_until_a_restart(
    tmp_path: Path, start_box: Callable[..., Box]
) -> None:
    box = start_box()
    done = box.root / "done"
    (done / "tsv").mkdir(parents=True)
    # Root ignores permission bits: the immutable attribute refuses even root.
    if not chattr("+i", done):
        pytest.skip("chattr +i is not available here (needs root and a supporting filesystem)")
    try:
        (box.inbox / "blocked.csv").write_text("email\nblocked@example.com\n")
        wait_for(lambda: box.events("settle_move_failed"), what="the failed move logged")
        [event] = box.events("settle_move_failed")
        assert "writable" in event["reason"]
        assert (box.root / "processing" / "csv" / "blocked.csv").exists()
        box.assert_still_imports(route="tsv")  # other routes' folders still take files
    finally:
        chattr("-i", done)
    box.daemon.stop()
    box.daemon.start()  # recovery finishes the recorded move
    final = done / "csv" / "blocked.csv"
    wait_for(final.exists, what="blocked.csv in done/ after the restart")
    assert final.read_text() == "email\nblocked@example.com\n"
    assert final.with_name("blocked.csv.result.json").exists()
    box.assert_still_imports()


def test_a_file_that_could_not_settle_moves_once_the_folder_is_writable_again(
    tmp_path: Path, start_box: Callable[..., Box]
) -> None:
    box = start_box()
    done = box.root / "done"
    if not chattr("+i", done):
        pytest.skip("chattr +i is not available here (needs root and a supporting filesystem)")
    try:
        (box.inbox / "later.csv").write_text("email\nlater@example.com\n")
        wait_for(lambda: box.events("settle_move_failed"), what="the failed move logged")
    finally:
        chattr("-i", done)
    wait_for((done / "csv" / "later.csv").exists, timeout=6, what="later.csv settled")


def fill(folder: Path) -> Path:
    """Write a file into `folder` until its filesystem is full; return it."""
    filler = folder / "filler.part"  # an ignored name: the daemon never takes it
    with filler.open("wb", buffering=0) as out:  # unbuffered: close has nothing left to write
        try:
            while True:
                out.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def test_a_full_disk_keeps_the_file_in_processing_and_the_daemon_running(
    tmp_path: Path, start_box: Callable[..., Box]
) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    # The mount hides the folder's owner and mode: give them back, for the daemon's user.
    os.chown(disk, tmp_path.stat().st_uid, tmp_path.stat().st_gid)
    disk.chmod(tmp_path.stat().st_mode & 0o7777)
    try:
        box = start_box(root=disk / "box", sandbox=slow_preflight())
        (box.inbox / "full.csv").write_text("email\nfull@example.com\n")
        claimed = box.root / "processing" / "csv" / "full.csv"
        wait_for(claimed.exists, what="full.csv claimed")
        filler = fill(box.inbox)  # while the first preflight is held for 2 s
        wait_for(lambda: box.events("settle_move_failed"), what="the failed move logged")
        [event] = box.events("settle_move_failed")
        assert "No space left" in event["reason"]
        assert claimed.read_text() == "email\nfull@example.com\n"
        assert not box.daemon.proc_exited()
        filler.unlink()
        box.daemon.stop()
        box.daemon.start()
        final = box.root / "done" / "csv" / "full.csv"
        wait_for(final.exists, what="full.csv in done/ once there is room")
        assert final.with_name("full.csv.result.json").exists()
        box.assert_still_imports()
    finally:
        for daemon in [box.daemon] if "box" in locals() else []:
            daemon.stop()
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


# -- many files ------------------------------------------------------------------------------

# 2,000 rather than 10,000 by default: the one submitter thread per instance creates about 55
# batches a second here (a journal transaction with fsync per step), so 10,000 would take
# minutes of `make test` (measured: 10,000 files claimed in 2 min, batches created at ~25/s,
# about 7 min in all). DBI_TEST_MANY_FILES=10000 runs the full count.
MANY = int(os.environ.get("DBI_TEST_MANY_FILES", "2000"))


@pytest.mark.timeout(max(300, MANY // 10))  # 2,000 take 40-70 s on a busy 2-core machine
def test_thousands_of_files_in_one_folder_all_end_in_done(
    tmp_path: Path, make_sandbox: Callable[..., Any]
) -> None:
    sandbox = make_sandbox(
        rows_per_second=1_000_000.0, job_overhead_seconds=0.0, window_seconds=0.05
    )
    root = tmp_path / "many"
    config = write_config(
        tmp_path,
        base_url=sandbox.base_url,
        client_id=sandbox.settings.client_id,
        client_secret=sandbox.settings.client_secret,
        dropboxes={"many": {"root": str(root), "settle_seconds": 0.2, "rescan_seconds": 5}},
        instance={"window_seconds": 0.05, "poll_min_seconds": 0.05, "poll_max_seconds": 0.2},
    )
    inbox = root / "inbox" / "csv"
    inbox.mkdir(parents=True)
    for n in range(MANY):
        (inbox / f"f{n:05}.csv").write_bytes(f"email\nm{n}@example.com\n".encode())
    began = time.monotonic()
    daemon = DaemonProcess(config, tmp_path / "daemon.log").start()
    try:
        wait_for(
            lambda: len(list((root / "done" / "csv").glob("*.csv.result.json"))) >= MANY,
            timeout=max(240.0, MANY / 12),
            what=f"{MANY} files in done/",
        )
        seconds = time.monotonic() - began
        print(f"{MANY} files in one folder imported in {seconds:.1f} s")
        assert len(originals_under(root / "done")) == MANY
        assert not originals_under(root / "failed") and not originals_under(root / "inbox")
        reply = requests.get(f"{sandbox.base_url}/sandbox/leads.json", timeout=30)
        assert len(reply.json()["leads"]) == MANY
        assert not daemon.proc_exited()
    finally:
        assert daemon.stop(timeout=30) == 0
