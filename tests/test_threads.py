"""No thread fails silently: pool tasks, the observers' sweeps and any other thread are logged."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import yaml
from structlog.testing import capture_logs

from dropbox_importer.config import load_config
from dropbox_importer.observe.hub import Observers
from dropbox_importer.pipeline.journal import Journal
from dropbox_importer.threads import Workers, log_thread_crashes
from tests.waiting import wait_for


def test_a_failing_task_is_logged_with_its_name_and_the_pool_goes_on() -> None:
    workers = Workers("test", 1)
    ran: list[int] = []

    def boom() -> None:
        raise OSError("disk I/O error")

    with capture_logs() as logs:
        workers.submit("compaction", boom, dropbox="acme")
        workers.submit("next", lambda: ran.append(1))
        wait_for(lambda: ran, what="the task after the failing one")
    [failed] = [e for e in logs if e["event"] == "task_failed"]
    assert failed["task"] == "compaction" and failed["dropbox"] == "acme"
    assert failed["log_level"] == "error" and failed["exc_info"]
    assert workers.stop(time.monotonic() + 5)


def test_stop_gives_up_on_a_stuck_task_at_its_deadline() -> None:
    workers = Workers("test", 1)
    release, started = threading.Event(), threading.Event()

    def stuck() -> None:
        started.set()
        release.wait()

    workers.submit("stuck", stuck)
    assert started.wait(5)
    began = time.monotonic()
    assert not workers.stop(began + 0.2)  # the thread is a daemon: it cannot hold the exit
    assert workers.submit("late", lambda: None) is False
    release.set()


def test_a_thread_that_dies_is_logged_and_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)  # restored after
    crashed: list[str] = []
    log_thread_crashes(crashed.append)

    def bug() -> None:
        raise KeyError("a bug")

    with capture_logs() as logs:
        thread = threading.Thread(target=bug, name="poll-main")
        thread.start()
        thread.join()
    assert crashed == ["poll-main"]
    [event] = [e for e in logs if e["event"] == "thread_crashed"]
    assert event["thread"] == "poll-main"


def test_a_failing_journal_compaction_and_sweep_are_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_path = tmp_path / "config.yaml"
    root = tmp_path / "box"
    config_path.write_text(
        yaml.safe_dump(
            {
                "state_dir": str(tmp_path / "state"),
                "instances": {"main": {"base_url": "embedded"}},
                "dropboxes": {
                    "box": {"root": str(root), "instance": "main", "retention": {"done_days": 1}}
                },
            }
        )
    )
    config = load_config(config_path)
    journal = Journal.open(config.state_dir)

    def broken(*_args: object) -> int:
        raise OSError("database disk image is malformed")

    monkeypatch.setattr(journal, "compact", broken)
    observers = Observers(lambda: config, journal)
    from dropbox_importer.dropbox.layout import DropboxLayout

    layout = DropboxLayout(root)  # never created: sweeping it fails
    try:
        with capture_logs() as logs:
            observers.tick(0.0, {"box": layout})
            observers.tick(1e9, {"box": layout})
            wait_for(
                lambda: any("compaction" in str(e.get("event")) for e in logs),
                timeout=10,
                what="the compaction failure logged",
            )
        events = [e["event"] for e in logs]
        assert "journal_compaction_failed" in events
    finally:
        observers.stop()
        journal.close()
