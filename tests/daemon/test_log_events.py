"""Log events an on-call admin can correlate: each names its file, once per transition."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.harness import DaemonProcess, originals_under, wait_for, write_config

pytestmark = pytest.mark.slow

# Events about one file: each must say which drop box, route, file and file id.
PER_FILE = {
    "file_claimed",
    "batch_created",
    "batch_finished",
    "file_done",
    "file_failed",
    "notification_sent",
}


def test_two_partners_files_of_one_name_are_told_apart_in_every_event(
    tmp_path: Path, make_sandbox: Callable[..., Any]
) -> None:
    sandbox = make_sandbox(rows_per_second=2000.0, job_overhead_seconds=0.05, window_seconds=2.0)
    acme, globex = tmp_path / "acme", tmp_path / "globex"
    config = write_config(
        tmp_path,
        base_url=sandbox.base_url,
        client_id=sandbox.settings.client_id,
        client_secret=sandbox.settings.client_secret,
        dropboxes={
            "acme": {"root": str(acme), "notify": {"command": ["true"], "when": ["done"]}},
            "globex": {"root": str(globex)},
        },
    )
    daemon = DaemonProcess(config, tmp_path / "daemon.log").start()
    try:
        for root in (acme, globex):
            (root / "inbox" / "csv").mkdir(parents=True)
            (root / "inbox" / "csv" / "leads.csv").write_text("email\na@example.com\n")
        (globex / "inbox" / "csv" / "typo.csv").write_text("emial\na@example.com\n")
        wait_for(
            lambda: (
                len(originals_under(acme / "done") + originals_under(globex / "done")) == 2
                and originals_under(globex / "failed")
            ),
            timeout=30,
            what="three files settled",
        )
        wait_for(lambda: daemon.count("notification_sent") == 1, what="acme's notification")
    finally:
        assert daemon.stop() == 0

    events = list(daemon.events())
    per_file = [e for e in events if e["event"] in PER_FILE]
    for event in per_file:
        assert {"dropbox", "route", "file", "file_id"} <= event.keys(), event
        assert event["file"] in ("csv/leads.csv", "csv/typo.csv"), event  # relative, not a path
    ids = {(e["dropbox"], e["file"]): e["file_id"] for e in per_file}
    assert len(set(ids.values())) == 3  # one stable id per file, all different
    for event in per_file:
        assert event["file_id"] == ids[(event["dropbox"], event["file"])]
    (failed,) = [e for e in events if e["event"] == "file_failed"]
    assert failed["level"] == "warning" and failed["dropbox"] == "globex"
    # One event per transition: none of the old pairs repeats another at info or above.
    loud = Counter(e["event"] for e in events if e["level"] != "debug")
    assert not loud & Counter({"file_settled": 1, "file_rejected": 1, "marketo_import_created": 1})
    assert loud["file_claimed"] == 3 and loud["batch_created"] == loud["batch_finished"] == 2
