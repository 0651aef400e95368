"""Settle notifications: a real local webhook that fails at first, and a real command."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from dropbox_importer.config.model import NotifyConfig
from dropbox_importer.observe.notify import (
    Backoff,
    Notifier,
    event_environment,
    settled_event,
    webhook_label,
)
from tests.waiting import wait_for

FAST = Backoff(first_seconds=0.02, max_seconds=0.1)
TOKEN = "hook-token-5521"
EVENT: dict[str, Any] = {
    "dropbox": "acme",
    "route": "csv,list=12",
    "file": "leads.csv",
    "outcome": "failed",
    "reason": "Marketo failed the import: bad header",
    "destination": "/srv/acme/failed/csv,list=12/leads.csv",
    "counts": {"leads_processed": 0, "rows_failed": 3, "rows_with_warning": 0},
    "batch_ids": [101, 102],
    "access_token": "must-not-travel",
}


class Hook:
    """A local HTTP server answering 500 to its first `failures` POSTs, then 204."""

    def __init__(self, failures: int, status: int = 500) -> None:
        self.failures, self.status = failures, status
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.paths.append(self.path)
                hook.bodies.append(json.loads(body))
                failing = len(hook.bodies) <= hook.failures
                self.send_response(hook.status if failing else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/{TOKEN}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def make_hook() -> Iterator[Callable[..., Hook]]:
    hooks: list[Hook] = []

    def make(failures: int = 0, status: int = 500) -> Hook:
        hooks.append(Hook(failures, status))
        return hooks[-1]

    yield make
    for hook in hooks:
        hook.close()


@pytest.fixture
def notifiers() -> Iterator[list[Notifier]]:
    made: list[Notifier] = []
    yield made
    for notifier in made:
        notifier.stop(timeout=5)


def start(notifiers: list[Notifier], policy: NotifyConfig) -> Notifier:
    notifier = Notifier(lambda name: policy if name == "acme" else None, backoff=FAST).start()
    notifiers.append(notifier)
    return notifier


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


def test_webhook_failing_twice_is_retried_until_it_answers(
    make_hook: Callable[..., Hook], notifiers: list[Notifier]
) -> None:
    hook = make_hook(failures=2)
    notifier = start(notifiers, NotifyConfig(webhook=hook.url, tries=5))
    with capture_logs() as logs:
        assert notifier.file_settled(EVENT) is True
        wait_for(lambda: events(logs, "notification_sent"))
    assert len(hook.bodies) == 3
    body = hook.bodies[-1]
    assert (body["file"], body["outcome"], body["batch_ids"]) == ("leads.csv", "failed", [101, 102])
    assert "access_token" not in body
    assert [e["attempt"] for e in events(logs, "notification_retry")] == [1, 2]
    assert TOKEN not in repr(logs)
    assert events(logs, "notification_sent")[0]["target"] == "http://127.0.0.1"


def test_webhook_that_keeps_failing_is_given_up_with_a_logged_event(
    make_hook: Callable[..., Hook], notifiers: list[Notifier]
) -> None:
    hook = make_hook(failures=100)
    notifier = start(notifiers, NotifyConfig(webhook=hook.url, tries=3))
    with capture_logs() as logs:
        notifier.file_settled(EVENT)
        failed = wait_for(lambda: events(logs, "notification_failed"))
    assert len(hook.bodies) == 3
    assert failed[0]["attempts"] == 3 and failed[0]["reason"] == "HTTP 500"
    assert notifier.pending == 0


def test_webhook_refusing_the_request_is_not_retried(
    make_hook: Callable[..., Hook], notifiers: list[Notifier]
) -> None:
    hook = make_hook(failures=100, status=400)
    notifier = start(notifiers, NotifyConfig(webhook=hook.url, tries=5))
    with capture_logs() as logs:
        notifier.file_settled(EVENT)
        failed = wait_for(lambda: events(logs, "notification_failed"))
    assert len(hook.bodies) == 1 and failed[0]["reason"] == "HTTP 400"


def test_unreachable_webhook_never_logs_its_url(notifiers: list[Notifier]) -> None:
    url = f"http://127.0.0.1:9/hooks/{TOKEN}?key={TOKEN}"  # port 9 (discard) refuses
    notifier = start(notifiers, NotifyConfig(webhook=url, tries=2, timeout_seconds=2))
    with capture_logs() as logs:
        notifier.file_settled(EVENT)
        wait_for(lambda: events(logs, "notification_failed"))
    assert TOKEN not in repr(logs)
    assert webhook_label(url) == "http://127.0.0.1"


def test_outcome_not_asked_for_sends_nothing(
    make_hook: Callable[..., Hook], notifiers: list[Notifier]
) -> None:
    hook = make_hook()
    notifier = start(notifiers, NotifyConfig(webhook=hook.url))  # when: failed only
    assert notifier.file_settled({**EVENT, "outcome": "done"}) is False
    assert notifier.file_settled({**EVENT, "dropbox": "other"}) is False
    assert notifier.file_settled(EVENT) is True
    wait_for(lambda: hook.bodies)
    assert [b["outcome"] for b in hook.bodies] == ["failed"]


def test_command_gets_the_event_on_stdin_and_as_variables(
    tmp_path: Path, notifiers: list[Notifier], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MARKETO_SECRET", "daemon-secret-1")
    out = tmp_path / "seen.json"
    script = (
        "import json, os, sys; data = json.load(sys.stdin); "
        "env = {k: v for k, v in os.environ.items() if k.startswith(('DBI_', 'MARKETO'))}; "
        f"open({str(out)!r}, 'w').write(json.dumps({{'stdin': data, 'env': env}}))"
    )
    command = (sys.executable, "-c", script)
    notifier = start(notifiers, NotifyConfig(command=command, when=frozenset({"failed", "done"})))
    notifier.file_settled(EVENT)
    seen = json.loads(wait_for(lambda: out.exists() and out.read_text()))
    assert seen["stdin"]["reason"] == EVENT["reason"] and "access_token" not in seen["stdin"]
    env = seen["env"]
    assert env["DBI_OUTCOME"] == "failed" and env["DBI_FILE"] == "leads.csv"
    assert env["DBI_ROWS_FAILED"] == "3" and env["DBI_BATCH_IDS"] == "101 102"
    assert "MARKETO_SECRET" not in env and "DBI_ACCESS_TOKEN" not in env


def test_failing_command_is_retried_then_succeeds(
    tmp_path: Path, notifiers: list[Notifier]
) -> None:
    marks = tmp_path / "runs"
    marks.mkdir()
    # Fails on its first two runs, counted by the files it leaves behind.
    script = (
        "import os, sys, uuid; d = sys.argv[1]; n = len(os.listdir(d)); "
        "open(os.path.join(d, uuid.uuid4().hex), 'w').close(); "
        "sys.exit(0 if n >= 2 else 3)"
    )
    notifier = start(notifiers, NotifyConfig(command=(sys.executable, "-c", script, str(marks))))
    with capture_logs() as logs:
        notifier.file_settled(EVENT)
        sent = wait_for(lambda: events(logs, "notification_sent"))
    assert sent[0]["attempt"] == 3 and len(list(marks.iterdir())) == 3
    assert events(logs, "notification_retry")[0]["error"].startswith("exit status 3")


def test_command_over_its_time_out_is_killed_and_given_up(notifiers: list[Notifier]) -> None:
    command = (sys.executable, "-c", "import time; time.sleep(30)")
    notifier = start(notifiers, NotifyConfig(command=command, timeout_seconds=0.3, tries=1))
    with capture_logs() as logs:
        began = time.monotonic()
        notifier.file_settled(EVENT)
        failed = wait_for(lambda: events(logs, "notification_failed"))
    assert "killed" in failed[0]["reason"] and time.monotonic() - began < 10


def test_file_settled_returns_at_once_while_a_delivery_hangs(
    tmp_path: Path, notifiers: list[Notifier]
) -> None:
    gate = tmp_path / "gate"
    script = f"import os, time\nwhile not os.path.exists({str(gate)!r}): time.sleep(0.01)"
    notifier = Notifier(
        lambda _: NotifyConfig(command=(sys.executable, "-c", script), timeout_seconds=20),
        max_pending=3,
        backoff=FAST,
    ).start()
    notifiers.append(notifier)
    began = time.monotonic()
    accepted = [notifier.file_settled(EVENT) for _ in range(6)]
    assert time.monotonic() - began < 1.0
    assert accepted.count(False) >= 2  # the bounded schedule refused the overflow
    gate.touch()
    wait_for(lambda: notifier.pending == 0)


def test_settled_event_is_read_from_the_result_file(tmp_path: Path) -> None:
    destination = tmp_path / "done" / "leads.csv"
    destination.parent.mkdir()
    result = {
        "dropbox": "acme",
        "route": "",
        "file": "leads.csv",
        "outcome": "done",
        "reason": None,
        "import": {"format": "csv", "list_id": None, "partition_name": None, "lookup_field": None},
        "counts": {"leads_processed": 2, "rows_failed": 0, "rows_with_warning": 0},
        "parts": [{"batch_id": 7}, {"batch_id": None}],
        "timings": {"finished": "2026-01-02T03:04:05.000000Z"},
    }
    (tmp_path / "done" / "leads.csv.result.json").write_text(json.dumps(result))
    event = settled_event(destination)
    assert event["batch_ids"] == [7] and event["destination"] == str(destination)
    env = event_environment(event)
    assert env["DBI_REASON"] == "" and env["DBI_LEADS_PROCESSED"] == "2"
    assert "DBI_IMPORT" not in env and "DBI_COUNTS" not in env
    json.dumps(event)  # JSON-able as it is


def test_worker_outlives_a_broken_policy_lookup() -> None:
    def broken(_name: str) -> NotifyConfig | None:
        raise RuntimeError("config gone")

    notifier = Notifier(broken).start()
    with capture_logs() as logs:
        assert notifier.file_settled(EVENT) is False
    notifier.stop()
    assert events(logs, "notification_not_scheduled")
