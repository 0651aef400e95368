"""When a dropped file counts as finished."""

import os
from pathlib import Path

import pytest
import structlog

from dropbox_importer.pipeline.ready import (
    ReadinessTracker,
    ends_with_line_end,
    ignored_because,
    is_ignored,
)

BUILT_IN_IGNORED = (
    ".leads.csv",
    "leads.csv.part",
    "leads.csv.filepart",
    "leads.csv.a1b2c3.partial",  # rclone
    "x.tmp",
    "~$leads.xlsx",  # Office lock file
    ".~lock.leads.csv#",  # LibreOffice lock file
    "._leads.csv",  # macOS resource fork on a foreign filesystem
    ".DS_Store",
    ".leads.csv.swp",
    "leads.csv.swp",
    "leads.csv~",
    "desktop.ini",
    "Desktop.INI",  # Windows writes these in any case
    "Thumbs.db",
    "leads.csv.crdownload",
)


@pytest.mark.parametrize("name", BUILT_IN_IGNORED)
def test_temporary_and_system_names_are_ignored_without_any_setting(name: str) -> None:
    assert is_ignored(name), name
    assert ignored_because(name)


@pytest.mark.parametrize("name", ["leads.csv", "LEADS.CSV", "leads.tsv", "partial.csv", "db.csv"])
def test_ordinary_lead_file_names_are_not_ignored(name: str) -> None:
    assert not is_ignored(name, ("*.bak",))


def test_configured_patterns_add_to_the_built_in_ones() -> None:
    assert is_ignored("leads.csv.bak", ("*.bak",))
    assert "'*.bak'" in (ignored_because("leads.csv.bak", ("*.bak",)) or "")
    assert is_ignored("leads.csv.partial", ("*.bak",))  # the built-ins still apply


def test_an_ignored_file_is_logged_once_and_never_tracked(tmp_path: Path) -> None:
    tracker = ReadinessTracker(settle_seconds=0, dropbox="acme")
    partial = tmp_path / "leads.csv.a1b2c3.partial"
    partial.write_text("email\n")
    with structlog.testing.capture_logs() as logs:
        for _ in range(3):  # events and rescans see it again and again
            tracker.note(partial)
    assert tracker.due(now=10.0) == []
    assert tracker.waiting == 0
    assert partial.exists()
    [event] = [e for e in logs if e["event"] == "file_ignored"]
    assert event["dropbox"] == "acme" and "rclone" in event["reason"]


