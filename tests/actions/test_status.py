"""`status`: what waits, what is in flight and what finished, read beside a running daemon."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

from dropbox_importer.pipeline.journal import JOURNAL_NAME, Journal
from dropbox_importer.pipeline.states import FileState
from tests.actions.cli_harness import Run, WriteConfig, run_subprocess


def _claimed(journal: Journal, root: Path, route: str, name: str) -> int:
    return journal.record_claim(
        "acme",
        route,
        name,
        root / "inbox" / route / name,
        root / "processing" / route / name,
        120,
        "0" * 64,
    )


def _in_flight(journal: Journal, root: Path, name: str, batch_ids: list[int]) -> int:
    file_id = _claimed(journal, root, "csv,list=1001", name)
    journal.transition(file_id, FileState.SUBMITTING)
    for index, batch_id in enumerate(batch_ids):
        journal.record_part(file_id, index, first_line=2 + index * 10, rows=10, size=500)
        journal.record_batch(file_id, index, batch_id)
    journal.transition(file_id, FileState.POLLING)
    return file_id


def _finished(journal: Journal, root: Path, name: str, state: FileState, reason: str | None) -> int:
    file_id = _claimed(journal, root, "csv", name)
    journal.transition(file_id, FileState.SETTLING, reason=reason)
    journal.record_destination(file_id, root / state.value / "csv" / name)
    journal.transition(file_id, state)
    return file_id


def _drop(root: Path, route: str, name: str, age_seconds: float = 0) -> Path:
    path = root / "inbox" / route / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("Email\na@example.com\n")
    if age_seconds:
        then = time.time() - age_seconds
        os.utime(path, (then, then))
    return path


def test_status_lists_waiting_files_before_the_daemon_ever_ran(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run
) -> None:
    config = write_config()
    root = tmp_path / "acme"
    _drop(root, "csv,list=1001", "old.csv", age_seconds=7200)
    _drop(root, "", "top.csv")
    _drop(root, "csv", "upload.csv.part")  # still being uploaded: not waiting yet
    _drop(root, "csv", ".hidden.csv")

    code, out, _ = run_cli("status", "--config", config, "--json")

    assert code == 0
    doc = json.loads(out)
    assert doc["schema"] == 1
    assert doc["journal"]["found"] is False
    (box,) = doc["dropboxes"]
    assert box["name"] == "acme"
    assert [(w["route"], w["file"]) for w in box["waiting"]] == [
        ("csv,list=1001", "old.csv"),
        ("", "top.csv"),
    ]
    assert 7100 < box["waiting"][0]["age_seconds"] < 7300
    assert box["waiting"][0]["size"] == len("Email\na@example.com\n")
    assert box["in_flight"] == [] and box["recent"] == [] and box["problems"] == []
    assert not (tmp_path / "state" / JOURNAL_NAME).exists(), "status must not create a journal"


def test_status_shows_in_flight_batches_and_recent_outcomes(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run
) -> None:
    config = write_config()
    root = tmp_path / "acme"
    (root / "inbox").mkdir(parents=True)
    journal = Journal.open(tmp_path / "state")  # stays open, as the running daemon's would
    try:
        flying = _in_flight(journal, root, "big.csv", [3404, 3405])
        _finished(journal, root, "good.csv", FileState.DONE, None)
        _finished(journal, root, "bad.csv", FileState.FAILED, "line 3 has 2 fields")

        code, out, _ = run_cli("status", "--config", config, "--json")
        human_code, human, _ = run_cli("status", "--config", config)
    finally:
        journal.close()

    assert code == 0 and human_code == 0
    (box,) = json.loads(out)["dropboxes"]
    (item,) = box["in_flight"]
    assert item["id"] == flying
    assert item["state"] == "polling"
    assert item["batch_ids"] == [3404, 3405]
    assert (item["parts"], item["parts_final"]) == (2, 0)
    assert item["age_seconds"] >= 0
    assert [(r["file"], r["outcome"], r["reason"]) for r in box["recent"]] == [
        ("bad.csv", "failed", "line 3 has 2 fields"),
        ("good.csv", "done", None),
    ]
    assert box["recent"][1]["destination"] == str(root / "done" / "csv" / "good.csv")
    assert "3404,3405" in human
    assert "POLLING" not in human and "polling" in human
    assert "FAILED" in human and "line 3 has 2 fields" in human


def test_recent_shows_only_the_last_n_finished_files(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run
) -> None:
    config = write_config()
    (tmp_path / "acme" / "inbox").mkdir(parents=True)
    journal = Journal.open(tmp_path / "state")
    for n in range(5):
        _finished(journal, tmp_path / "acme", f"f{n}.csv", FileState.DONE, None)
    _in_flight(journal, tmp_path / "acme", "late.csv", [1])
    journal.close()

    code, out, _ = run_cli("status", "--config", config, "--json", "--recent", "3")

    assert code == 0
    (box,) = json.loads(out)["dropboxes"]
    assert [r["file"] for r in box["recent"]] == ["f4.csv", "f3.csv", "f2.csv"]


def test_status_as_a_process_reads_a_journal_the_daemon_holds_open(
    tmp_path: Path, write_config: WriteConfig
) -> None:
    config = write_config()
    (tmp_path / "acme" / "inbox").mkdir(parents=True)
    journal = Journal.open(tmp_path / "state")
    try:
        _in_flight(journal, tmp_path / "acme", "busy.csv", [77])
        result = run_subprocess("status", "--config", str(config), "--json")
        # The daemon keeps writing after status has looked: nothing was left locked.
        _finished(journal, tmp_path / "acme", "next.csv", FileState.DONE, None)
    finally:
        journal.close()

    assert result.returncode == 0, result.stderr
    (box,) = json.loads(result.stdout)["dropboxes"]
    assert box["in_flight"][0]["batch_ids"] == [77]


def test_a_journal_from_a_newer_version_is_reported_not_guessed_at(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run
) -> None:
    config = write_config()
    (tmp_path / "acme" / "inbox").mkdir(parents=True)
    Journal.open(tmp_path / "state").close()
    with sqlite3.connect(tmp_path / "state" / JOURNAL_NAME) as conn:
        conn.execute("PRAGMA user_version=99")

    code, out, _ = run_cli("status", "--config", config)

    assert code == 1
    assert "schema version 99" in out and "run the newer dropbox-importer" in out


def test_a_missing_inbox_is_a_problem(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run
) -> None:
    config = write_config()

    code, out, _ = run_cli("status", "--config", config)

    assert code == 1
    assert f"PROBLEM: {tmp_path / 'acme' / 'inbox'} does not exist" in out


def test_a_broken_config_exits_2_with_the_loader_message(tmp_path: Path, run_cli: Run) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("state_dir: /tmp/x\ninstances: {}\ndropboxes: {}\nbogus_key: 1\n")

    code, out, err = run_cli("status", "--config", config)

    assert code == 2
    assert out == ""
    assert "bogus_key" in err
