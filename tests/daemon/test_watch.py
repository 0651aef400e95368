"""The inbox watcher reports new files in both modes, nested folders included."""

import os
import threading
import time
from pathlib import Path

import pytest

from dropbox_importer.pipeline.watch import (
    NETWORK_FILESYSTEMS,
    InboxWatcher,
    WatchMode,
    choose_mode,
    filesystem_type,
    scan_inbox,
)


class Seen:
    def __init__(self) -> None:
        self.paths: set[Path] = set()
        self.closed: set[Path] = set()
        self.changed = threading.Condition()

    def __call__(self, path: Path, closed: bool) -> None:
        with self.changed:
            self.paths.add(path)
            if closed:
                self.closed.add(path)
            self.changed.notify_all()

    def wait_for(self, path: Path, timeout: float = 10.0, *, closed: bool = False) -> bool:
        deadline = time.monotonic() + timeout
        with self.changed:
            while path not in (self.closed if closed else self.paths):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(left)
        return True


@pytest.mark.parametrize("mode", [WatchMode.EVENTS, WatchMode.POLLING])
def test_watcher_reports_existing_new_nested_and_renamed_files(
    tmp_path: Path, mode: WatchMode
) -> None:
    inbox = tmp_path / "inbox"
    (inbox / "csv").mkdir(parents=True)
    existing = inbox / "csv" / "before.csv"
    existing.write_text("email\n")
    seen = Seen()
    watcher = InboxWatcher(inbox, mode, seen, polling_interval=0.2)
    watcher.start()
    try:
        assert seen.wait_for(existing)
        nested = inbox / "csv" / "list=5"
        nested.mkdir()
        new = nested / "new.csv"
        new.write_text("email\n")
        assert seen.wait_for(new)
        partial = inbox / "csv" / "up.csv.filepart"
        partial.write_text("email\n")
        final = inbox / "csv" / "up.csv"
        partial.rename(final)
        assert seen.wait_for(final)
    finally:
        watcher.stop()


def test_inotify_tells_when_a_writer_closed_a_file_or_renamed_it_into_place(
    tmp_path: Path,
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    seen = Seen()
    watcher = InboxWatcher(inbox, WatchMode.EVENTS, seen)
    watcher.start()
    try:
        path = inbox / "held.csv"
        writer = path.open("w")
        writer.write("email\n")
        writer.flush()
        assert seen.wait_for(path)
        assert path not in seen.closed  # written, still open
        writer.close()
        assert seen.wait_for(path, closed=True)
        staged = inbox / "up.csv.partial"
        staged.write_text("email\n")
        staged.rename(inbox / "up.csv")
        assert seen.wait_for(inbox / "up.csv", closed=True)
    finally:
        watcher.stop()


def test_folder_moved_in_whole_is_scanned(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    staged = tmp_path / "staged"
    staged.mkdir()
    (staged / "a.csv").write_text("email\n")
    seen = Seen()
    watcher = InboxWatcher(inbox, WatchMode.EVENTS, seen)
    watcher.start()
    try:
        staged.rename(inbox / "csv")
        assert seen.wait_for(inbox / "csv" / "a.csv")
    finally:
        watcher.stop()


def test_scan_does_not_follow_symlinked_folders(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text("x")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "csv").symlink_to(outside, target_is_directory=True)
    found = list(scan_inbox(inbox))
    # The link itself is listed (so it can be set aside), never what it points to.
    assert found == [inbox / "csv"]


def test_auto_mode_uses_events_on_a_local_filesystem(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text(f"server:/export {tmp_path}/share nfs4 rw 0 0\n/dev/vda / ext4 rw 0 0\n")
    (tmp_path / "share").mkdir()
    assert filesystem_type(tmp_path / "share" / "x", mounts) == "nfs4"
    assert filesystem_type(tmp_path / "elsewhere", mounts) == "ext4"
    assert choose_mode("auto", tmp_path / "share", mounts) is WatchMode.POLLING
    assert choose_mode("auto", tmp_path / "elsewhere", mounts) is WatchMode.EVENTS
    # This machine's own mounts: the test folder is on a local filesystem.
    assert filesystem_type(tmp_path) not in NETWORK_FILESYSTEMS
    assert choose_mode("auto", tmp_path) is WatchMode.EVENTS
    assert choose_mode("polling", tmp_path) is WatchMode.POLLING
    assert choose_mode("events", tmp_path) is WatchMode.EVENTS


def test_mount_points_are_decoded_with_the_kernels_octal_escapes_only(tmp_path: Path) -> None:
    # The kernel writes a name's UTF-8 bytes as they are and escapes only space, tab, newline
    # and backslash in octal: an NFS share named `partagé` must still be taken for NFS.
    share = tmp_path / "partagé"
    spaced = tmp_path / "two words"
    share.mkdir()
    spaced.mkdir()
    mounts = tmp_path / "mounts"
    mounts.write_bytes(
        b"server:/export " + os.fsencode(share) + b" nfs4 rw 0 0\n"
        + b"//host/x " + os.fsencode(spaced).replace(b" ", b"\\040") + b" cifs rw 0 0\n"
        + b"/dev/vda / ext4 rw 0 0\n"
    )  # fmt: skip
    assert filesystem_type(share / "inbox", mounts) == "nfs4"
    assert choose_mode("auto", share, mounts) is WatchMode.POLLING
    assert filesystem_type(spaced, mounts) == "cifs"
    assert filesystem_type(tmp_path / "partage", mounts) == "ext4"
