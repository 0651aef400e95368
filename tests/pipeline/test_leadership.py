"""Leadership on a real PostgreSQL: the advisory lock, standing by, the lease, fencing."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog

from dropbox_importer.pipeline.journal import Fenced, Journal
from dropbox_importer.pipeline.leadership import LeadershipLost, SharedLeadership
from dropbox_importer.pipeline.postgres import Database, open_postgres
from dropbox_importer.pipeline.states import FileState
from dropbox_importer.testing import free_port, wait_for
from tests.postgres import PostgresDatabase


class Host:
    """One host's journal and leadership, with its standby loop in a thread when asked."""

    def __init__(self, name: str, db: Database, clock: Callable[[], float] | None = None) -> None:
        self.journal = open_postgres(db)
        self.lost: list[str] = []
        extra = {} if clock is None else {"clock": clock}
        self.leadership = SharedLeadership(
            self.journal, db, name, on_lost=self.lost.append, **extra
        )
        self.stop = threading.Event()
        self.lines: list[str] = []
        self.result: list[bool] = []
        self.thread: threading.Thread | None = None

    def lead(self) -> bool:
        return self.leadership.wait_to_lead(self.stop, self.lines.append)

    def stand_by(self) -> None:
        self.thread = threading.Thread(target=lambda: self.result.append(self.lead()))
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=30)
        self.leadership.close()
        self.journal.close()


@pytest.fixture
def hosts(postgres_database: PostgresDatabase) -> Iterator[Callable[..., Host]]:
    made: list[Host] = []
    password = postgres_database.password_file.read_text().strip()

    def make(name: str, lease: float = 1.0, clock: Callable[[], float] | None = None) -> Host:
        made.append(Host(name, Database(postgres_database.url, password, lease), clock))
        return made[-1]

    yield make
    for host in made:
        host.close()


def test_the_first_host_leads_and_the_next_stands_by_until_the_leader_lets_go(
    hosts: Callable[..., Host],
) -> None:
    alpha, beta = hosts("alpha"), hosts("beta")
    assert alpha.lead() and alpha.leadership.epoch == 1
    beta.stand_by()
    wait_for(lambda: "standing by; alpha leads" in beta.lines, timeout=10, what="beta standing by")
    assert {h.name: h.role for h in beta.journal.hosts()} == {"alpha": "leader", "beta": "standby"}
    assert beta.result == []  # still standing by while alpha holds the lock

    alpha.leadership.close()
    wait_for(lambda: beta.result == [True], timeout=10, what="beta leading")
    assert beta.leadership.epoch == 2
    leadership = beta.journal.leadership()
    assert (leadership.epoch, leadership.leader) == (2, "beta")
    assert {h.name: h.role for h in beta.journal.hosts()} == {"alpha": "stopped", "beta": "leader"}


def test_a_frozen_leader_loses_the_lock_after_the_lease_and_is_fenced(
    hosts: Callable[..., Host],
) -> None:
    alpha, beta = hosts("alpha", lease=1.0), hosts("beta", lease=1.0)
    assert alpha.lead()
    file_id = alpha.journal.record_claim("box", "csv", "a.csv", Path("/i"), Path("/p"), 1, "00")
    # Frozen: no more heartbeats, but the process and its sessions are still there.
    alpha.leadership._stopping.set()
    beta.stand_by()
    wait_for(lambda: beta.result == [True], timeout=10, what="beta leading after the lease")
    with pytest.raises(LeadershipLost, match="no heartbeat"):
        alpha.leadership.guard()
    with pytest.raises(Fenced, match="beta took over under epoch 2"):
        alpha.journal.transition(file_id, FileState.SUBMITTING)
    assert len(alpha.lost) == 1  # told once, however many refusals follow
    assert not alpha.leadership.leading


def test_the_guard_refuses_once_three_quarters_of_the_lease_pass_without_a_heartbeat(
    hosts: Callable[..., Host],
) -> None:
    now = [1000.0]
    alpha = hosts("alpha", lease=60.0, clock=lambda: now[0])  # no real heartbeat comes
    assert alpha.lead()
    now[0] += 44.0
    alpha.leadership.guard()  # 44 s of 45: still leading
    now[0] += 2.0
    with pytest.raises(LeadershipLost, match=r"no heartbeat for 46\.0 s"):
        alpha.leadership.guard()
    assert alpha.lost and "frozen" in alpha.lost[0]


def test_a_standby_keeps_standing_by_while_the_database_is_away(
    postgres_database: PostgresDatabase, tmp_path: Path
) -> None:
    password = postgres_database.password_file.read_text().strip()
    journal: Journal = open_postgres(Database(postgres_database.url, password))
    away = Database(f"postgresql://importer@127.0.0.1:{free_port()}/x", password, 1.0)
    leadership = SharedLeadership(journal, away, "beta")
    stop = threading.Event()
    with structlog.testing.capture_logs() as logs:
        thread = threading.Thread(target=lambda: leadership.wait_to_lead(stop, lambda _: None))
        thread.start()
        wait_for(
            lambda: sum(e["event"] == "leadership_database_unreachable" for e in logs) >= 2,
            timeout=20,
            what="two polls that found the database away",
        )
        stop.set()
        thread.join(timeout=20)
    assert not thread.is_alive() and not leadership.leading
    assert all(password not in str(event) for event in logs)
    journal.close()
