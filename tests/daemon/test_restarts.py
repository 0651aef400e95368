"""Restarts never strand a file: a half-submitted split file is finished as it was cut.

How a file is cut (its import parameters, encoding and size limit) is recorded before its first
batch is created; a restart under a changed config cuts it the same way and sends only the parts
not yet sent. And a part refused after earlier parts were created fails the file only once
those parts have finished, with all of them in its result.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from dropbox_importer.sandbox import FaultSettings
from tests.daemon.harness import DaemonProcess, originals_under, wait_for, write_config

pytestmark = pytest.mark.slow

ROWS = 200
# Each create waits this long in the sandbox: time to stop the daemon between two parts.
SLOW_CREATES = FaultSettings(latency_seconds=0.7, latency_rate=1.0, endpoints=("create",))


@pytest.fixture
def daemons() -> Iterator[list[DaemonProcess]]:
    started: list[DaemonProcess] = []
    yield started
    for daemon in started:
        assert daemon.stop() == 0


def start(tmp_path: Path, sandbox: Any, daemons: list[DaemonProcess], **box: Any) -> DaemonProcess:
    config = write_config(
        tmp_path,
        base_url=sandbox.base_url,
        client_id=sandbox.settings.client_id,
        client_secret=sandbox.settings.client_secret,
        dropboxes={"box": {"root": str(tmp_path / "box"), **box}},
    )
    daemons.append(DaemonProcess(config, tmp_path / "daemon.log").start())
    return daemons[-1]


def set_box_option(daemon: DaemonProcess, key: str, value: Any) -> None:
    config = yaml.safe_load(daemon.config.read_text())
    config["dropboxes"]["box"][key] = value
    daemon.config.write_text(yaml.safe_dump(config))


def lead_rows(encoding: str = "utf-8") -> tuple[bytes, dict[str, str]]:
    names = {f"r{n:04}@example.com": f"Zoé{n}" for n in range(ROWS)}
    text = "email,firstName\n" + "".join(f"{e},{f}\n" for e, f in names.items())
    return text.encode(encoding), names


def drop(tmp_path: Path, name: str, data: bytes) -> Path:
    folder = tmp_path / "box" / "inbox" / "csv"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f".{name}").write_bytes(data)
    (folder / f".{name}").rename(folder / name)
    return folder / name


def sandbox_leads(sandbox: Any) -> dict[str, dict[str, Any]]:
    reply = requests.get(f"{sandbox.base_url}/sandbox/leads.json", timeout=10).json()
    return {lead["fields"]["email"]: lead["fields"] for lead in reply["leads"]}


def count(daemon: DaemonProcess, name: str) -> int:
    return daemon.count(name)


@pytest.mark.parametrize(
    ("first", "then"),
    [
        ({"max_part_bytes": 1024}, {"max_part_bytes": 4096}),
        ({"max_part_bytes": 1024, "encoding": "cp1252"}, {"encoding": "utf-8"}),
    ],
    ids=["max_part_bytes", "encoding"],
)
def test_a_restart_under_a_changed_cut_finishes_a_half_submitted_file_with_all_its_rows(
    tmp_path: Path,
    make_sandbox: Callable[..., Any],
    daemons: list[DaemonProcess],
    first: dict[str, Any],
    then: dict[str, Any],
) -> None:
    sandbox = make_sandbox(rows_per_second=5000.0, job_overhead_seconds=0.02,
                           window_seconds=2.0, faults=SLOW_CREATES)  # fmt: skip
    daemon = start(tmp_path, sandbox, daemons, **first)
    data, names = lead_rows(first.get("encoding", "utf-8"))
    drop(tmp_path, "big.csv", data)
    wait_for(lambda: count(daemon, "batch_created") >= 1, what="the first part sent")
    assert daemon.stop() == 0
    sent_before = count(daemon, "batch_created")
    assert (tmp_path / "box" / "processing" / "csv" / "big.csv").exists(), "not half-submitted"
    for key, value in then.items():
        set_box_option(daemon, key, value)  # what the reload guard asked the operator to do
    sandbox.app.faults.update(FaultSettings())
    daemon.start()
    final = tmp_path / "box" / "done" / "csv" / "big.csv"
    wait_for(final.exists, timeout=60, what="big.csv in done/")
    assert final.read_bytes() == data
    result = json.loads(final.with_name("big.csv.result.json").read_text())
    parts = result["parts"]
    assert len(parts) > sent_before  # cut as at first: 1024-byte parts
    assert sum(p["rows"] for p in parts) == ROWS
    assert all(p["status"] == "Complete" for p in parts)
    leads = sandbox_leads(sandbox)
    assert {e: leads[e]["firstName"] for e in names} == names  # every row, decoded as cut
    batches = requests.get(f"{sandbox.base_url}/sandbox/batches.json", timeout=10).json()
    resent = count(daemon, "batch_resubmitted_uncertain")
    assert len(parts) <= len(batches["batches"]) <= len(parts) + resent


def test_a_part_refused_after_others_were_created_settles_with_them_once_they_finish(
    tmp_path: Path, make_sandbox: Callable[..., Any], daemons: list[DaemonProcess]
) -> None:
    # Slow imports: the parts created are still importing when a later one is refused.
    sandbox = make_sandbox(rows_per_second=40.0, job_overhead_seconds=0.2,
                           window_seconds=2.0, faults=SLOW_CREATES)  # fmt: skip
    daemon = start(tmp_path, sandbox, daemons, max_part_bytes=1024)
    data, _ = lead_rows()
    drop(tmp_path, "big.csv", data)
    wait_for(lambda: count(daemon, "batch_created") >= 1, what="the first part sent")
    sandbox.app.faults.update(FaultSettings(rate=1.0, codes=("1003",), endpoints=("create",)))
    final = tmp_path / "box" / "failed" / "csv" / "big.csv"
    wait_for(final.exists, timeout=60, what="big.csv in failed/")
    log = list(daemon.events())
    names = [e.get("event") for e in log]
    settled_at = names.index("file_failed")
    created = {e["batch_id"] for e in log if e.get("event") == "batch_created"}
    finished_before = {
        e["batch_id"] for e in log[:settled_at] if e.get("event") == "batch_finished"
    }
    assert created and created <= finished_before, "settled while its parts still imported"
    result = json.loads(final.with_name("big.csv.result.json").read_text())
    assert result["outcome"] == "failed" and "1003" in result["reason"]
    sent = [p for p in result["parts"] if p["batch_id"] is not None]
    assert {p["batch_id"] for p in sent} == created
    assert all(p["status"] == "Complete" for p in sent)
    assert sum(p["leads_processed"] for p in sent) == sum(p["rows"] for p in sent)
    polled_after = [
        e for e in log[settled_at:] if e.get("event") == "batch_polled" and e["batch_id"] in created
    ]
    assert not polled_after
    assert not originals_under(tmp_path / "box" / "processing")
