"""SIGHUP drop box by drop box: what can apply does at once; a busy box's change waits for it."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from dropbox_importer.config import load_config
from dropbox_importer.pipeline.reload import plan_reload
from tests.daemon.harness import DaemonProcess, free_port, wait_for, write_config
from tests.daemon.test_status_daemon import box_of, status

pytestmark = pytest.mark.slow


def test_a_new_drop_box_starts_while_another_has_a_file_in_flight_whose_change_waits(
    tmp_path: Path, make_sandbox: Callable[..., Any]
) -> None:
    slow = make_sandbox(rows_per_second=150.0, job_overhead_seconds=0.05, window_seconds=2.0)
    busy, new = tmp_path / "busy", tmp_path / "new"
    config = write_config(
        tmp_path,
        base_url=slow.base_url,
        client_id=slow.settings.client_id,
        client_secret=slow.settings.client_secret,
        dropboxes={"busy": {"root": str(busy)}},
    )
    daemon = DaemonProcess(config, tmp_path / "daemon.log").start()
    try:
        (busy / "inbox" / "csv").mkdir(parents=True)
        rows = "".join(f"lead{n}@example.com\n" for n in range(1500))
        (busy / "inbox" / "csv" / "big.csv").write_text("email\n" + rows)  # ten seconds
        wait_for(lambda: daemon.count("batch_created") == 1, what="big.csv in flight")

        data = yaml.safe_load(config.read_text())
        # A change to how busy's files are routed: it must wait until big.csv has settled.
        data["dropboxes"]["busy"]["routes"] = {"emea": {"format": "csv", "listId": 1001}}
        data["dropboxes"]["new"] = {**data["dropboxes"]["busy"], "root": str(new)}
        data["dropboxes"]["new"].pop("routes")
        metrics_port = free_port()
        data["metrics"] = {"listen": f"127.0.0.1:{metrics_port}"}  # a listener starts on reload
        data["instances"]["main"]["poll_max_seconds"] = 2.0  # only a restart changes this
        config.write_text(yaml.safe_dump(data))
        before = status(config)
        assert box_of(before[0], "new")["live"] is False  # in the file, not yet in the daemon
        assert "instance main, NOT RUNNING in the daemon yet" in before[1]
        daemon.signal(signal.SIGHUP)
        wait_for(lambda: daemon.count("config_reloaded") == 1, what="config_reloaded")
        assert box_of(status(config)[0], "new")["live"] is True

        (reloaded,) = [e for e in daemon.events() if e["event"] == "config_reloaded"]
        assert reloaded["started"] == ["new"] and reloaded["held"] == ["busy"]
        (restart,) = [e for e in daemon.events() if e["event"] == "config_reload_needs_restart"]
        assert restart["keys"] == ["instances.main.poll_max_seconds"]
        doc = status(config)[0]
        (pending,) = doc["daemon"]["config"]["pending"]
        assert pending["dropbox"] == "busy" and "files in flight" in pending["reason"]
        assert "HELD BACK" in status(config)[1]
        metrics = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5)
        assert "dropbox_importer_files" in metrics.text

        (new / "inbox" / "csv").mkdir(parents=True, exist_ok=True)
        (new / "inbox" / "csv" / "first.csv").write_text("email\nfirst@example.com\n")
        wait_for((new / "done" / "csv" / "first.csv").exists, timeout=30, what="new box imports")
        assert (busy / "processing" / "csv" / "big.csv").exists()  # still in flight meanwhile
        assert daemon.count("config_change_applied") == 0

        wait_for((busy / "done" / "csv" / "big.csv").exists, timeout=60, what="big.csv done")
        wait_for(lambda: daemon.count("config_change_applied") == 1, what="busy's change applied")
        (applied,) = [e for e in daemon.events() if e["event"] == "config_change_applied"]
        assert applied["dropbox"] == "busy" and applied["held_since"] == pending["since"]
        # status reads the journal, which the daemon's run record reaches at its heartbeat pace.
        wait_for(
            lambda: status(config)[0]["daemon"]["config"]["pending"] == [], what="nothing held"
        )
        (busy / "inbox" / "emea").mkdir()  # the route the held change added
        (busy / "inbox" / "emea" / "named.csv").write_text("email\nnamed@example.com\n")
        wait_for((busy / "done" / "emea" / "named.csv").exists, timeout=30, what="emea route")
        result = (busy / "done" / "emea" / "named.csv.result.json").read_text()
        assert '"list_id": 1001' in result
    finally:
        assert daemon.stop() == 0


def test_a_new_box_on_a_new_instance_waits_for_a_restart_and_says_which_key(
    tmp_path: Path,
) -> None:
    base = {
        "state_dir": str(tmp_path / "state"),
        "instances": {"main": {"base_url": "embedded"}},
        "dropboxes": {"a": {"root": str(tmp_path / "a"), "instance": "main"}},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(base))
    current = load_config(path)
    base["instances"]["other"] = {"base_url": "embedded"}
    base["dropboxes"]["b"] = {"root": str(tmp_path / "b"), "instance": "other"}
    base["log_level"] = "debug"
    path.write_text(yaml.safe_dump(base))

    plan = plan_reload(current, load_config(path), busy=lambda _: False)

    assert plan.refused == ["instances.other", "dropboxes.b.instance"]
    assert plan.start == [] and "b" not in plan.config.dropboxes
    assert plan.config.log_level == "debug"  # what needs no restart applies
    assert set(plan.config.instances) == {"main"}


def test_the_embedded_sandbox_remembers_its_batches_so_a_restart_continues(tmp_path: Path) -> None:
    root = tmp_path / "box"
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "state_dir": str(tmp_path / "state"),
                "log_format": "json",
                "instances": {
                    "demo": {
                        "base_url": "embedded",
                        "poll_min_seconds": 0.1,
                        "poll_max_seconds": 1.0,
                        "sandbox": {"rows_per_second": 200, "job_overhead_seconds": 0.05},
                    }
                },
                "dropboxes": {
                    "box": {"root": str(root), "instance": "demo", "settle_seconds": 0.3}
                },
            }
        )
    )
    daemon = DaemonProcess(config, tmp_path / "daemon.log").start()
    (root / "inbox" / "csv").mkdir(parents=True)
    rows = "".join(f"lead{n}@example.com\n" for n in range(1000))  # five seconds
    (root / "inbox" / "csv" / "big.csv").write_text("email\n" + rows)
    wait_for(lambda: daemon.count("batch_created") == 1, what="big.csv in flight")
    assert daemon.stop() == 0  # Ctrl-C in `make run`
    assert (tmp_path / "state" / "sandbox" / "demo.json").exists()

    daemon.start()
    try:
        wait_for((root / "done" / "csv" / "big.csv").exists, timeout=60, what="big.csv done")
    finally:
        assert daemon.stop() == 0
    # Neither lost nor sent again: the sandbox still knew the batch after its restart.
    assert daemon.count("batch_lost") == 0 and daemon.count("batch_lost_resubmitting") == 0
    result = json.loads((root / "done" / "csv" / "big.csv.result.json").read_text())
    assert [part["leads_processed"] for part in result["parts"]] == [1000]
    assert [part["lost_batch_ids"] for part in result["parts"]] == [[]]
    assert daemon.count("sandbox_state_restored") == 1


def test_moving_the_journal_or_changing_its_lease_waits_for_a_restart(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        base_url="https://123-ABC-456.mktorest.com",
        client_id="id",
        client_secret="secret",
        dropboxes={"a": {"root": str(tmp_path / "a")}},
    )
    current = load_config(path)
    (tmp_path / "journal-password").write_text("s3cret-db\n")
    base = yaml.safe_load(path.read_text())
    base["state"] = {
        "journal": "postgresql://importer@db.example.com/journal",
        "password_file": "journal-password",
        "lease_seconds": 30,
    }
    base["log_level"] = "warning"
    path.write_text(yaml.safe_dump(base))

    plan = plan_reload(current, load_config(path), busy=lambda _: False)

    assert plan.refused == ["state.journal", "state.password_file", "state.lease_seconds"]
    assert plan.config.state == current.state and not plan.config.state.shared
    assert plan.config.log_level == "warning"
    assert "s3cret-db" not in " ".join(plan.refused)
