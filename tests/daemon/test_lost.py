"""Batches Marketo no longer knows: sent once more, and a second loss fails the file plainly."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.daemon.harness import DaemonProcess, originals_under, wait_for, write_config

pytestmark = pytest.mark.slow

FAST = {"rows_per_second": 2000.0, "job_overhead_seconds": 0.05, "window_seconds": 2.0}


@pytest.fixture(params=["kind", "strict"])
def sandbox_profile(request: pytest.FixtureRequest) -> str:
    """Kind answers an unknown batch with 1003, strict with 610: the daemon handles both."""
    profile: str = request.param
    return profile


def config_for(tmp_path: Path, sandbox: Any, root: Path) -> Path:
    return write_config(
        tmp_path,
        base_url=sandbox.base_url,
        client_id=sandbox.settings.client_id,
        client_secret=sandbox.settings.client_secret,
        dropboxes={"box": {"root": str(root)}},
    )


def result_of(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.with_name(path.name + ".result.json").read_text())
    return data


def created(daemon: DaemonProcess) -> list[int]:
    return [e["batch_id"] for e in daemon.events() if e.get("event") == "batch_created"]


def test_batches_marketo_no_longer_knows_after_a_restart_are_sent_again_and_land_in_done(
    tmp_path: Path, make_sandbox: Callable[..., Any]
) -> None:
    slow = make_sandbox(rows_per_second=20.0, job_overhead_seconds=0.05, window_seconds=2.0)
    root = tmp_path / "box"
    daemon = DaemonProcess(config_for(tmp_path, slow, root), tmp_path / "daemon.log").start()
    inbox = root / "inbox" / "csv"
    inbox.mkdir(parents=True)
    for i in range(3):
        (inbox / f"f{i}.csv").write_text(
            "email\n" + "".join(f"f{i}-{n}@x.org\n" for n in range(200))
        )
    # One batch_created per file, whether it has a batch of its own or shares one.
    wait_for(lambda: len(created(daemon)) == 3, what="3 files sent")
    first = {e["file"]: e["batch_id"] for e in daemon.events() if e.get("event") == "batch_created"}
    daemon.kill()
    # Another Marketo (an embedded sandbox restarted, or ids past their 7 days): all unknown.
    other = make_sandbox(**FAST)
    config_for(tmp_path, other, root)
    daemon.start()
    try:
        wait_for(lambda: len(originals_under(root / "done")) == 3, timeout=30, what="3 in done/")
        for name in first:
            [part] = result_of(root / "done" / name)["parts"]  # `file`: relative to the box
            assert part["status"] == "Complete" and part["leads_processed"] == 200
            assert part["lost_batch_ids"] == [first[name]]  # result.json says it was sent again
        assert daemon.count("batch_lost_resubmitting") == 3
        # Each batch sent again once, and only once.
        again = {result_of(root / "done" / name)["parts"][0]["batch_id"] for name in first}
        batches = requests.get(f"{other.base_url}/sandbox/batches.json").json()["batches"]
        assert {b["batchId"] for b in batches} == again
        assert not originals_under(root / "processing")
    finally:
        assert daemon.stop() == 0


def test_a_part_lost_twice_fails_the_file_saying_it_is_not_the_partners_doing(
    tmp_path: Path, make_sandbox: Callable[..., Any]
) -> None:
    sandbox = make_sandbox(rows_per_second=20.0, job_overhead_seconds=0.05, window_seconds=2.0)
    root = tmp_path / "box"
    daemon = DaemonProcess(config_for(tmp_path, sandbox, root), tmp_path / "daemon.log").start()
    forget = f"{sandbox.base_url}/sandbox/batches.json"
    try:
        inbox = root / "inbox" / "csv"
        inbox.mkdir(parents=True)
        (inbox / "lost.csv").write_text("email\n" + "".join(f"l{n}@x.org\n" for n in range(100)))
        wait_for(lambda: len(created(daemon)) == 1, what="the first batch")
        requests.post(forget, json={"forget": created(daemon)}).raise_for_status()
        wait_for(lambda: len(created(daemon)) == 2, what="the part sent again")
        requests.post(forget, json={"forget": created(daemon)}).raise_for_status()
        final = root / "failed" / "csv" / "lost.csv"
        wait_for(final.exists, timeout=30, what="lost.csv in failed/")
        result = result_of(final)
        assert "not a problem with the file" in result["reason"]
        assert "lost the import of this file 2 times" in result["reason"]
        [part] = result["parts"]
        assert part["lost_batch_ids"] == created(daemon)
        assert daemon.count("batch_lost_again") == 1
        assert final.read_text().startswith("email\nl0@x.org\n")
    finally:
        assert daemon.stop() == 0
