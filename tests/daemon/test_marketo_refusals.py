"""Marketo refuses: one file's permanent refusal fails that file alone; the instance goes on.

A refusal for good (603 access denied, a code nobody knows) fails the file with Marketo's code
and message and never holds the instance's submitter; refused credentials, which would refuse
every file, park each file for a retry (`instance_needs_operator`) and still never hold the
submitter; a spent daily quota (607) pauses the instance until a restart or midnight.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from dropbox_importer.sandbox import FaultSettings
from tests.daemon.harness import DaemonProcess, originals_under, wait_for, write_config

pytestmark = pytest.mark.slow

FAST = {"rows_per_second": 5000.0, "job_overhead_seconds": 0.02, "window_seconds": 2.0}

Start = Callable[..., DaemonProcess]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    started: list[DaemonProcess] = []

    def run(sandbox: Any, secret: str | None = None, **box: Any) -> DaemonProcess:
        config = write_config(
            tmp_path,
            base_url=sandbox.base_url,
            client_id=sandbox.settings.client_id,
            client_secret=secret or sandbox.settings.client_secret,
            dropboxes={"box": {"root": str(tmp_path / "box"), **box}},
        )
        started.append(DaemonProcess(config, tmp_path / "daemon.log").start())
        return started[-1]

    yield run
    for daemon in started:
        assert daemon.stop() == 0


def drop(tmp_path: Path, name: str, email: str) -> None:
    folder = tmp_path / "box" / "inbox" / "csv"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f".{name}").write_text(f"email\n{email}\n")
    (folder / f".{name}").rename(folder / name)


def events(daemon: DaemonProcess, name: str) -> list[dict[str, Any]]:
    return [e for e in daemon.events() if e.get("event") == name]


@pytest.mark.parametrize(
    ("code", "message"),
    [("603", "Access denied"), ("799", "Injected fault")],
    ids=["603", "unknown"],
)
def test_a_file_marketo_refuses_for_good_fails_alone_and_the_next_one_goes_through(
    tmp_path: Path, make_sandbox: Callable[..., Any], start: Start, code: str, message: str
) -> None:
    sandbox = make_sandbox(**FAST, faults=FaultSettings(rate=1.0, codes=(code,),
                                                        endpoints=("create",)))  # fmt: skip
    daemon = start(sandbox)
    drop(tmp_path, "refused.csv", "refused@example.com")
    failed = tmp_path / "box" / "failed" / "csv" / "refused.csv"
    # Well before the minute the submitter used to sit out with the file.
    wait_for(failed.exists, timeout=20, what="the refused file in failed/")
    reason = json.loads(failed.with_name("refused.csv.result.json").read_text())["reason"]
    assert f"error {code}" in reason and message in reason
    [refused] = events(daemon, "import_refused")
    assert refused["code"] == code and refused["message"] == message
    # An operator should look at the instance; the file alone failed.
    [told] = events(daemon, "instance_needs_operator")
    assert told["code"] == code and message in told["reason"]
    sandbox.app.faults.update(FaultSettings())
    drop(tmp_path, "next.csv", "next@example.com")
    wait_for((tmp_path / "box" / "done" / "csv" / "next.csv").exists, timeout=20, what="next.csv")


def test_refused_credentials_park_every_file_without_holding_the_submitter(
    tmp_path: Path, make_sandbox: Callable[..., Any], start: Start
) -> None:
    sandbox = make_sandbox(**FAST)
    daemon = start(sandbox, secret="not-the-secret")
    drop(tmp_path, "first.csv", "first@example.com")
    drop(tmp_path, "second.csv", "second@example.com")
    # Each file is parked at once: the second never waits behind the first one's retry.
    wait_for(lambda: len(events(daemon, "file_held_for_operator")) >= 2, timeout=20,
             what="both files parked")  # fmt: skip
    assert {e["file_id"] for e in events(daemon, "file_held_for_operator")} == {1, 2}
    assert len(events(daemon, "instance_needs_operator")) == 1  # told once, not per file
    assert "not-the-secret" not in daemon.log_path.read_text()
    # Not the partner's fault: nothing failed, both wait in processing/.
    assert len(originals_under(tmp_path / "box" / "processing")) == 2
    assert not originals_under(tmp_path / "box" / "failed")
    assert daemon.stop() == 0
    config = yaml.safe_load(daemon.config.read_text())
    config["instances"]["main"]["client_secret"] = sandbox.settings.client_secret
    daemon.config.write_text(yaml.safe_dump(config))
    daemon.start()  # the operator fixed the secret and restarted
    wait_for(lambda: len(originals_under(tmp_path / "box" / "done")) == 2, what="both imported")


def test_a_spent_daily_quota_pauses_the_instance_and_sigterm_still_stops_it(
    tmp_path: Path, make_sandbox: Callable[..., Any], start: Start
) -> None:
    sandbox = make_sandbox(**FAST, faults=FaultSettings(rate=1.0, codes=("607",),
                                                        endpoints=("create",)))  # fmt: skip
    daemon = start(sandbox)
    drop(tmp_path, "waits.csv", "waits@example.com")
    wait_for(lambda: events(daemon, "marketo_quota_paused"), what="the quota pause")
    [paused] = events(daemon, "marketo_quota_paused")
    assert paused["seconds"] > 0  # until midnight, US Central time
    assert (tmp_path / "box" / "processing" / "csv" / "waits.csv").exists()
    assert not originals_under(tmp_path / "box" / "failed")
    began = time.monotonic()
    assert daemon.stop() == 0
    assert time.monotonic() - began < 10
    sandbox.app.faults.update(FaultSettings())  # the quota has reset
    daemon.start()
    wait_for((tmp_path / "box" / "done" / "csv" / "waits.csv").exists, what="imported after reset")
    assert requests.get(f"{sandbox.base_url}/sandbox/leads.json", timeout=10).json()["leads"]
