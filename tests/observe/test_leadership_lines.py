"""What status says about leadership, from the journal's leadership and hosts rows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dropbox_importer.observe.leadership import leadership_document, leadership_lines
from dropbox_importer.pipeline.journal import Journal

T0 = datetime(2026, 11, 29, 4, 0, tzinfo=UTC)
LEASE = 15.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def journal(tmp_path: Path, clock: Clock) -> Iterator[Journal]:
    journal = Journal.open(tmp_path, clock=clock)
    yield journal
    journal.close()


def lines(journal: Journal, clock: Clock) -> list[str]:
    # The rows are the same on both engines: SQLite stands in for the shared journal here.
    return leadership_lines(leadership_document(journal, LEASE, clock.now))


def test_a_journal_nobody_led_yet(journal: Journal, clock: Clock) -> None:
    assert lines(journal, clock) == ["leader: none yet (no daemon has led this journal)"]


def test_the_leader_since_when_and_each_standby_seen(journal: Journal, clock: Clock) -> None:
    journal.claim_leadership("alpha")
    journal.record_host("beta", "standby")
    clock.now += timedelta(seconds=4)
    journal.record_host("alpha", "leader")
    assert lines(journal, clock) == [
        "leader: alpha since 2026-11-29T04:00:00Z (epoch 1, seen 0s ago)",
        "standby: beta (seen 4s ago)",
    ]


def test_a_silent_leader_and_no_standby_are_named_as_such(journal: Journal, clock: Clock) -> None:
    journal.claim_leadership("alpha")
    journal.record_host("beta", "standby")
    clock.now += timedelta(minutes=5)
    assert lines(journal, clock) == [
        "leader: alpha since 2026-11-29T04:00:00Z (epoch 1, LAST SEEN 5m ago: frozen or down? "
        "a standby takes over within the lease)",
        "standby: NONE SEEN: nothing takes over if the leader stops",
        "standby: beta (LAST SEEN 5m ago)",
    ]


def test_a_leader_that_stopped_leaves_no_host_leading(journal: Journal, clock: Clock) -> None:
    journal.claim_leadership("alpha")
    clock.now += timedelta(seconds=30)
    journal.record_host("alpha", "stopped")
    [line, _] = lines(journal, clock)
    assert (
        line
        == "leader: alpha since 2026-11-29T04:00:00Z (epoch 1, STOPPED 0s ago: no host leads now)"
    )
