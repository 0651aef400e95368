"""Behaviour the README and config.example.yaml promise, each seen once end to end.

`partial_failure: failed`, `preflight: false` and `watch: auto` (the `demo` command is
test_tour's; a reload that needs a restart is test_reload's).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.daemon.harness import DaemonProcess, wait_for, write_config

pytestmark = pytest.mark.slow

FAST = {"rows_per_second": 5000.0, "job_overhead_seconds": 0.02, "window_seconds": 2.0}

Start = Callable[..., DaemonProcess]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    started: list[DaemonProcess] = []

    def run(sandbox: Any, **box: Any) -> DaemonProcess:
        config = write_config(
            tmp_path,
            base_url=sandbox.base_url,
            client_id=sandbox.settings.client_id,
            client_secret=sandbox.settings.client_secret,
            dropboxes={"box": {"root": str(tmp_path / "box"), **box}},
        )
        started.append(DaemonProcess(config, tmp_path / "daemon.log").start())
        return started[-1]

    yield run
    for daemon in started:
        assert daemon.stop() == 0


def drop(root: Path, relative: str, text: str) -> Path:
    target = root / "inbox" / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.uploading")
    staging.write_text(text)
    staging.rename(target)
    return target


def sandbox_json(sandbox: Any, what: str) -> Any:
    return requests.get(f"{sandbox.base_url}/sandbox/{what}.json", timeout=10).json()


def test_partial_failure_failed_sends_a_file_with_failed_rows_to_failed(
    tmp_path: Path, make_sandbox: Callable[..., Any], start: Start
) -> None:
    sandbox = make_sandbox(**FAST)
    start(sandbox, partial_failure="failed")
    root = tmp_path / "box"
    drop(root, "csv/mixed.csv", "email\ngood@example.com\nnot-an-email\n")
    drop(root, "csv/clean.csv", "email\nclean@example.com\n")
    final = root / "failed" / "csv" / "mixed.csv"
    wait_for(final.exists, what="mixed.csv in failed/")
    result = json.loads(final.with_name("mixed.csv.result.json").read_text())
    assert result["outcome"] == "failed"
    assert result["reason"].startswith("1 row(s) failed; see the failures file")
    assert "not-an-email" in final.with_name("mixed.csv.failures.csv").read_text()
    wait_for((root / "done" / "csv" / "clean.csv").exists, what="a clean file still in done/")
    emails = {lead["fields"]["email"] for lead in sandbox_json(sandbox, "leads")["leads"]}
    assert "good@example.com" in emails  # the good row was imported all the same


def test_preflight_false_sends_the_file_without_asking_marketo_first(
    tmp_path: Path, make_sandbox: Callable[..., Any], start: Start
) -> None:
    sandbox = make_sandbox(**FAST)
    start(sandbox, preflight=False)
    root = tmp_path / "box"
    drop(root, "csv,list=4040/nolist.csv", "email\nnolist@example.com\n")
    final = root / "failed" / "csv,list=4040" / "nolist.csv"
    wait_for(final.exists, what="nolist.csv in failed/")
    reason = json.loads(final.with_name("nolist.csv.result.json").read_text())["reason"]
    # Marketo's own refusal, not the preflight's sentence ("static list 4040 does not exist").
    assert "Marketo refused the import" in reason and "4040" in reason
    calls = sandbox_json(sandbox, "stats")["calls"]
    assert calls.get("create", 0) >= 1
    assert not calls.get("list") and not calls.get("describe")


def test_watch_auto_uses_inotify_events_on_a_local_filesystem(
    tmp_path: Path, make_sandbox: Callable[..., Any], start: Start
) -> None:
    sandbox = make_sandbox(**FAST)
    # Events only: a rescan an hour away cannot be what finds the file.
    daemon = start(sandbox, watch="auto", rescan_seconds=3600)
    [watching] = [e for e in daemon.events() if e.get("event") == "watch_started"]
    assert watching["mode"] == "events"
    drop(tmp_path / "box", "csv/seen.csv", "email\nseen@example.com\n")
    wait_for((tmp_path / "box" / "done" / "csv" / "seen.csv").exists, what="seen.csv by events")
