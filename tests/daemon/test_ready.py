"""When a dropped file counts as finished."""

import os
from pathlib import Path

from dropbox_importer.pipeline.ready import ReadinessTracker, is_ignored


def test_temporary_upload_names_and_dotfiles_are_ignored() -> None:
    patterns = ("*.part", "*.filepart", "*.tmp", "~*")
    for name in (".leads.csv", "leads.csv.part", "leads.csv.filepart", "x.tmp", "~lock.csv"):
        assert is_ignored(name, patterns), name
    assert not is_ignored("leads.csv", patterns)


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
