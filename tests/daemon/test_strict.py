"""The daemon against the strict sandbox: one job per static list, and other lists go ahead."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.daemon.harness import DaemonProcess, originals_under, wait_for, write_config

pytestmark = pytest.mark.slow


@pytest.fixture
def sandbox_profile() -> str:
    return "strict"


@pytest.fixture
def started() -> Iterator[list[DaemonProcess]]:
    """Daemons a test started; each must stop cleanly on SIGTERM at the end."""
    daemons: list[DaemonProcess] = []
    yield daemons
    for daemon in daemons:
        assert daemon.stop() == 0, "the daemon did not stop cleanly on SIGTERM"


def start(tmp_path: Path, sandbox: Any, root: Path, **box: Any) -> DaemonProcess:
    config = write_config(
        tmp_path,
        base_url=sandbox.base_url,
        client_id=sandbox.settings.client_id,
        client_secret=sandbox.settings.client_secret,
        dropboxes={"box": {"root": str(root), "watch": "events", **box}},
    )
    return DaemonProcess(config, tmp_path / "daemon.log").start()


def drop(root: Path, relative: str, text: str) -> Path:
    """Written aside, renamed into the inbox, as a careful client does."""
    target = root / "inbox" / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name("." + target.name + ".uploading")
    staging.write_text(text)
    staging.rename(target)
    return target


def leads(prefix: str, rows: int) -> str:
    return "email,firstName\n" + "".join(
        f"{prefix}-{n:03d}@example.com,N{n}\n" for n in range(rows)
    )


def result_of(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.with_name(path.name + ".result.json").read_text())
    return data


def sandbox_json(sandbox: Any, what: str) -> Any:
    return requests.get(f"{sandbox.base_url}/sandbox/{what}.json", timeout=10).json()


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_a_split_file_and_two_list_routes_import_with_no_1019_and_the_lists_interleave(
    tmp_path: Path, make_sandbox: Callable[..., Any], started: list[DaemonProcess]
) -> None:
    sandbox = make_sandbox(rows_per_second=400.0, job_overhead_seconds=0.2, window_seconds=2.0)
    root = tmp_path / "box"
    # 110 rows of about 26 bytes: three parts under the smallest part size allowed. One job per
    # file, as before files could share one: the lists must still take turns job by job.
    started.append(start(tmp_path, sandbox, root, max_part_bytes=1024, coalesce=False))
    dropped = {"csv,list=1001/split.csv": leads("split", 110)}
    for list_id, prefix in ((1002, "a"), (1003, "b")):
        for i in range(5):
            dropped[f"csv,list={list_id}/{prefix}{i}.csv"] = leads(f"{prefix}{i}", 20)
    for relative, text in dropped.items():
        drop(root, relative, text)
    wait_for(
        lambda: len(originals_under(root / "done")) == len(dropped),
        timeout=90,
        what="every file in done/",
    )
    for relative, text in dropped.items():
        final = root / "done" / relative
        assert final.read_text() == text
        result = result_of(final)
        assert result["outcome"] == "done" and result["counts"]["rows_failed"] == 0
        rows = text.count("\n") - 1
        assert sum(p["leads_processed"] for p in result["parts"]) == rows, relative  # complete
        assert all(p["status"] == "Complete" for p in result["parts"])
    assert len(result_of(root / "done" / "csv,list=1001" / "split.csv")["parts"]) == 3
    assert len(sandbox_json(sandbox, "leads")["leads"]) == 110 + 10 * 20
    refused = set(sandbox_json(sandbox, "stats")["errors"]) & {"1019", "606", "615"}
    assert not refused, f"the daemon was answered {refused}"
    batches = sandbox_json(sandbox, "batches")["batches"]
    by_list: dict[int, list[dict[str, Any]]] = {}
    for batch in batches:
        by_list.setdefault(batch["listId"], []).append(batch)
    assert sorted(by_list) == [1001, 1002, 1003] and len(batches) == 13
    for list_id, jobs in by_list.items():
        jobs.sort(key=lambda b: b["created"])
        for earlier, later in itertools.pairwise(jobs):
            assert moment(later["created"]) >= moment(earlier["finished"]), (
                f"two jobs of list {list_id} in Marketo at once"
            )
    # The second list's files finish while the first list's are still going, and back.
    finishes = sorted((moment(b["finished"]), b["listId"]) for b in batches if b["listId"] > 1001)
    sequence = [list_id for _, list_id in finishes]
    switches = sum(1 for a, b in itertools.pairwise(sequence) if a != b)
    assert switches >= 3, f"lists finished one after the other: {sequence}"


def test_a_list_another_client_holds_makes_its_file_wait_while_other_lists_go_ahead(
    tmp_path: Path, make_sandbox: Callable[..., Any], started: list[DaemonProcess]
) -> None:
    # Jobs do not end until the test lets them: the other client's holds list 1001.
    sandbox = make_sandbox(job_overhead_seconds=3600.0, window_seconds=2.0)
    settings = sandbox.settings
    token = requests.post(
        f"{sandbox.base_url}/identity/oauth/token",
        data={"grant_type": "client_credentials", "client_id": settings.client_id,
              "client_secret": settings.client_secret},
        timeout=10,
    ).json()["access_token"]  # fmt: skip
    theirs = requests.post(
        f"{sandbox.base_url}/bulk/v1/leads.json",
        params={"format": "csv", "listId": 1001},
        files={"file": ("theirs.csv", leads("theirs", 3), "text/csv")},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ).json()
    assert theirs["success"], theirs
    root = tmp_path / "box"
    daemon = start(tmp_path, sandbox, root)
    started.append(daemon)
    waiting = drop(root, "csv,list=1001/waits.csv", leads("w", 10))
    wait_for(
        lambda: sandbox_json(sandbox, "stats")["errors"].get("1019", 0) >= 2,
        what="the daemon's create refused with 1019, twice",
    )
    assert [e["held_by_us"] for e in daemon.events() if e.get("event") == "import_waits_for_list"]
    drop(root, "csv,list=1002/goes.csv", leads("g", 10))
    wait_for(
        lambda: any(b["listId"] == 1002 for b in sandbox_json(sandbox, "batches")["batches"]),
        what="the other list's file sent meanwhile",
    )
    assert waiting.exists() or (root / "processing" / "csv,list=1001" / "waits.csv").exists()
    requests.post(f"{sandbox.base_url}/sandbox/speed.json", json={"job_overhead_seconds": 0.05})
    done = root / "done" / "csv,list=1001" / "waits.csv"
    wait_for(done.exists, timeout=60, what="the waiting file in done/")
    result = result_of(done)
    assert result["outcome"] == "done" and result["parts"][0]["leads_processed"] == 10
    wait_for((root / "done" / "csv,list=1002" / "goes.csv").exists, what="goes.csv in done/")
    jobs = [b for b in sandbox_json(sandbox, "batches")["batches"] if b["listId"] == 1001]
    assert len(jobs) == 2  # theirs, then ours: the refused creates queued nothing
    assert moment(jobs[1]["created"]) >= moment(jobs[0]["finished"])


def test_names_with_spaces_non_ascii_emails_and_marketo_failures_end_on_their_lines(
    tmp_path: Path, make_sandbox: Callable[..., Any], started: list[DaemonProcess]
) -> None:
    sandbox = make_sandbox(window_seconds=2.0)
    root = tmp_path / "box"
    started.append(start(tmp_path, sandbox, root))
    text = (
        " Email , FirstName ,Company\n"  # strict Marketo takes " Email " as no field at all
        "ok@example.com,Ok,\n"  # 2
        "zoë@example.com,Zoë,\n"  # 3: Marketo would fail it; it fails here, with a fix
        "not-an-email,Bad,\n"  # 4: Marketo fails it
        "ann@bücher.de,Ann,Acme\n"  # 5
        "fine@example.com,Fine,Acme\n"  # 6
    )
    drop(root, "csv,list=1002/spaced.csv", text)
    final = root / "done" / "csv,list=1002" / "spaced.csv"
    wait_for(final.exists, timeout=60, what="spaced.csv in done/")
    assert final.read_text() == text  # byte for byte, names with their spaces
    result = result_of(final)
    assert result["counts"] == {
        **result["counts"],
        "leads_processed": 2,
        "rows_failed": 1,
        "rows_failed_locally": 2,
    }
    failures = final.with_name("spaced.csv.failures.csv").read_text().splitlines()
    assert failures[0] == "Line, Email , FirstName ,Company,Import Failure Reason"
    by_line = {row.split(",")[0]: row for row in failures[1:]}
    assert sorted(by_line) == ["3", "4", "5"]
    assert "Marketo refuses (ë)" in by_line["3"]
    assert "Invalid email address 'not-an-email'" in by_line["4"]
    assert "ann@xn--bcher-kva.de" in by_line["5"]
    emails = {lead["fields"]["email"] for lead in sandbox_json(sandbox, "leads")["leads"]}
    assert emails == {"ok@example.com", "fine@example.com"}


def test_a_batch_that_fails_half_way_fails_the_file_with_its_failed_rows_listed(
    tmp_path: Path, make_sandbox: Callable[..., Any], started: list[DaemonProcess]
) -> None:
    from dropbox_importer.sandbox import FaultSettings

    sandbox = make_sandbox(window_seconds=2.0, faults=FaultSettings(failed_batch_rate=1.0))
    root = tmp_path / "box"
    started.append(start(tmp_path, sandbox, root))
    rows = [f"ok{i}@example.com" if i % 3 else f"bad{i}" for i in range(12)]
    drop(root, "csv/half.csv", "email\n" + "\n".join(rows) + "\n")
    final = root / "failed" / "csv" / "half.csv"
    wait_for(final.exists, timeout=60, what="half.csv in failed/")
    result = result_of(final)
    assert result["reason"] == "Marketo failed the import: Import failed: system error"
    [part] = result["parts"]
    assert part["status"] == "Failed" and part["rows_failed"] == 2
    failures = final.with_name("half.csv.failures.csv").read_text().splitlines()
    assert [row.split(",")[:2] for row in failures[1:]] == [["2", "bad0"], ["5", "bad3"]]


def test_creates_whose_answers_are_lost_still_import_every_file_once_sent_again(
    tmp_path: Path, make_sandbox: Callable[..., Any], started: list[DaemonProcess]
) -> None:
    from dropbox_importer.sandbox import FaultSettings

    faults = FaultSettings(lost_answer_rate=0.4, endpoints=("create",), seed=5)
    sandbox = make_sandbox(window_seconds=2.0, faults=faults)
    root = tmp_path / "box"
    # One create per file, so that enough of them meet a lost answer.
    daemon = start(tmp_path, sandbox, root, coalesce=False)
    started.append(daemon)
    names = [f"csv,list=1001/l{i}.csv" for i in range(4)] + [f"csv/n{i}.csv" for i in range(4)]
    for number, relative in enumerate(names):
        drop(root, relative, leads(f"f{number}", 5))
    wait_for(
        lambda: len(originals_under(root / "done")) == len(names),
        timeout=90,
        what="every file in done/",
    )
    assert not originals_under(root / "failed")
    assert len(sandbox_json(sandbox, "leads")["leads"]) == 5 * len(names)
    lost = sandbox_json(sandbox, "stats")["errors"]["answer_lost"]
    assert lost >= 1 and daemon.count("marketo_create_ambiguous") == lost
    # Every create whose answer was lost left a job behind: more batches than files.
    assert len(sandbox_json(sandbox, "batches")["batches"]) == len(names) + lost
