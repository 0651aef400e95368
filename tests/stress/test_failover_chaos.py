"""Two hosts on one drop box and one PostgreSQL journal, killed, frozen and restarted at random.

For several minutes 200 files arrive while a chaos loop, at random moments, kills a daemon with
SIGKILL (or both at once), or freezes one past its lease and lets it wake, and restarts whatever
is down, as systemd would. Every daemon that stood down (exit 75) is restarted too. At the end
every file must be in done/ exactly once: none lost, none landed twice; a batch sent twice is
only allowed where a kill lost a create's answer, and each one is counted.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dropbox_importer.pipeline.leadership import EXIT_STOOD_DOWN
from tests.daemon.harness import DaemonProcess, wait_for, write_config
from tests.postgres import PostgresDatabase
from tests.stress.tally import Tally, report

FILES = 200
CHAOS_SECONDS = 240.0
LEASE = 2.0
EITHER = ("daemon_ready", "leadership_standby")
ROUTES = ("csv", "csv,list=1001", "csv,partition=Europe", "csv,list=1002")


class Host:
    """One host's daemon, and what the chaos did to it."""

    def __init__(self, daemon: DaemonProcess) -> None:
        self.daemon = daemon
        self.kills = 0
        self.freezes = 0
        self.stand_downs = 0
        self.crashes: list[int] = []

    def running(self) -> bool:
        return self.daemon.proc is not None and not self.daemon.proc_exited()

    def start(self) -> None:
        self.daemon.start(ready=EITHER)

    def restart_if_down(self) -> None:
        """Start the daemon again if it is down; note why it went down if it was not us."""
        proc = self.daemon.proc
        if proc is not None and proc.poll() is not None:
            if proc.returncode == EXIT_STOOD_DOWN:
                self.stand_downs += 1
            elif proc.returncode != -signal.SIGKILL:
                self.crashes.append(proc.returncode)
            self.start()

    def kill(self) -> None:
        if self.running():
            self.daemon.kill()
            self.kills += 1

    def freeze(self, seconds: float) -> None:
        if self.running():
            self.daemon.signal(signal.SIGSTOP)
            self.freezes += 1
            time.sleep(seconds)  # how long the process stays frozen: the chaos, not a wait
            self.daemon.signal(signal.SIGCONT)


@pytest.mark.timeout(1800)  # minutes long by design; pyproject's 120 s is for unit tests
def test_two_hosts_killed_frozen_and_restarted_at_random_lose_nothing_and_land_nothing_twice(
    tmp_path: Path, make_sandbox: Callable[..., Any], postgres_database: PostgresDatabase
) -> None:
    rng = random.Random(17)
    sandbox = make_sandbox(rows_per_second=2000.0, job_overhead_seconds=0.2, window_seconds=2.0)
    root = tmp_path / "box"
    hosts: dict[str, Host] = {}
    for name in ("alpha", "beta"):
        folder = tmp_path / name
        folder.mkdir()
        config = write_config(
            folder,
            base_url=sandbox.base_url,
            client_id=sandbox.settings.client_id,
            client_secret=sandbox.settings.client_secret,
            dropboxes={"box": {"root": str(root), "watch": "events"}},
            state=postgres_database.state(host_name=name, lease_seconds=LEASE),
        )
        hosts[name] = Host(DaemonProcess(config, folder / "daemon.log"))
        hosts[name].start()
    tally = Tally(root)

    def drop_all() -> None:
        for n in range(FILES):
            tally.add(f"{ROUTES[n % len(ROUTES)]}/leads-{n:04d}.csv", n)
            time.sleep(rng.uniform(0.2, 1.6))  # arrivals spread over ~3 minutes

    dropper = threading.Thread(target=drop_all)
    dropper.start()
    began = time.monotonic()
    both = 0
    try:
        while time.monotonic() - began < CHAOS_SECONDS:
            time.sleep(rng.uniform(1.0, 6.0))  # a random moment to strike at, not a wait
            roll = rng.random()
            if roll < 0.15:
                both += 1
                for host in hosts.values():
                    host.kill()
            elif roll < 0.75:
                hosts[rng.choice(sorted(hosts))].kill()
            else:
                hosts[rng.choice(sorted(hosts))].freeze(rng.uniform(0.5, 2 * LEASE + 1))
            time.sleep(rng.uniform(0.0, 2.0))  # down for a moment, as a restarting unit is
            for host in hosts.values():
                host.restart_if_down()
        dropper.join()
        for host in hosts.values():
            host.restart_if_down()
        wait_for(lambda: tally.landed() >= FILES, timeout=600, what="every file settled")
    finally:
        for host in hosts.values():
            host.daemon.stop()
    counts = tally.count(sandbox.base_url)
    logs = [host.daemon for host in hosts.values()]
    resubmitted = sum(d.count("batch_resubmitted_uncertain") for d in logs)
    report(
        "two-host failover chaos",
        counts,
        seconds=round(time.monotonic() - began),
        kills=sum(h.kills for h in hosts.values()),
        both_killed=both,
        freezes=sum(h.freezes for h in hosts.values()),
        stand_downs=sum(h.stand_downs for h in hosts.values()),
        takeovers=sum(d.count("leadership_acquired") for d in logs),
        resubmitted_uncertain=resubmitted,
        crashes=[c for h in hosts.values() for c in h.crashes],
    )
    assert counts["lost"] == 0, counts
    assert counts["landed_twice"] == 0, counts
    assert counts["done"] == FILES, counts
    assert counts["submitted_twice"] <= resubmitted, counts
    assert all(not h.crashes for h in hosts.values())
