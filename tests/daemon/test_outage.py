"""An outage as the on-call admin lives it: logs that page once, `status` that says why."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.daemon.harness import DaemonProcess, originals_under, wait_for, write_config
from tests.daemon.test_status_daemon import box_of, instance_of, status

pytestmark = pytest.mark.slow


def test_an_outage_pages_once_escalates_and_recovers_and_nothing_is_lost(
    tmp_path: Path, make_sandbox: Callable[..., Any]
) -> None:
    sandbox = make_sandbox(rows_per_second=2000.0, job_overhead_seconds=0.05, window_seconds=2.0)
    faults = f"{sandbox.base_url}/sandbox/faults.json"
    requests.post(faults, json={"http_5xx_rate": 1.0}, timeout=5).raise_for_status()
    root = tmp_path / "box"
    config = write_config(
        tmp_path,
        base_url=sandbox.base_url,
        client_id=sandbox.settings.client_id,
        client_secret=sandbox.settings.client_secret,
        dropboxes={"box": {"root": str(root)}},
        instance={"outage_error_seconds": 2},
    )
    daemon = DaemonProcess(config, tmp_path / "daemon.log").start()
    try:
        inbox = root / "inbox" / "csv"
        inbox.mkdir(parents=True)
        for name in ("a.csv", "b.csv"):
            (inbox / name).write_text(f"email\n{name}@example.com\n")

        def failing() -> dict[str, Any] | None:
            doc = status(config)[0]
            flying = box_of(doc)["in_flight"]
            unhealthy = instance_of(doc)["state"] in ("unhealthy", "outage")
            return doc if unhealthy and flying else None

        doc = wait_for(failing, timeout=30, what="status showing the failing instance")
        assert instance_of(doc)["last_error"].startswith("HTTP 50")
        assert {f["why_code"] for f in box_of(doc)["in_flight"]} <= {
            "instance_unhealthy",
            "instance_outage",
        }
        text = status(config)[1]
        assert "instance main: FAILING since" in text or "instance main: OUTAGE since" in text

        wait_for(lambda: daemon.count("instance_outage") == 1, timeout=30, what="instance_outage")
        requests.post(faults, json={"http_5xx_rate": 0.0}, timeout=5).raise_for_status()
        wait_for(
            lambda: len(originals_under(root / "done")) == 2, timeout=60, what="both files done"
        )
        wait_for(lambda: instance_of(status(config)[0])["state"] == "ok", what="status ok again")
    finally:
        assert daemon.stop() == 0

    events = list(daemon.events())
    health = [e for e in events if e["event"].startswith("instance_")]
    assert [(e["event"], e["level"]) for e in health] == [
        ("instance_unhealthy", "warning"),
        ("instance_outage", "error"),
        ("instance_recovered", "warning"),
    ]
    retries = [e["level"] for e in events if e["event"] == "marketo_call_retry"]
    assert retries[0] == "info"
    assert "warning" in retries and retries[-1] == "error"
    assert retries.index("warning") < retries.index("error")
    assert not originals_under(root / "failed") and not originals_under(root / "processing")
    leads = requests.get(f"{sandbox.base_url}/sandbox/leads.json", timeout=5).json()["leads"]
    assert {lead["fields"]["email"] for lead in leads} == {"a.csv@example.com", "b.csv@example.com"}
