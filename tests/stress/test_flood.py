"""A flood: 10,000 small files across 100 route folders, all dropped at once."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.harness import DaemonProcess, wait_for, write_config
from tests.stress.tally import Tally, jobs, report

FILES = int(os.environ.get("DROPBOX_IMPORTER_FLOOD_FILES", "10000"))
ROUTES = 100
# Marketo's limits, with time scaled down so the run ends in minutes: 100 calls per 0.5 s.
WINDOW_SECONDS = 0.5
STALL_SECONDS = 120.0  # no file settling for this long fails the run


@pytest.mark.timeout(1800)  # minutes long by design; pyproject's 120 s is for unit tests
def test_flood_of_small_files_loses_nothing_and_lands_nothing_twice(
    tmp_path: Path, make_sandbox: Callable[..., Any]
) -> None:
    sandbox = make_sandbox(
        rows_per_second=1e6, job_overhead_seconds=0.0, window_seconds=WINDOW_SECONDS
    )
    root = tmp_path / "box"
    config = write_config(
        tmp_path,
        base_url=sandbox.base_url,
        client_id=sandbox.settings.client_id,
        client_secret=sandbox.settings.client_secret,
        dropboxes={
            "box": {
                "root": str(root),
                "watch": "events",
                "rescan_seconds": 5,
                # One named route per partner, as an operator would configure them.
                "routes": {
                    f"p{r:03d}": {"format": "csv", "listId": 1001 + r % 3} for r in range(ROUTES)
                },
            }
        },
        instance={"window_seconds": WINDOW_SECONDS, "poll_min_seconds": 0.05},
    )
    # Info level: debug events for 10,000 files would make the log the bottleneck.
    config.write_text(config.read_text().replace("log_level: debug", "log_level: info"))
    daemon = DaemonProcess(config, tmp_path / "daemon.log").start()
    tally = Tally(root)
    try:
        began = time.monotonic()
        for n in range(FILES):
            tally.add(f"p{n % ROUTES:03d}/flood-{n:05d}.csv", n)
        dropped_in = time.monotonic() - began
        last = (0, time.monotonic())
        while last[0] < FILES:
            landed = tally.landed()
            if landed > last[0]:
                last = (landed, time.monotonic())
            assert time.monotonic() - last[1] < STALL_SECONDS, f"stalled at {landed}/{FILES}"
            wait_for(
                lambda seen=landed: tally.landed() > seen or seen >= FILES,
                timeout=STALL_SECONDS,
                what=f"progress past {landed}/{FILES}",
            )
        wall = time.monotonic() - began
    finally:
        daemon.stop(timeout=60)
    counts = tally.count(sandbox.base_url)
    created = jobs(sandbox.base_url)
    report(
        "flood",
        counts,
        routes=ROUTES,
        drop_seconds=round(dropped_in, 1),
        wall_seconds=round(wall, 1),
        files_per_second=round(FILES / wall, 1),
        jobs=created,
        jobs_per_file=round(created / FILES, 4),
    )
    assert counts["lost"] == 0, counts
    assert counts["landed_twice"] == 0, counts
    assert counts["submitted_twice"] == 0, counts  # no kill, no fault: each file sent once
