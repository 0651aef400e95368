"""The real daemon, as a subprocess, on real folders and a sandbox over HTTP."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.daemon.harness import DaemonProcess, originals_under, wait_for, write_config

pytestmark = pytest.mark.slow

FAST = {"rows_per_second": 2000.0, "job_overhead_seconds": 0.05, "window_seconds": 2.0}

# Every test here runs with inotify events and with the polling observer used on network
# shares, on the SQLite journal; and again on the PostgreSQL journal hosts share, with events
# and the kind sandbox only (how files are noticed, how strict Marketo is and where the journal
# lives are independent). The two tests marked journal_blind (Marketo's faults, an upload in
# progress) do nothing the journal sees differently and skip the PostgreSQL pass, which keeps
# `make test` within its budget.
WATCH: dict[str, Any] = {"watch": "events", "state": None}
MODES = {
    "events": ("events", "sqlite"),
    "polling": ("polling", "sqlite"),
    "postgresql": ("events", "postgresql"),
}
journal_blind = pytest.mark.journal_blind


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Each test in every watch mode and sandbox profile on SQLite; on PostgreSQL against the
    kind sandbox only (the profile is Marketo's side, the journal ours); a journal_blind test
    not on PostgreSQL."""
    blind = metafunc.definition.get_closest_marker("journal_blind") is not None
    combos = [(mode, profile) for mode in MODES for profile in ("kind", "strict")]
    combos = [(m, p) for m, p in combos if m != "postgresql" or (p == "kind" and not blind)]
    metafunc.parametrize(
        ("watch_mode", "sandbox_profile"),
        [(MODES[m], p) for m, p in combos],
        ids=[f"{m}-{p}" for m, p in combos],
        indirect=True,
    )


