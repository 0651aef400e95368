"""`status`: what waits, what is in flight and what finished, read beside a running daemon."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from dropbox_importer.marketo.health import InstanceHealth
from dropbox_importer.marketo.models import BatchState, BatchStatus
from dropbox_importer.pipeline.journal import JOURNAL_NAME, Journal
from dropbox_importer.pipeline.lock import StateDirLock
from dropbox_importer.pipeline.records import JobMember
from dropbox_importer.pipeline.runlog import RunLog
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


# -- the server install, the default config path ------------------------------------------------


def _server_config(tmp_path: Path) -> Path:
    """The documented server config: the secret is a systemd credential, absent here."""
    config = {
        "state_dir": str(tmp_path / "state"),
        "instances": {
            "main": {
                "munchkin_id": "123-ABC-456",
                "client_id": "the-client",
                "client_secret_file": "main",
            }
        },
        "dropboxes": {"acme": {"root": str(tmp_path / "acme"), "instance": "main"}},
    }
    path = tmp_path / "server.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_status_and_retry_need_no_secret_on_the_server_install(tmp_path: Path) -> None:
    config = _server_config(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "CREDENTIALS_DIRECTORY"}
    env["DROPBOX_IMPORTER_CONFIG"] = str(config)  # no --config: the variable names it
    failed = tmp_path / "acme" / "failed" / "csv" / "leads.csv"
    failed.parent.mkdir(parents=True)
    failed.write_text("email\na@example.com\n")
    (tmp_path / "acme" / "inbox").mkdir()

    status = run_subprocess("status", env=env)
    retry = run_subprocess("retry", str(failed), env=env)
    check = run_subprocess("check", env=env)  # check talks to Marketo: it needs the secret

    assert status.returncode == 0, status.stderr
    assert "acme  (" in status.stdout
    assert retry.returncode == 0, retry.stderr
    assert (tmp_path / "acme" / "inbox" / "csv" / "leads.csv").exists()
    assert check.returncode == 2 and "cannot read secret file" in check.stderr


def test_without_config_or_variable_the_default_path_is_named_with_the_fix(tmp_path: Path) -> None:
    if Path("/etc/dropbox-importer/config.yaml").exists():
        pytest.skip("this machine has a config at the default path")
    env = {k: v for k, v in os.environ.items() if k != "DROPBOX_IMPORTER_CONFIG"}

    result = run_subprocess("status", env=env, cwd=tmp_path)

    assert result.returncode == 2
    assert "/etc/dropbox-importer/config.yaml: no config there" in result.stderr
    assert "give --config FILE or set DROPBOX_IMPORTER_CONFIG" in result.stderr


# -- why each file waits ------------------------------------------------------------------------


def _doc(run_cli: Run, config: Path, *args: str) -> dict[str, Any]:
    code, out, err = run_cli("status", "--config", config, "--json", *args)
    assert code == 0, err
    doc: dict[str, Any] = json.loads(out)
    return doc


def _box(doc: dict[str, Any], name: str) -> dict[str, Any]:
    (box,) = [b for b in doc["dropboxes"] if b["name"] == name]
    return box


def _why(entries: list[dict[str, Any]]) -> dict[str, str]:
    return {e["file"]: e["why_code"] for e in entries}


def test_each_inbox_entry_says_why_it_waits_while_the_daemon_runs(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run
) -> None:
    config = write_config(
        dropboxes={"acme": {"settle_seconds": 60}, "marked": {"ready_marker": "done"}}
    )
    acme, marked = tmp_path / "acme", tmp_path / "marked"
    _drop(acme, "csv", "fresh.csv")
    _drop(acme, "csv", "upload.csv.filepart")
    _drop(acme, "stuck", "a.csv", age_seconds=600)
    (acme / "inbox" / "csv" / "link.csv").symlink_to(tmp_path / "config.yaml")
    _drop(marked, "csv", "held.csv", age_seconds=600)
    _drop(marked, "csv", "gone.csv.done")
    journal = Journal.open(tmp_path / "state")
    RunLog(journal).folder_blocked("acme", "stuck", "Operation not permitted")
    journal.close()
    lock = StateDirLock(tmp_path / "state")
    lock.acquire()  # the daemon's lock, held: status reads the kernel's lock table
    try:
        doc = _doc(run_cli, config)
        _code, text, _ = run_cli("status", "--config", config)
    finally:
        lock.release()

    assert doc["daemon"]["running"] is True and doc["daemon"]["pid"] == os.getpid()
    assert _why(_box(doc, "acme")["waiting"]) == {
        "fresh.csv": "settling",
        "a.csv": "blocked_folder",
    }
    assert _why(_box(doc, "acme")["ignored"]) == {
        "upload.csv.filepart": "ignored_name",
        "link.csv": "set_aside",
    }
    assert _why(_box(doc, "marked")["waiting"]) == {"held.csv": "waiting_for_marker"}
    assert _why(_box(doc, "marked")["ignored"]) == {"gone.csv.done": "orphan_marker"}
    assert "settling: unchanged for" in text and "of 60s" in text
    assert "BLOCKED FOLDER inbox/stuck/" in text and "Operation not permitted" in text
    assert "waiting for its marker 'held.csv.done'" in text
    assert "a marker without its file: no 'gone.csv' beside it" in text
    assert "set aside:" in text and "is a symbolic link; only regular files are imported" in text


def test_a_daemon_that_died_is_why_everything_waits(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run
) -> None:
    config = write_config()
    root = tmp_path / "acme"
    _drop(root, "csv", "new.csv", age_seconds=600)
    journal = Journal.open(tmp_path / "state")
    RunLog(journal).started(str(config), "0" * 64)  # and never said it stopped
    _in_flight(journal, root, "big.csv", [3404])
    journal.close()

    doc = _doc(run_cli, config)
    _code, text, _ = run_cli("status", "--config", config)

    assert doc["daemon"]["running"] is False
    assert doc["daemon"]["ended"] == "died (killed or crashed)"
    assert _why(_box(doc, "acme")["waiting"]) == {"new.csv": "daemon_stopped"}
    assert _why(_box(doc, "acme")["in_flight"]) == {"big.csv": "daemon_stopped"}
    assert text.startswith("daemon: NOT RUNNING (died (killed or crashed) at ")
    assert "as last recorded: instance main" in text or "instance main: no call" in text


def test_in_flight_rows_and_an_instance_that_needs_an_operator(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run
) -> None:
    config = write_config()
    root = tmp_path / "acme"
    (root / "inbox").mkdir(parents=True)
    journal = Journal.open(tmp_path / "state")
    runlog = RunLog(journal)
    runlog.started(str(config), "0" * 64)
    flying = _in_flight(journal, root, "big.csv", [3404, 3405])
    journal.record_batch_status(flying, BatchStatus(3404, BatchState.COMPLETE, 9, 1, 0))
    journal.record_batch_status(flying, BatchStatus(3405, BatchState.IMPORTING, 3, 0, 1))
    claimed = _claimed(journal, root, "csv", "next.csv")
    lock = StateDirLock(tmp_path / "state")
    lock.acquire()
    try:
        importing = _doc(run_cli, config)
        health = InstanceHealth("main")
        health.needs_operator("603: Access denied", code="603")
        runlog.record_health(health.snapshot())
        denied = _doc(run_cli, config)
        _code, text, _ = run_cli("status", "--config", config)
    finally:
        lock.release()
        journal.close()

    first, second = _box(importing, "acme")["in_flight"]
    assert (first["id"], second["id"]) == (flying, claimed)
    assert first["rows"] == {
        "total": 20, "processed": 13, "imported": 12, "failed": 1, "warnings": 1,
    }  # fmt: skip
    assert first["why"] == "importing: 13 of 20 rows"
    assert second["why_code"] == "preparing"
    assert _why(_box(denied, "acme")["in_flight"]) == {
        "big.csv": "needs_operator",
        "next.csv": "needs_operator",
    }
    (instance,) = denied["instances"]
    assert instance["state"] == "needs_operator" and instance["operator_reason"].startswith("603")
    assert "instance main: NEEDS AN OPERATOR since" in text and "603: Access denied" in text
    assert "csv,list=1001/big.csv  polling  13/20" in text


# -- filters and history ------------------------------------------------------------------------


class Clock:
    """A journal clock the test moves."""

    def __init__(self, moment: datetime) -> None:
        self.now = moment

    def __call__(self) -> datetime:
        return self.now


def test_filters_find_a_partners_file_by_box_route_name_time_and_outcome(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run
) -> None:
    config = write_config(dropboxes={"acme": {}, "globex": {}})
    for name in ("acme", "globex"):
        (tmp_path / name / "inbox").mkdir(parents=True)
    clock = Clock(datetime(2026, 11, 29, 1, 0, tzinfo=UTC))
    journal = Journal.open(tmp_path / "state", clock=clock)

    def settle(box: str, route: str, name: str, state: FileState) -> None:
        root = tmp_path / box
        file_id = journal.record_claim(
            box, route, name, root / "inbox" / name, root / "processing" / name, 9, "0" * 64
        )
        journal.transition(
            file_id, FileState.SETTLING, reason="bad" if state.value == "failed" else None
        )
        journal.record_destination(file_id, root / state.value / route / name)
        journal.transition(file_id, state, str(root / state.value / route / name))
        clock.now += timedelta(hours=1)

    settle("acme", "csv", "leads.csv", FileState.FAILED)  # 01:00
    settle("globex", "csv", "leads.csv", FileState.DONE)  # 02:00
    settle("acme", "emea", "leads.csv", FileState.DONE)  # 03:00
    settle("acme", "csv", "other.csv", FileState.FAILED)  # 04:00
    journal.close()

    def found(*args: str) -> list[tuple[str, str, str]]:
        doc = _doc(run_cli, config, *args)
        return [
            (box["name"], r["route"], r["file"]) for box in doc["dropboxes"] for r in box["recent"]
        ]

    assert found("--dropbox", "acme", "--route", "csv") == [
        ("acme", "csv", "other.csv"),
        ("acme", "csv", "leads.csv"),
    ]
    assert found("--file", "lead*") == [
        ("acme", "emea", "leads.csv"),
        ("acme", "csv", "leads.csv"),
        ("globex", "csv", "leads.csv"),
    ]
    assert found("--since", "2026-11-29T02:30Z") == [
        ("acme", "csv", "other.csv"),
        ("acme", "emea", "leads.csv"),
    ]
    assert found("--outcome", "failed", "--since", "2026-11-29T00:00Z") == [
        ("acme", "csv", "other.csv"),
        ("acme", "csv", "leads.csv"),
    ]
    code, _, err = run_cli("status", "--config", config, "--since", "yesterday-ish")
    assert code == 2 and "is not a time: use 90m, 2h" in err
    code, _, err = run_cli("status", "--config", config, "--dropbox", "initech")
    assert code == 2 and "no drop box named 'initech' (known: acme, globex)" in err


def test_file_history_tells_one_files_whole_story_in_order(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run
) -> None:
    config = write_config()
    root = tmp_path / "acme"
    (root / "inbox").mkdir(parents=True)
    clock = Clock(datetime(2026, 11, 29, 4, 26, 37, tzinfo=UTC))
    journal = Journal.open(tmp_path / "state", clock=clock)
    file_id = journal.record_claim(
        "acme", "newsletter", "leads.csv", root / "inbox" / "newsletter" / "leads.csv",
        root / "processing" / "newsletter" / "leads.csv", 177, "91dab12a" * 8,
        dropped_at=clock.now - timedelta(seconds=2),
    )  # fmt: skip
    journal.transition(file_id, FileState.SUBMITTING)
    journal.record_part(file_id, 0, first_line=2, rows=3, size=100)
    journal.record_batch(file_id, 0, 3401)
    journal.transition(file_id, FileState.POLLING)
    clock.now += timedelta(seconds=3)
    journal.record_batch_status(file_id, BatchStatus(3401, BatchState.COMPLETE, 2, 1, 0, "ok"))
    journal.transition(file_id, FileState.SETTLING, "done")
    destination = root / "done" / "newsletter" / "leads.csv"
    journal.record_destination(file_id, destination)
    journal.transition(file_id, FileState.DONE, str(destination))
    journal.close()

    doc = _doc(run_cli, config, "--file", "leads.csv")
    code, text, _ = run_cli("status", "--config", config, "--file", "leads.csv")

    (history,) = doc["history"]
    assert [e["what"] for e in history["events"]] == [
        "uploaded", "claimed", "submitting", "batch_created", "polling",
        "batch_finished", "settling", "done",
    ]  # fmt: skip
    assert history["location"] == "done/newsletter/leads.csv"
    assert code == 0
    assert "acme  newsletter/leads.csv  (file 1, done, now in done/newsletter/leads.csv)" in text
    assert "2026-11-29T04:26:35Z  uploaded" in text
    assert "batch 3401 Complete: 2 imported, 1 failed, 0 with warnings: ok" in text


def test_a_shared_journal_whose_password_this_user_cannot_read_is_named_as_the_problem(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run
) -> None:
    config = write_config()
    document = yaml.safe_load(config.read_text())
    document["state"] = {
        "journal": "postgresql://importer@127.0.0.1:1/journal",
        "password_file": str(tmp_path / "no-such-password"),
    }
    config.write_text(yaml.safe_dump(document))
    (tmp_path / "acme" / "inbox").mkdir(parents=True)

    code, out, _ = run_cli("status", "--config", config, "--json")

    assert code == 1
    doc = json.loads(out)
    assert doc["journal"]["path"] == "postgresql://importer@127.0.0.1:1/journal"
    assert "no-such-password" in doc["journal"]["error"]
    assert "CREDENTIALS_DIRECTORY" in doc["journal"]["error"]


def test_status_shows_the_jobs_files_share_and_who_shares_them(
    tmp_path: Path, write_config: WriteConfig, run_cli: Run
) -> None:
    config = write_config()
    root = tmp_path / "acme"
    (root / "inbox").mkdir(parents=True)
    journal = Journal.open(tmp_path / "state")
    try:
        ids = []
        for name, rows in (("a.csv", 4), ("b.csv", 6), ("c.csv", 5)):
            file_id = _claimed(journal, root, "csv", name)
            journal.transition(file_id, FileState.SUBMITTING)
            journal.record_part(file_id, 0, first_line=2, rows=rows, size=100)
            ids.append((file_id, rows))
        members, row = [], 0
        for file_id, rows in ids:
            members.append(JobMember(file_id, 0, row, 2, rows))
            row += rows
        job_id = journal.record_job("acme", "csv", members, 300)
        journal.record_job_batch(job_id, 3410)
        journal.record_job_status(BatchStatus(3410, BatchState.IMPORTING, 7), ids[0][0])

        code, out, _ = run_cli("status", "--config", config, "--json")
        human_code, human, _ = run_cli("status", "--config", config)
    finally:
        journal.close()

    assert code == 0 and human_code == 0
    (box,) = json.loads(out)["dropboxes"]
    b = next(f for f in box["in_flight"] if f["file"] == "b.csv")
    assert b["batch_ids"] == [3410]
    assert b["shared"] == [{"part": 0, "batch_id": 3410, "files": 3, "rows": 15, "first_row": 5}]
    (job,) = box["shared_jobs"]
    assert (job["batch_id"], job["files"], job["rows"], job["status"]) == (3410, 3, 15, "Importing")
    assert job["first_file"] == "csv/a.csv" and job["leads_processed"] == 7
    assert "3410 (3 files)" in human
    assert "jobs shared by several files" in human and "csv/a.csv" in human
