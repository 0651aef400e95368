"""The main loop, which claims files and pings systemd's watchdog, never reads a whole file.

Recording a claim reads the file for its digest; for a file of gigabytes that takes seconds.
It runs on a worker: meanwhile the main loop goes on claiming other files.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.harness import DaemonProcess, wait_for, write_config

pytestmark = pytest.mark.slow

BIG = 2 << 30  # 2 GiB, sparse: nothing on disk, seconds of sha256


def test_a_huge_file_being_digested_holds_up_no_other_claim(
    tmp_path: Path, make_sandbox: Callable[..., Any]
) -> None:
    sandbox = make_sandbox(rows_per_second=5000.0, job_overhead_seconds=0.02, window_seconds=2.0)
    config = write_config(
        tmp_path,
        base_url=sandbox.base_url,
        client_id=sandbox.settings.client_id,
        client_secret=sandbox.settings.client_secret,
        dropboxes={
            "big": {"root": str(tmp_path / "big"), "settle_seconds": 0.1},
            "small": {"root": str(tmp_path / "small"), "settle_seconds": 0.1},
        },
    )
    daemon = DaemonProcess(config, tmp_path / "daemon.log").start()
    try:
        inbox = tmp_path / "big" / "inbox" / "csv"
        inbox.mkdir(parents=True)
        staging = inbox / ".huge.csv"
        with staging.open("wb") as out:
            out.truncate(BIG)
        os.rename(staging, inbox / "huge.csv")
        wait_for(lambda: not (inbox / "huge.csv").exists(), what="huge.csv claimed")
        small = tmp_path / "small" / "inbox" / "csv"
        small.mkdir(parents=True)
        (small / ".next.csv").write_text("email\nnext@example.com\n")
        os.rename(small / ".next.csv", small / "next.csv")

        def claimed() -> list[str]:
            events = daemon.events()
            return [Path(e["file"]).name for e in events if e.get("event") == "file_claimed"]

        wait_for(lambda: "next.csv" in claimed(), timeout=60, what="next.csv claimed")
        # The small file was recorded while the huge one's digest was still being computed.
        assert claimed()[0] == "next.csv", claimed()
        wait_for((tmp_path / "small" / "done" / "csv" / "next.csv").exists, what="next.csv done")
    finally:
        assert daemon.stop() == 0