def test_file_is_ready_only_after_staying_still_for_the_settle_time(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    path.write_text("email\n")
    tracker = ReadinessTracker(settle_seconds=5)
    tracker.note(path)
    assert tracker.due(now=100.0) == []  # first sight starts the clock
    assert tracker.due(now=104.0) == []
    with path.open("a") as f:
        f.write("a@example.com\n")  # still growing: the clock restarts
    assert tracker.due(now=104.5) == []
    assert tracker.due(now=109.0) == []
    [ready] = tracker.due(now=109.6)
    assert ready.path == path and ready.regular


def test_marker_file_decides_readiness(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    path.write_text("email\n")
    tracker = ReadinessTracker(settle_seconds=0, marker="done")
    tracker.note(path)
    assert tracker.due(now=1.0) == []
    assert tracker.due(now=50.0) == []  # no marker yet, however long it waits
    marker = tmp_path / "leads.csv.done"
    marker.touch()
    tracker.note(marker)
    [ready] = tracker.due(now=51.0)
    assert ready.path == path and ready.marker == marker


def test_symlink_is_reported_at_once_as_not_regular(tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("x")
    link = tmp_path / "inbox.csv"
    link.symlink_to(outside)
    tracker = ReadinessTracker(settle_seconds=60)
    tracker.note(link)
    [candidate] = tracker.due(now=0.0)
    assert candidate.path == link and not candidate.regular


def test_vanished_file_is_forgotten(tmp_path: Path) -> None:
    path = tmp_path / "gone.csv"
    path.write_text("email\n")
    tracker = ReadinessTracker(settle_seconds=0)
    tracker.note(path)
    path.unlink()
    assert tracker.due(now=10.0) == []
    assert tracker.waiting == 0


def test_files_ready_together_come_out_in_order_of_arrival(tmp_path: Path) -> None:
    tracker = ReadinessTracker(settle_seconds=0)
    names = ["c.csv", "a.csv", "b.csv"]
    for n, name in enumerate(names):
        path = tmp_path / name
        path.write_text("email\n")
        os.utime(path, ns=(n * 10**9, n * 10**9))
        tracker.note(path)
    tracker.due(now=0.0)
    assert [c.path.name for c in tracker.due(now=1.0)] == names


def test_a_file_its_writer_closed_is_ready_after_the_short_quiet_time(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    path.write_text("email\na@example.com\n")
    tracker = ReadinessTracker(settle_seconds=5, close_quiet_seconds=0.5)
    tracker.note(path)
    tracker.note(path, closed=True)  # inotify's close-write
    assert tracker.due(now=100.0) == []
    assert tracker.due(now=100.4) == []
    [ready] = tracker.due(now=100.5)  # the quiet time, not the 5 s settle time
    assert ready.closed and ready.seen_at is not None


def test_a_write_after_the_close_takes_the_close_back(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    path.write_text("email\n")
    tracker = ReadinessTracker(settle_seconds=5, close_quiet_seconds=0.5)
    tracker.note(path, closed=True)
    tracker.due(now=100.0)
    with path.open("a") as f:  # opened again and written: the close no longer counts
        f.write("a@example.com\n")
        f.flush()
        tracker.note(path)
        assert tracker.due(now=100.2) == []
        assert tracker.due(now=101.0) == []
        assert tracker.due(now=105.1) == []
        [ready] = tracker.due(now=105.2)  # only the settle time is left to go by
    assert not ready.closed


def test_a_zero_byte_file_waits_for_its_age_even_when_closed(tmp_path: Path) -> None:
    path = tmp_path / "placeholder.csv"
    path.touch()
    tracker = ReadinessTracker(settle_seconds=1, close_quiet_seconds=0.1, empty_seconds=30)
    tracker.note(path, closed=True)
    tracker.due(now=0.0)
    assert tracker.due(now=10.0) == []
    assert tracker.due(now=29.9) == []
    [ready] = tracker.due(now=30.0)  # still empty and closed: it will fail as empty
    assert ready.path == path


def test_an_unterminated_last_line_waits_when_no_check_can_see_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    path.write_bytes(b"email,company\na@example.com,C")  # a stall in the middle of a line
    blind = ReadinessTracker(
        settle_seconds=1, unterminated_seconds=20, writers_visible=lambda st: False
    )
    seeing = ReadinessTracker(settle_seconds=1, unterminated_seconds=20)
    for tracker in (blind, seeing):
        tracker.note(path)
        tracker.due(now=0.0)
    assert [c.path for c in seeing.due(now=1.0)] == [path]  # the claim's lease will decide
    assert blind.due(now=1.0) == []
    assert blind.due(now=19.9) == []
    assert [c.path for c in blind.due(now=20.0)] == [path]  # a last line without its line end


@pytest.mark.parametrize(
    "data",
    [b"email\na@x.com\n", b"email\r\na@x.com\r\n", b"email\ra@x.com\r", "e\na\n".encode("utf-16")],
)
def test_line_ends_are_recognised_in_every_style(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(data)
    assert ends_with_line_end(path)
    path.write_bytes(data.rstrip(b"\r\n\x00"))
    assert not ends_with_line_end(path)


def test_a_file_still_open_for_writing_is_deferred_a_full_quiet_time(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    path.write_text("email\n")
    tracker = ReadinessTracker(settle_seconds=2)
    tracker.note(path)
    tracker.due(now=0.0)
    assert tracker.due(now=2.0)
    tracker.defer(path, now=2.0)  # the claim found a writer
    assert tracker.due(now=3.9) == []
    assert tracker.due(now=4.0)
