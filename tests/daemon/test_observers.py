"""The running daemon counts what it does for Prometheus and tells a hook about each outcome."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.daemon.harness import SANDBOX_WINDOW_SECONDS, DaemonProcess, wait_for, write_config
from tests.waiting import free_port

pytestmark = pytest.mark.slow


def test_metrics_and_a_notification_command_follow_every_settled_file(
    tmp_path: Path, make_sandbox: Callable[..., Any]
) -> None:
    sandbox = make_sandbox(
        rows_per_second=2000.0, job_overhead_seconds=0.05, window_seconds=SANDBOX_WINDOW_SECONDS
    )
    root = tmp_path / "box"
    events = tmp_path / "events.jsonl"
    # A shell the daemon's user may run (pytest's interpreter may sit in root's home).
    hook = f"{{ cat; echo; }} >> {shlex.quote(str(events))}"
    config = write_config(
        tmp_path,
        base_url=sandbox.base_url,
        client_id=sandbox.settings.client_id,
        client_secret=sandbox.settings.client_secret,
        dropboxes={
            "box": {
                "root": str(root),
                "notify": {"command": ["/bin/sh", "-c", hook], "when": ["failed", "done"]},
            }
        },
    )
    port = free_port()
    text = config.read_text() + f"metrics:\n  listen: 127.0.0.1:{port}\n"
    config.write_text(text)
    daemon = DaemonProcess(config, tmp_path / "daemon.log").start()
    try:
        inbox = root / "inbox" / "csv"
        inbox.mkdir(parents=True)
        (inbox / "good.csv").write_text("email\na@example.com\nnot-an-email\n")
        (inbox / "bad.csv").write_text('email,firstName\na@example.com\n"unclosed,x\n')
        wait_for(
            lambda: events.exists() and len(events.read_text().splitlines()) == 2,
            timeout=30,
            what="two notifications",
        )
        told = {e["file"]: e for e in map(json.loads, events.read_text().splitlines())}
        assert told["good.csv"]["outcome"] == "done"
        assert told["bad.csv"]["outcome"] == "failed" and told["bad.csv"]["reason"]
        scrape = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        assert 'dropbox_importer_files_settled_total{dropbox="box",outcome="done"} 1.0' in scrape
        assert 'dropbox_importer_files_settled_total{dropbox="box",outcome="failed"} 1.0' in scrape
        assert 'dropbox_importer_rows_total{dropbox="box",outcome="imported"} 1.0' in scrape
        assert 'dropbox_importer_rows_total{dropbox="box",outcome="failed"} 1.0' in scrape
        assert 'dropbox_importer_batches_created_total{marketo_instance="main"} 1.0' in scrape
    finally:
        assert daemon.stop() == 0
