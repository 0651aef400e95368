"""Two hosts, one drop box, one PostgreSQL journal: a standby takes over, an old leader is fenced.

Each daemon has its own state folder and config (host `alpha`, host `beta`), as two machines on
one NFS export would; they share the drop box and the database. The lease is short (2 s) so the
takeovers fit the suite's time; what a takeover costs is printed (pytest -s), not asserted.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests

from dropbox_importer.pipeline.leadership import EXIT_STOOD_DOWN
from tests.daemon.harness import (
    DaemonProcess,
    files_under,
    free_port,
    originals_under,
    wait_for,
    write_config,
)
from tests.postgres import PostgresDatabase

pytestmark = pytest.mark.slow

LEASE = 2.0
EITHER = ("daemon_ready", "leadership_standby")
# Slow enough that files are still in flight when the leader is killed or frozen.
SLOW = {"rows_per_second": 150.0, "job_overhead_seconds": 0.3, "window_seconds": 2.0}


def drop(root: Path, relative: str, text: str) -> None:
    target = root / "inbox" / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name("." + target.name + ".uploading")
    staging.write_text(text)
    staging.rename(target)


def lead_file(n: int) -> str:
    return "email,firstName\n" + "".join(f"f{n:02d}-{r}@example.com,R{r}\n" for r in range(30))


def at(event: dict[str, Any]) -> float:
    """The moment an event was logged, in seconds since the epoch."""
    return datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()


def sandbox_json(sandbox: Any, what: str) -> Any:
    return requests.get(f"{sandbox.base_url}/sandbox/{what}.json", timeout=10).json()


class Pair:
    """Host alpha and host beta: a daemon each, one drop box, one journal."""

    def __init__(
        self,
        tmp_path: Path,
        sandbox: Any,
        db: PostgresDatabase,
        poll: dict[str, float],
        box: dict[str, Any] | None = None,
    ) -> None:
        self.root = tmp_path / "box"
        self.db = db
        self.daemons: dict[str, DaemonProcess] = {}
        self.metrics: dict[str, str] = {}
        self.pages: dict[str, str] = {}
        for host in ("alpha", "beta"):
            port, web = free_port(), free_port()
            self.metrics[host] = f"http://127.0.0.1:{port}/metrics"
            self.pages[host] = f"http://127.0.0.1:{web}/"
            folder = tmp_path / host
            folder.mkdir()
            config = write_config(
                folder,
                base_url=sandbox.base_url,
                client_id=sandbox.settings.client_id,
                client_secret=sandbox.settings.client_secret,
                # One batch per file unless `box` says otherwise: batches count against files
                # (test_failover_shared.py, test_coalesce.py: shared jobs).
                dropboxes={
                    "box": {
                        "root": str(self.root),
                        "watch": "events",
                        **(box or {"coalesce": False}),
                    }
                },
                state=db.state(host_name=host, lease_seconds=LEASE),
                instance=poll,
                extra={
                    "metrics": {"listen": f"127.0.0.1:{port}"},
                    "web": {"listen": f"127.0.0.1:{web}"},
                },
            )
            self.daemons[host] = DaemonProcess(config, folder / "daemon.log")

    def __getitem__(self, host: str) -> DaemonProcess:
        return self.daemons[host]

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        password = self.db.password_file.read_text().strip()
        with psycopg.connect(self.db.url, password=password) as conn:
            return conn.execute(sql).fetchall()

    def leader(self) -> str:
        return str(self.query("SELECT leader FROM leadership")[0][0])

    def status(self, host: str, *options: str) -> str:
        """`dropbox-importer status` run with `host`'s config, as an operator on that host."""
        config = str(self.daemons[host].config)
        done = subprocess.run(
            [sys.executable, "-m", "dropbox_importer", "status", "--config", config, *options],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def leader_gauge(self, host: str) -> float | None:
        """This host's `dropbox_importer_leader` gauge, as Prometheus would scrape it."""
        text = requests.get(self.metrics[host], timeout=10).text
        for line in text.splitlines():
            if line.startswith(f'dropbox_importer_leader{{host="{host}"}}'):
                return float(line.split()[-1])
        return None


@pytest.fixture
def pair(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    make_sandbox: Callable[..., Any],
    postgres_database: PostgresDatabase,
) -> Iterator[tuple[Pair, Any]]:
    sandbox = make_sandbox(**SLOW)
    poll = getattr(request, "param", {})
    hosts = Pair(tmp_path, sandbox, postgres_database, poll)
    yield hosts, sandbox
    for daemon in hosts.daemons.values():
        daemon.kill()


# Status calls a second apart: a frozen leader wakes with every batch due for one.
SPARSE_POLLS = {"poll_min_seconds": 1.0, "poll_max_seconds": 2.0}


def test_kill_9_of_the_leader_hands_its_files_in_flight_to_the_standby(
    pair: tuple[Pair, Any],
) -> None:
    hosts, sandbox = pair
    alpha = hosts["alpha"].start()
    beta = hosts["beta"].start(ready=EITHER)
    assert beta.logged_since_start("leadership_standby") and hosts.leader() == "alpha"
    texts = {f"csv/f{n:02d}.csv": lead_file(n) for n in range(12)}
    for relative, text in texts.items():
        drop(hosts.root, relative, text)
    wait_for(lambda: alpha.count("batch_created") >= 4, timeout=60, what="4 batches by alpha")
    # Only the leader works: the standby has claimed nothing and called Marketo for nothing.
    assert not beta.logged_since_start("file_claimed", "marketo_import_created")
    assert not beta.logged_since_start("marketo_token_refreshed")

    killed = time.time()
    alpha.kill()
    [acquired] = wait_for(
        lambda: beta.logged_since_start("leadership_acquired"),
        timeout=LEASE * 5,
        what="beta leading",
    )
    takeover = at(acquired) - killed
    print(f"\nkill -9 of the leader -> standby leads after {takeover:.2f} s (lease {LEASE:g} s)")
    assert acquired["epoch"] == 2 and acquired["previous_leader"] == "alpha"

    done = hosts.root / "done"
    wait_for(lambda: len(originals_under(done)) == len(texts), timeout=90, what="all in done/")
    for relative, text in texts.items():
        assert (done / relative).read_text() == text, relative
    assert len(originals_under(done)) == len(texts)  # each exactly once
    assert not originals_under(hosts.root / "processing") and not originals_under(
        hosts.root / "failed"
    )
    assert len(sandbox_json(sandbox, "leads")["leads"]) == 30 * len(texts)
    batches = sandbox_json(sandbox, "batches")["batches"]
    # Files may share a batch: what was created twice is a batch no file's result names. That
    # only happens when the kill fell between Marketo accepting a create and the journal
    # recording its id; the new leader says so each time.
    used = set()
    for relative in texts:
        result = json.loads((done / (relative + ".result.json")).read_text())
        for part in result["parts"]:
            used.update([part["batch_id"], *part["lost_batch_ids"]])
    assert 0 <= len(batches) - len(used) <= beta.count("batch_resubmitted_uncertain")
    assert hosts.leader() == "beta"

    # alpha comes back (as systemd would restart it) and stands by; any host can tell.
    alpha.start(ready=EITHER)
    assert alpha.logged_since_start("leadership_standby")
    wait_for(lambda: hosts.leader_gauge("alpha") == 0.0, timeout=10, what="alpha's gauge at 0")
    assert hosts.leader_gauge("beta") == 1.0
    leadership = json.loads(hosts.status("alpha", "--json"))["journal"]["leadership"]
    assert (leadership["leader"], leadership["epoch"], leadership["leader_seen"]) == (
        "beta",
        2,
        True,
    )
    roles = {h["name"]: (h["role"], h["seen"]) for h in leadership["hosts"]}
    assert roles == {"alpha": ("standby", True), "beta": ("leader", True)}
    text = hosts.status("alpha")
    assert f"leader: beta since {leadership['since']} (epoch 2, seen" in text
    assert "standby: alpha (seen" in text
    # The run shown is the leader's, on its host; alpha's own config file is not compared.
    assert " on beta, up " in text and "not on this file" not in text
    # The status page of the standby host says the same.
    page = requests.get(hosts.pages["alpha"], timeout=10).text
    assert f'<li class="ok">leader: beta since {leadership["since"]} (epoch 2, seen' in page
    assert '<li class="ok">standby: alpha (seen' in page


def journal_snapshot(hosts: Pair) -> list[Any]:
    return [
        hosts.query("SELECT id, state, destination_path, updated_at FROM files ORDER BY id"),
        hosts.query("SELECT file_id, part_index, batch_id, status FROM parts ORDER BY 1, 2"),
        hosts.query("SELECT count(*) FROM transitions"),
        hosts.query("SELECT epoch, leader FROM leadership"),
    ]


def folder_snapshot(root: Path) -> list[tuple[str, int]]:
    return [(str(p.relative_to(root)), p.stat().st_size) for p in files_under(root)]


@pytest.mark.parametrize("pair", [SPARSE_POLLS], indirect=True, ids=["sparse-polls"])
def test_a_leader_frozen_past_its_lease_wakes_fenced_and_stands_down_touching_nothing(
    pair: tuple[Pair, Any],
) -> None:
    hosts, sandbox = pair
    alpha = hosts["alpha"].start()
    beta = hosts["beta"].start(ready=EITHER)
    texts = {f"csv/g{n:02d}.csv": lead_file(n) for n in range(8)}
    for relative, text in texts.items():
        drop(hosts.root, relative, text)
    wait_for(lambda: alpha.count("batch_created") >= 3, timeout=60, what="3 batches by alpha")

    alpha.signal(signal.SIGSTOP)  # a GC pause, a frozen VM: alpha's threads stop mid-work
    frozen = time.time()
    [acquired] = wait_for(
        lambda: beta.logged_since_start("leadership_acquired"),
        timeout=LEASE * 6,
        what="beta leading",
    )
    print(
        f"\nleader frozen -> standby leads after {at(acquired) - frozen:.2f} s (lease {LEASE:g} s)"
    )
    done = hosts.root / "done"
    wait_for(
        lambda: hosts.query("SELECT count(*) FROM files WHERE state = 'done'") == [(len(texts),)],
        timeout=90,
        what="every file done, by beta",
    )

    before = (
        sandbox_json(sandbox, "stats")["calls"],
        sandbox_json(sandbox, "batches")["batches"],
        journal_snapshot(hosts),
        folder_snapshot(hosts.root),
    )
    alpha.started_at = alpha.log_path.stat().st_size  # what alpha logs from its wake-up on
    alpha.signal(signal.SIGCONT)
    assert alpha.proc is not None
    assert alpha.proc.wait(timeout=30) == EXIT_STOOD_DOWN
    after = (
        sandbox_json(sandbox, "stats")["calls"],
        sandbox_json(sandbox, "batches")["batches"],
        journal_snapshot(hosts),
        folder_snapshot(hosts.root),
    )
    calls_before, calls_after = before[0], after[0]
    assert calls_after.get("create") == calls_before.get("create"), "a batch created after"
    assert after[1:] == before[1:], "the fenced leader changed the journal or the folders"
    # Every request asks the leadership guard as it leaves: alpha woke with every batch due
    # for a status call, and sent none. (Only a request already past that last check when the
    # process froze could go out; the sparse polls here make that a fraction of a per cent.)
    extra = {k: n - calls_before.get(k, 0) for k, n in calls_after.items()}
    assert {k: n for k, n in extra.items() if n} == {}, "the fenced leader called Marketo"
    # (The client may log the answer to a create it sent before it froze: that batch was
    # created before the takeover, its id refused by the journal, the part resubmitted by beta.)
    woke = alpha.logged_since_start("file_claimed", "batch_created", "file_settled", "file_done")
    assert woke == []
    [lost] = alpha.logged_since_start("leadership_lost")
    assert lost["host"] == "alpha" and lost["epoch"] == 1
    assert alpha.logged_since_start("daemon_stood_down")
    for relative, text in texts.items():
        assert (done / relative).read_text() == text, relative
    print(f"alpha stood down: {lost['reason']}", file=sys.stderr)
    assert hosts.leader() == "beta"


def test_a_host_that_starts_while_the_database_is_away_waits_for_it(
    tmp_path: Path, make_sandbox: Callable[..., Any], postgres_database: PostgresDatabase
) -> None:
    sandbox = make_sandbox(**SLOW)
    away = f"postgresql://importer@127.0.0.1:{free_port()}/journal"
    config = write_config(
        tmp_path,
        base_url=sandbox.base_url,
        client_id=sandbox.settings.client_id,
        client_secret=sandbox.settings.client_secret,
        dropboxes={"box": {"root": str(tmp_path / "box")}},
        state={**postgres_database.state(host_name="alpha"), "journal": away},
    )
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    daemon.start(ready=("journal_unreachable",))
    try:
        # It stays up and keeps trying (as systemd would otherwise give up restarting it).
        wait_for(lambda: daemon.count("journal_unreachable") >= 2, timeout=20, what="a retry")
        assert not daemon.proc_exited()
        [first] = daemon.logged_since_start("journal_unreachable")[:1]
        assert "cannot connect to the journal database" in first["error"]
        assert postgres_database.password() not in daemon.log_path.read_text()
    finally:
        assert daemon.stop() == 0
