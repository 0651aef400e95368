"""Retention on real files with an explicit `now`: what expires, delete, archive, safety."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePath

import pytest

from dropbox_importer.config.model import RetentionConfig
from dropbox_importer.dropbox.layout import DropboxLayout
from dropbox_importer.observe.retention import (
    RetentionSchedule,
    SettledFile,
    expired,
    group,
    journal_horizon,
    settled_files,
    sweep,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def settle(
    layout: DropboxLayout,
    outcome: str,
    route: str,
    name: str,
    *,
    age_days: float,
    results: tuple[str, ...] = (".result.json",),
    finished: bool = True,
) -> list[Path]:
    """An original with result files in done/ or failed/, `age_days` old."""
    folder = layout.root / outcome / route
    folder.mkdir(parents=True, exist_ok=True)
    moment = NOW - timedelta(days=age_days)
    paths = [folder / name]
    paths[0].write_text("Email\na@example.com\n")
    for suffix in results:
        path = folder / f"{name}{suffix}"
        if suffix == ".result.json":
            timings = {"finished": stamp(moment) if finished else None}
            path.write_text(json.dumps({"timings": timings}))
        else:
            path.write_text("Email,Import Failure Reason\n")
        paths.append(path)
    for path in paths:
        os.utime(path, (moment.timestamp(), moment.timestamp()))
    return paths


@pytest.fixture
def layout(tmp_path: Path) -> DropboxLayout:
    box = DropboxLayout(tmp_path / "acme")
    box.ensure()
    return box


def test_results_group_with_their_original_and_orphans_stand_alone() -> None:
    names = [
        "leads.csv",
        "leads.csv.result.json",
        "leads.csv.failures.csv",
        "leads.csv.warnings.csv",
        "other.tsv.result.json",  # its original was removed by hand
        "x.result.json",  # a partner file that only looks like a result
        "x.result.json.result.json",
    ]
    assert group(names) == {
        "leads.csv": [
            "leads.csv",
            "leads.csv.failures.csv",
            "leads.csv.result.json",
            "leads.csv.warnings.csv",
        ],
        "other.tsv.result.json": ["other.tsv.result.json"],
        "x.result.json": ["x.result.json", "x.result.json.result.json"],
    }


def test_expiry_follows_each_outcomes_limit_and_none_keeps_forever() -> None:
    def item(outcome: str, days: float) -> SettledFile:
        return SettledFile(
            outcome, PurePath("."), f"{outcome}-{days}", (), NOW - timedelta(days=days)
        )  # type: ignore[arg-type]

    items = [item("done", 29), item("done", 31), item("failed", 31), item("failed", 91)]
    policy = RetentionConfig(done_days=30, failed_days=90)
    assert [i.name for i in expired(items, policy, NOW)] == ["done-31", "failed-91"]
    keep_failed = RetentionConfig(done_days=30)
    assert [i.name for i in expired(items, keep_failed, NOW)] == ["done-31"]


def test_age_is_taken_from_finished_else_from_the_mtime(layout: DropboxLayout) -> None:
    settle(layout, "done", "", "a.csv", age_days=10)
    paths = settle(layout, "done", "", "b.csv", age_days=10, finished=False)
    # result.json says it finished long ago, though its files were touched just now.
    for path in settle(layout, "done", "", "c.csv", age_days=40):
        os.utime(path, (NOW.timestamp(), NOW.timestamp()))
    moments = {s.name: NOW - s.moment for s in settled_files(layout)}
    assert moments == {
        "a.csv": timedelta(days=10),
        "b.csv": timedelta(days=10),
        "c.csv": timedelta(days=40),
    }
    assert paths[0].exists()


def test_delete_removes_the_original_and_all_its_result_files(layout: DropboxLayout) -> None:
    old = settle(
        layout,
        "done",
        "csv,list=12",
        "leads.csv",
        age_days=31,
        results=(".result.json", ".failures.csv", ".warnings.csv"),
    )
    young = settle(layout, "done", "csv,list=12", "new.csv", age_days=29)
    failed = settle(layout, "failed", "", "bad.csv", age_days=31)
    report = sweep(layout, RetentionConfig(done_days=30, failed_days=90), NOW)
    assert not any(p.exists() for p in old)
    assert all(p.exists() for p in young + failed)
    assert (report.expired, report.deleted_files, report.errors) == (1, 4, [])
    assert report.freed_bytes > 0


def test_inbox_and_processing_are_never_touched(layout: DropboxLayout) -> None:
    ancient = NOW - timedelta(days=1000)
    for folder in (layout.inbox / "csv", layout.processing / "csv"):
        folder.mkdir(parents=True)
        for name in ("waiting.csv", "waiting.csv.result.json"):
            (folder / name).write_text("x")
            os.utime(folder / name, (ancient.timestamp(), ancient.timestamp()))
    sweep(layout, RetentionConfig(done_days=1, failed_days=1), NOW)
    assert len(list(layout.inbox.rglob("*.csv*"))) == 2
    assert len(list(layout.processing.rglob("*.csv*"))) == 2


def test_symlinks_are_neither_followed_nor_removed(layout: DropboxLayout, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    precious = outside / "precious.csv"
    precious.write_text("keep me")
    old = (NOW - timedelta(days=500)).timestamp()
    os.utime(precious, (old, old))
    (layout.done / "linked-dir").symlink_to(outside, target_is_directory=True)
    (layout.done / "link.csv").symlink_to(precious)
    report = sweep(layout, RetentionConfig(done_days=1), NOW)
    assert precious.read_text() == "keep me"
    assert (layout.done / "link.csv").is_symlink() and (layout.done / "linked-dir").is_symlink()
    assert report.expired == 0


def test_archive_keeps_the_route_path_and_never_overwrites(
    layout: DropboxLayout, tmp_path: Path
) -> None:
    archive = tmp_path / "archive"
    first = settle(
        layout,
        "failed",
        "tsv/list=7",
        "leads.tsv",
        age_days=100,
        results=(".result.json", ".failures.tsv"),
    )
    policy = RetentionConfig(failed_days=90, action="archive", archive_dir=archive)
    sweep(layout, policy, NOW)
    kept = archive / "failed" / "tsv" / "list=7"
    assert sorted(p.name for p in kept.iterdir()) == [
        "leads.tsv",
        "leads.tsv.failures.tsv",
        "leads.tsv.result.json",
    ]
    assert not any(p.exists() for p in first)
    # The same name expires again: it lands beside the first, stamped, with its results.
    settle(layout, "failed", "tsv/list=7", "leads.tsv", age_days=100)
    (kept / "leads.tsv").write_text("the first one")
    report = sweep(layout, policy, NOW)
    assert report.archived_files == 2 and report.errors == []
    assert (kept / "leads.tsv").read_text() == "the first one"
    stamped = sorted(p.name for p in kept.iterdir() if p.name.startswith("leads.2"))
    assert len(stamped) == 2 and stamped[1] == stamped[0] + ".result.json"


def test_a_file_that_cannot_be_archived_is_reported_and_the_rest_goes_on(
    layout: DropboxLayout, tmp_path: Path
) -> None:
    archive = tmp_path / "archive"
    (archive / "done").mkdir(parents=True)
    (archive / "done" / "blocked").write_text("a file where the route folder would go")
    blocked = settle(layout, "done", "blocked", "a.csv", age_days=40)
    free = settle(layout, "done", "free", "b.csv", age_days=40)
    policy = RetentionConfig(done_days=30, action="archive", archive_dir=archive)
    report = sweep(layout, policy, NOW)
    assert len(report.errors) == 1 and "blocked/a.csv" in report.errors[0]
    assert all(p.exists() for p in blocked)
    assert not any(p.exists() for p in free)
    assert (archive / "done" / "free" / "b.csv").exists()


def test_schedule_is_due_after_the_first_delay_then_every_interval() -> None:
    schedule = RetentionSchedule(interval_seconds=3600, first_delay_seconds=60)
    assert not schedule.due(1000.0)
    assert schedule.due(1060.0)
    schedule.ran(1060.0)
    assert not schedule.due(4659.0)
    assert schedule.due(4660.0)


def test_journal_keeps_finished_files_as_long_as_the_longest_retention() -> None:
    policies = [None, RetentionConfig(done_days=30, failed_days=120), RetentionConfig(done_days=7)]
    assert journal_horizon(policies) == timedelta(days=120)
    assert journal_horizon([None]) == timedelta(days=90)