@pytest.fixture(autouse=True)
def watch_mode(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    watch, journal = request.param
    WATCH["watch"] = watch
    if journal == "postgresql":
        WATCH["state"] = request.getfixturevalue("postgres_database").state()
    yield watch
    WATCH.update(watch="events", state=None)


@pytest.fixture
def sandbox_profile(request: pytest.FixtureRequest) -> str:
    """Against the kind sandbox and the strict one (docs/sandbox.md), as pytest_generate_tests
    pairs them with the watch modes."""
    profile: str = request.param
    return profile


def drop(root: Path, relative: str, text: str) -> Path:
    """Drop a file the way a careful client does: written aside, renamed into the inbox."""
    target = root / "inbox" / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name("." + target.name + ".uploading")
    staging.write_text(text)
    staging.rename(target)
    return target


Start = Callable[..., DaemonProcess]


@pytest.fixture
def start(watch_mode: str) -> Iterator[Start]:
    """Start the daemon on a sandbox; at the end of the test, SIGTERM must stop it cleanly."""
    started: list[DaemonProcess] = []

    def run(
        tmp_path: Path,
        sandbox: Any,
        boxes: dict[str, dict[str, Any]],
        instance: dict[str, Any] | None = None,
    ) -> DaemonProcess:
        started.append(daemon_on(tmp_path, sandbox, boxes, instance))
        return started[-1]

    yield run
    for daemon in started:
        assert daemon.stop() == 0, "the daemon did not stop cleanly on SIGTERM"


def daemon_on(
    tmp_path: Path,
    sandbox: Any,
    boxes: dict[str, dict[str, Any]],
    instance: dict[str, Any] | None = None,
) -> DaemonProcess:
    """The daemon, started on one sandbox instance and the given drop boxes."""
    config = write_config(
        tmp_path,
        base_url=sandbox.base_url,
        client_id=sandbox.settings.client_id,
        client_secret=sandbox.settings.client_secret,
        dropboxes={
            name: {"watch": WATCH["watch"], "polling_interval_seconds": 0.2, **box}
            for name, box in boxes.items()
        },
        instance=instance,
        state=WATCH["state"],
    )
    return DaemonProcess(config, tmp_path / "daemon.log").start()


def sandbox_json(sandbox: Any, what: str) -> Any:
    return requests.get(f"{sandbox.base_url}/sandbox/{what}.json", timeout=10).json()


def result_of(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.with_name(path.name + ".result.json").read_text())
    return data


def test_files_in_several_routes_end_in_done_with_results(
    tmp_path: Path, make_sandbox: Callable[..., Any], start: Start
) -> None:
    sandbox = make_sandbox(**FAST)
    root = tmp_path / "acme"
    boxes = {
        "acme": {
            "root": str(root),
            "routes": {"emea": {"format": "csv", "listId": 1001, "partitionName": "Europe"}},
        }
    }
    start(tmp_path, sandbox, boxes)
    dropped = {
        "emea/a.csv": "email,firstName\na1@example.com,Ann\na2@example.com,Abe\n",
        "tsv,list=1002/b.tsv": "Email\tLastName\nb1@example.com\tBrown\n",
        "list=1003/c.csv": "email,company\nc1@example.com,Acme\nc2@example.com,Acme\n",
        "ssv/d.ssv": "email;firstName\nd1@example.com;Dora\n",
    }
    for relative, text in dropped.items():
        drop(root, relative, text)
    wait_for(
        lambda: len(originals_under(root / "done")) == len(dropped),
        timeout=60,
        what="every file in done/",
    )
    for relative, text in dropped.items():
        final = root / "done" / relative
        assert final.read_bytes() == text.encode(), relative
        result = result_of(final)
        assert result["outcome"] == "done"
        assert result["original"]["sha256"] == hashlib.sha256(text.encode()).hexdigest()
        [part] = result["parts"]
        assert part["status"] == "Complete" and part["batch_id"] > 0
    assert not originals_under(root / "inbox") and not originals_under(root / "processing")
    leads = {lead["fields"]["email"]: lead for lead in sandbox_json(sandbox, "leads")["leads"]}
    assert set(leads) == {
        "a1@example.com", "a2@example.com", "b1@example.com",
        "c1@example.com", "c2@example.com", "d1@example.com",
    }  # fmt: skip
    assert leads["a1@example.com"]["partitionName"] == "Europe"
    assert 1001 in leads["a1@example.com"]["lists"]
    assert 1002 in leads["b1@example.com"]["lists"]
    assert 1003 in leads["c2@example.com"]["lists"]
    assert leads["d1@example.com"]["fields"]["firstName"] == "Dora"


def test_rows_marketo_refuses_are_listed_with_their_line_numbers(
    tmp_path: Path, make_sandbox: Callable[..., Any], start: Start
) -> None:
    sandbox = make_sandbox(**FAST)
    root = tmp_path / "box"
    start(tmp_path, sandbox, {"box": {"root": str(root)}})
    text = (
        "email,firstName,lastName\n"
        "ok@example.com,Ok,Row\n"
        "not-an-email,Bad,Row\n"
        ",Empty,Lookup\n"
        "fine@example.com,,\n"
    )
    drop(root, "csv/leads.csv", text)
    final = root / "done" / "csv" / "leads.csv"
    wait_for(final.exists, timeout=60, what="leads.csv in done/")
    failures = final.with_name("leads.csv.failures.csv").read_text().splitlines()
    assert failures[0].split(",")[0] == "Line"
    by_line = {row.split(",")[0]: row for row in failures[1:]}
    assert set(by_line) == {"3", "4"}
    assert "not-an-email" in by_line["3"]
    assert "empty" in by_line["4"].lower()
    result = result_of(final)
    assert result["outcome"] == "done"


def test_dropped_is_when_the_daemon_first_saw_the_file_and_its_old_mtime_is_kept_apart(
    tmp_path: Path, make_sandbox: Callable[..., Any], start: Start
) -> None:
    sandbox = make_sandbox(**FAST)
    root = tmp_path / "box"
    start(tmp_path, sandbox, {"box": {"root": str(root)}})
    old = datetime(2019, 3, 1, 12, 0, tzinfo=UTC)  # `sftp put -p` keeps the partner's mtime
    target = root / "inbox" / "csv" / "kept.csv"
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(".kept.csv.uploading")
    staging.write_text("email\nkept@example.com\n")
    os.utime(staging, (old.timestamp(), old.timestamp()))
    before = datetime.now(UTC)
    staging.rename(target)
    final = root / "done" / "csv" / "kept.csv"
    wait_for(final.exists, timeout=60, what="kept.csv in done/")
    timings = result_of(final)["timings"]
    dropped = datetime.fromisoformat(timings["dropped"].replace("Z", "+00:00"))
    claimed = datetime.fromisoformat(timings["claimed"].replace("Z", "+00:00"))
    assert before - timedelta(seconds=2) <= dropped <= claimed  # seen now, not in 2019
    assert datetime.fromisoformat(timings["modified"].replace("Z", "+00:00")) == old


def test_bad_file_and_bad_route_go_to_failed_with_a_reason(
    tmp_path: Path, make_sandbox: Callable[..., Any], start: Start
) -> None:
    sandbox = make_sandbox(**FAST)
    root = tmp_path / "box"
    start(tmp_path, sandbox, {"box": {"root": str(root)}})
    ragged = "email,firstName\na@example.com,A\nb@example.com,B,extra\n"
    drop(root, "csv/ragged.csv", ragged)
    drop(root, "lst=5/route.csv", "email\nx@example.com\n")
    drop(root, "csv,list=999999/nolist.csv", "email\ny@example.com\n")
    wait_for(lambda: len(originals_under(root / "failed")) == 3, timeout=60, what="3 in failed/")
    reason = result_of(root / "failed" / "csv" / "ragged.csv")["reason"]
    assert "line 3" in reason
    assert (root / "failed" / "csv" / "ragged.csv").read_text() == ragged
    assert "lst" in result_of(root / "failed" / "lst=5" / "route.csv")["reason"]
    assert "999999" in result_of(root / "failed" / "csv,list=999999" / "nolist.csv")["reason"]
    creates = sandbox_json(sandbox, "batches")["batches"]
    assert creates == []  # nothing reached Marketo's queue


@journal_blind
def test_uploads_in_progress_are_submitted_once_complete(
    tmp_path: Path, make_sandbox: Callable[..., Any], start: Start
) -> None:
    sandbox = make_sandbox(**FAST)
    root = tmp_path / "box"
    start(tmp_path, sandbox, {"box": {"root": str(root), "settle_seconds": 1.0}})
    rows = [f"slow{i}@example.com,Row{i}\n" for i in range(40)]
    inbox = root / "inbox" / "csv"
    inbox.mkdir(parents=True)
    slow = inbox / "slow.csv"
    with slow.open("w") as f:
        f.write("email,firstName\n")
        for row in rows:  # written over ~2 s, in pieces, as a throttled upload would
            f.write(row)
            f.flush()
            time.sleep(0.05)
    renamed_part = inbox / "renamed.csv.filepart"
    renamed_part.write_text("email\n" + "".join(f"r{i}@example.com\n" for i in range(30)))
    renamed_part.rename(inbox / "renamed.csv")
    done = root / "done" / "csv"
    wait_for(
        lambda: (done / "slow.csv").exists() and (done / "renamed.csv").exists(),
        timeout=60,
        what="both uploads in done/",
    )
    batches = sandbox_json(sandbox, "batches")["batches"]
    assert len(batches) == 2
    assert sorted(b["rows"] for b in batches) == [30, 40]


def test_sigterm_leaves_batches_recorded_and_a_restart_resumes_without_resubmitting(
    tmp_path: Path, make_sandbox: Callable[..., Any], start: Start
) -> None:
    sandbox = make_sandbox(rows_per_second=100.0, job_overhead_seconds=1.0, window_seconds=2.0)
    root = tmp_path / "box"
    daemon = start(tmp_path, sandbox, {"box": {"root": str(root)}})
    for i in range(3):
        drop(
            root, f"csv/f{i}.csv", "email\n" + "".join(f"u{i}-{n}@example.com\n" for n in range(50))
        )
    # One batch_created per file, whether it has a batch of its own or shares one.
    wait_for(lambda: daemon.count("batch_created") == 3, timeout=30, what="3 files sent")
    created = {e["batch_id"] for e in daemon.events() if e.get("event") == "batch_created"}
    began = time.monotonic()
    assert daemon.stop(timeout=15) == 0
    assert time.monotonic() - began < 10
    assert len(originals_under(root / "processing")) == 3
    daemon.start()
    wait_for(lambda: len(originals_under(root / "done")) == 3, timeout=60, what="all 3 in done/")
    assert {b["batchId"] for b in sandbox_json(sandbox, "batches")["batches"]} == created


def test_a_second_daemon_on_the_same_state_dir_refuses_to_start(
    tmp_path: Path, make_sandbox: Callable[..., Any], start: Start
) -> None:
    sandbox = make_sandbox(**FAST)
    daemon = start(tmp_path, sandbox, {"box": {"root": str(tmp_path / "box")}})
    second = subprocess.run(
        [sys.executable, "-m", "dropbox_importer", "run", "--config", str(daemon.config)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert second.returncode != 0
    assert str(daemon.proc.pid if daemon.proc else "?") in second.stderr


@journal_blind
def test_every_file_ends_in_done_despite_transient_faults_and_a_full_queue(
    tmp_path: Path, make_sandbox: Callable[..., Any], start: Start
) -> None:
    from dropbox_importer.sandbox import FaultSettings

    sandbox = make_sandbox(
        rows_per_second=3000.0,
        job_overhead_seconds=0.05,
        window_seconds=2.0,
        max_queued_jobs=3,
        faults=FaultSettings(rate=0.2, seed=7),
    )
    root = tmp_path / "box"
    start(tmp_path, sandbox, {"box": {"root": str(root)}})
    for i in range(12):
        drop(
            root,
            f"csv/f{i:02}.csv",
            "email\n" + "".join(f"f{i}-{n}@example.com\n" for n in range(20)),
        )
    wait_for(lambda: len(originals_under(root / "done")) == 12, timeout=120, what="12 in done/")
    assert not originals_under(root / "failed")
    assert len(sandbox_json(sandbox, "leads")["leads"]) == 240


def test_kill_9_at_random_moments_loses_no_file(
    tmp_path: Path, make_sandbox: Callable[..., Any], start: Start
) -> None:
    import random

    rng = random.Random(11)
    sandbox = make_sandbox(rows_per_second=3000.0, job_overhead_seconds=0.05, window_seconds=2.0)
    root = tmp_path / "box"
    daemon = start(tmp_path, sandbox, {"box": {"root": str(root), "settle_seconds": 0.2}})
    texts = {
        f"csv/k{i:03}.csv": "email\n" + "".join(f"k{i}-{n}@example.com\n" for n in range(10))
        for i in range(100)
    }

    def drop_all() -> None:
        for relative, text in texts.items():
            drop(root, relative, text)
            time.sleep(0.02)  # a stream of arrivals over ~2 s, not a synchronisation

    dropper = threading.Thread(target=drop_all)
    dropper.start()
    kills = 8
    for _ in range(kills):
        time.sleep(rng.uniform(0.1, 0.8))  # a random moment to crash at, not a wait
        daemon.kill()
        daemon.start()
    dropper.join()
    wait_for(
        lambda: (
            len(originals_under(root / "done")) + len(originals_under(root / "failed"))
            == len(texts)
        ),
        timeout=180,
        what="every file settled",
    )
    for relative, text in texts.items():
        assert (root / "done" / relative).read_text() == text, relative
    assert not originals_under(root / "processing") and not originals_under(root / "inbox")
    assert len(originals_under(root / "done")) == len(texts)  # each exactly once
    leads = sandbox_json(sandbox, "leads")["leads"]
    assert len(leads) == 1000
    batches = sandbox_json(sandbox, "batches")["batches"]
    # Files may share a batch: what was sent twice is a batch no file's result names.
    used = set()
    for relative in texts:
        for part in result_of(root / "done" / relative)["parts"]:
            used.update([part["batch_id"], *part["lost_batch_ids"]])
    twice = len(batches) - len(used)
    uncertain = daemon.count("batch_resubmitted_uncertain")
    print(
        f"kill -9 x{kills} over {len(texts)} files: {twice} batch(es) submitted twice, "
        f"{uncertain} resubmission(s) of a create whose answer a kill had lost"
    )
    # A batch is only ever sent twice when a kill fell between Marketo accepting the
    # create and the journal recording its id; the daemon says so each time.
    assert 0 <= twice <= uncertain
