"""The journal on a real SQLite file in tmp_path and on a real PostgreSQL database: records,
transitions, recovery, durability.

The `journal` fixture gives each test both engines in turn, so every journal method, including
ones added later, is proven on both with the same test.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import structlog

from dropbox_importer.marketo.models import BatchState, BatchStatus
from dropbox_importer.pipeline.journal import (
    JOURNAL_NAME,
    SCHEMA_VERSION,
    Journal,
    JournalError,
    RecordNotFoundError,
)
from dropbox_importer.pipeline.postgres import Database, open_postgres
from dropbox_importer.pipeline.records import JobMember
from dropbox_importer.pipeline.states import FileState, InvalidTransition
from tests.postgres import PostgresDatabase, PostgresServer

S = FileState


class Clock:
    """A settable clock, so compaction cut-offs are exact rather than timed."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 29, 3, 15, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


Opener = Callable[..., Journal]


def database(db: PostgresDatabase) -> Database:
    return Database(db.url, db.password_file.read_text().strip(), lease_seconds=5.0)


@pytest.fixture(params=["sqlite", "postgresql"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens the journal again and again on the same file or database; closes each at the end."""
    opened: list[Journal] = []
    if request.param == "sqlite":

        def open_one(clock: Callable[[], datetime] | None = None) -> Journal:
            opened.append(Journal.open(tmp_path / "state", clock=clock or Clock()))
            return opened[-1]
    else:
        db = database(request.getfixturevalue("postgres_database"))

        def open_one(clock: Callable[[], datetime] | None = None) -> Journal:
            opened.append(open_postgres(db, clock=clock or Clock()))
            return opened[-1]

    yield open_one
    for journal in opened:
        journal.close()


@pytest.fixture
def journal(opener: Opener, clock: Clock) -> Journal:
    return opener(clock)


def claim(journal: Journal, name: str = "leads.csv", dropbox: str = "acme") -> int:
    return journal.record_claim(
        dropbox,
        "list-42",
        name,
        Path(f"/box/inbox/list-42/{name}"),
        Path(f"/box/processing/list-42/{name}"),
        123,
        "ab" * 32,
    )


def finish(journal: Journal, file_id: int, end: FileState = S.DONE) -> None:
    for state in (S.SUBMITTING, S.POLLING, S.SETTLING, end):
        journal.transition(file_id, state)


def test_claim_is_recorded_with_every_field(journal: Journal, clock: Clock) -> None:
    file_id = claim(journal)
    record = journal.get(file_id)
    assert (record.id, record.dropbox, record.route, record.name) == (
        file_id,
        "acme",
        "list-42",
        "leads.csv",
    )
    assert record.inbox_path == Path("/box/inbox/list-42/leads.csv")
    assert record.processing_path == Path("/box/processing/list-42/leads.csv")
    assert record.destination_path is None
    assert record.state is S.CLAIMED
    assert (record.size, record.sha256) == (123, "ab" * 32)
    assert record.claimed_at == clock.now and record.finished_at is None
    [first] = journal.transitions(file_id)
    assert (first.from_state, first.to_state, first.at) == (None, S.CLAIMED, clock.now)


def test_transitions_are_recorded_in_order_with_detail(journal: Journal, clock: Clock) -> None:
    file_id = claim(journal)
    journal.transition(file_id, S.SUBMITTING, "2 parts")
    clock.now += timedelta(seconds=5)
    journal.transition(file_id, S.SETTLING, reason="Marketo refused the import")
    journal.transition(file_id, S.FAILED)
    moves = [(t.from_state, t.to_state, t.detail) for t in journal.transitions(file_id)]
    assert moves == [
        (None, S.CLAIMED, "claimed"),
        (S.CLAIMED, S.SUBMITTING, "2 parts"),
        (S.SUBMITTING, S.SETTLING, ""),
        (S.SETTLING, S.FAILED, ""),
    ]
    record = journal.get(file_id)
    assert record.state is S.FAILED
    assert record.reason == "Marketo refused the import"
    assert record.finished_at == clock.now


def test_forbidden_transition_raises_and_changes_nothing(journal: Journal) -> None:
    file_id = claim(journal)
    with pytest.raises(InvalidTransition):
        journal.transition(file_id, S.DONE)
    assert journal.get(file_id).state is S.CLAIMED
    assert len(journal.transitions(file_id)) == 1
    journal.transition(file_id, S.SUBMITTING)  # the rolled-back transaction left nothing open
    assert journal.get(file_id).state is S.SUBMITTING


def test_two_threads_racing_the_same_transition_only_one_wins(journal: Journal) -> None:
    file_id = claim(journal)
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def race() -> None:
        barrier.wait()
        try:
            journal.transition(file_id, S.SUBMITTING)
            outcomes.append("won")
        except InvalidTransition:
            outcomes.append("lost")

    threads = [threading.Thread(target=race) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert sorted(outcomes) == ["lost"] * 7 + ["won"]
    assert len(journal.transitions(file_id)) == 2


def test_many_threads_claiming_at_once_get_distinct_ids(journal: Journal) -> None:
    ids: list[int] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        for i in range(20):
            file_id = claim(journal, f"t{n}-{i}.csv")
            journal.transition(file_id, S.SUBMITTING)
            with lock:
                ids.append(file_id)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(set(ids)) == 120
    assert journal.counts()[S.SUBMITTING] == 120


def test_destination_recorded_once_settling_wins(journal: Journal) -> None:
    file_id = claim(journal)
    first = Path("/box/done/list-42/leads.csv")
    assert journal.record_destination(file_id, first) == first
    journal.transition(file_id, S.SETTLING)
    other = Path("/box/done/list-42/leads.20261129T031500Z.csv")
    assert journal.record_destination(file_id, other) == first
    assert journal.get(file_id).destination_path == first


def test_destination_before_settling_may_be_decided_again(journal: Journal) -> None:
    file_id = claim(journal)
    journal.record_destination(file_id, Path("/box/failed/leads.csv"))
    # A kill before SETTLING: the replay decided otherwise, and nothing has moved yet.
    done = Path("/box/done/leads.csv")
    assert journal.record_destination(file_id, done) == done
    assert journal.get(file_id).destination_path == done


def test_parts_batches_and_statuses(journal: Journal, clock: Clock) -> None:
    file_id = claim(journal)
    journal.record_part(file_id, 0, first_line=2, rows=100, size=4000)
    journal.record_part(file_id, 1, first_line=102, rows=5, size=200, path=Path("/s/p1.csv"))
    journal.mark_submission_uncertain(file_id, 0)
    assert journal.parts(file_id)[0].submission_uncertain
    journal.record_batch(file_id, 0, 3404)
    journal.record_batch(file_id, 1, 3405)
    journal.record_batch_status(file_id, BatchStatus(3404, BatchState.IMPORTING))
    part0, part1 = journal.parts(file_id)
    assert not part0.submission_uncertain and part0.created_at == clock.now
    assert part0.status is BatchState.IMPORTING and not part0.final
    assert part1.path == Path("/s/p1.csv") and part1.status is None and not part1.final
    done = BatchStatus(3404, BatchState.COMPLETE, 99, 1, 2, "Import completed with errors")
    journal.record_batch_status(file_id, done)
    part0 = journal.parts(file_id)[0]
    assert part0.final and part0.batch_status() == done and part0.finished_at == clock.now


def test_recording_a_part_again_keeps_its_batch(journal: Journal) -> None:
    file_id = claim(journal)
    journal.record_part(file_id, 0, first_line=2, rows=10, size=100)
    journal.record_batch(file_id, 0, 7)
    journal.record_part(file_id, 0, first_line=2, rows=10, size=100)
    [part] = journal.parts(file_id)
    assert part.batch_id == 7


def test_polling_starts_only_once_every_part_has_a_batch(journal: Journal) -> None:
    file_id = claim(journal)
    journal.transition(file_id, S.SUBMITTING)
    journal.record_part(file_id, 0, first_line=2, rows=10, size=100)
    journal.record_part(file_id, 1, first_line=12, rows=10, size=100)
    journal.record_batch(file_id, 0, 3401)
    assert not journal.finish_submitting(file_id)
    assert journal.get(file_id).state is S.SUBMITTING
    journal.record_batch(file_id, 1, 3402)
    assert journal.finish_submitting(file_id)
    assert journal.get(file_id).state is S.POLLING
    assert journal.finish_submitting(file_id)  # already polling: nothing to do, all sent


def test_a_lost_batch_frees_its_part_once_then_fails_it(journal: Journal, clock: Clock) -> None:
    file_id = claim(journal)
    journal.transition(file_id, S.SUBMITTING)
    journal.record_part(file_id, 0, first_line=2, rows=10, size=100)
    journal.record_batch(file_id, 0, 3401)
    journal.record_batch_status(file_id, BatchStatus(3401, BatchState.IMPORTING, 4))
    assert journal.finish_submitting(file_id)
    lost, moved = journal.record_lost_batch(file_id, 3401, resubmit=True, message="unused")
    assert (lost, moved) == ((3401,), True)
    [part] = journal.parts(file_id)
    assert (part.batch_id, part.status, part.leads_processed) == (None, None, 0)
    assert part.lost_batch_ids == (3401,)
    assert journal.get(file_id).state is S.SUBMITTING
    assert journal.transitions(file_id)[-1].detail == "lost 3401"
    journal.record_batch(file_id, 0, 3405)
    assert journal.finish_submitting(file_id)
    lost, moved = journal.record_lost_batch(file_id, 3405, resubmit=False, message="lost twice")
    assert (lost, moved) == ((3401, 3405), False)
    [part] = journal.parts(file_id)
    assert (part.batch_id, part.status, part.message) == (3405, BatchState.FAILED, "lost twice")
    assert part.final and part.finished_at == clock.now
    assert journal.get(file_id).state is S.POLLING
    with pytest.raises(RecordNotFoundError, match="batch 3401"):
        journal.record_lost_batch(file_id, 3401, resubmit=True, message="")


def test_a_journal_of_schema_1_gains_lost_batches_and_keeps_its_parts(tmp_path: Path) -> None:
    from dropbox_importer.pipeline.journal import MIGRATIONS

    raw = sqlite3.connect(tmp_path / JOURNAL_NAME)
    raw.executescript(MIGRATIONS[0])
    raw.execute(
        "INSERT INTO files (id, dropbox, route, name, inbox_path, processing_path, state, size,"
        " sha256, claimed_at, updated_at) VALUES (1, 'acme', '', 'a.csv', '/i', '/p', 'polling',"
        " 1, '00', '2026-11-29T03:15:00.000000Z', '2026-11-29T03:15:00.000000Z')"
    )
    raw.execute(
        "INSERT INTO parts (file_id, part_index, first_line, rows, size, batch_id)"
        " VALUES (1, 0, 2, 10, 100, 3401)"
    )
    raw.execute("PRAGMA user_version=1")
    raw.commit()
    raw.close()
    journal = Journal.open(tmp_path)
    [part] = journal.parts(1)
    assert (part.batch_id, part.lost_batch_ids) == (3401, ())
    journal.close()


def test_unknown_ids_raise_a_clear_error(journal: Journal) -> None:
    file_id = claim(journal)
    with pytest.raises(RecordNotFoundError, match="no file 999"):
        journal.get(999)
    with pytest.raises(KeyError):
        journal.transition(999, S.SUBMITTING)
    with pytest.raises(RecordNotFoundError, match="no part 3"):
        journal.record_batch(file_id, 3, 1)
    with pytest.raises(RecordNotFoundError, match="batch 42"):
        journal.record_batch_status(file_id, BatchStatus(42, BatchState.QUEUED))


def test_local_failures_round_trip(journal: Journal) -> None:
    file_id = claim(journal)
    journal.record_local_failures(file_id, {7: "lookup field is empty", 3: "bad"})
    journal.record_local_failures(file_id, {7: "lookup field is empty"})
    assert journal.local_failures(file_id) == {3: "bad", 7: "lookup field is empty"}


def test_unfinished_recent_and_counts(journal: Journal) -> None:
    a = claim(journal, "a.csv")
    b = claim(journal, "b.csv", dropbox="globex")
    c = claim(journal, "c.csv")
    finish(journal, a)
    journal.transition(c, S.SUBMITTING)
    assert [r.id for r in journal.unfinished()] == [b, c]
    assert [r.id for r in journal.unfinished("acme")] == [c]
    assert [r.name for r in journal.recent(2)] == ["c.csv", "b.csv"]
    assert [r.name for r in journal.recent(dropbox="globex")] == ["b.csv"]
    counts = journal.counts()
    assert counts[S.DONE] == 1 and counts[S.CLAIMED] == 1 and counts[S.SUBMITTING] == 1
    assert counts[S.FAILED] == 0 and set(counts) == set(FileState)
    assert journal.counts("globex")[S.CLAIMED] == 1


def test_compact_drops_only_old_finished_files(journal: Journal, clock: Clock) -> None:
    old_done = claim(journal, "old.csv")
    journal.record_part(old_done, 0, first_line=2, rows=1, size=10)
    finish(journal, old_done)
    old_failed = claim(journal, "old-failed.csv")
    finish(journal, old_failed, S.FAILED)
    stuck = claim(journal, "stuck.csv")
    clock.now += timedelta(days=31)
    fresh = claim(journal, "fresh.csv")
    finish(journal, fresh)
    assert journal.compact(timedelta(days=30)) == 2
    assert {r.id for r in journal.recent(10)} == {stuck, fresh}
    assert journal.parts(old_done) == [] and journal.transitions(old_done) == []
    with pytest.raises(RecordNotFoundError):
        journal.get(old_done)


def test_reopening_keeps_everything_and_sets_durable_modes(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path)
    file_id = claim(journal)
    journal.transition(file_id, S.SUBMITTING)
    mode = journal._conn.execute("PRAGMA journal_mode").fetchone()[0]
    synchronous = journal._conn.execute("PRAGMA synchronous").fetchone()[0]
    journal.close()
    assert (mode, synchronous) == ("wal", 2)  # 2 is FULL
    again = Journal.open(tmp_path)
    assert again.get(file_id).state is S.SUBMITTING
    again.close()
    raw = sqlite3.connect(tmp_path / JOURNAL_NAME)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    raw.close()


def test_a_journal_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    Journal.open(tmp_path).close()
    raw = sqlite3.connect(tmp_path / JOURNAL_NAME)
    raw.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(JournalError, match="newer"):
        Journal.open(tmp_path)


def test_an_unwritable_state_dir_is_named_in_the_error(tmp_path: Path) -> None:
    (tmp_path / JOURNAL_NAME).mkdir()  # a directory where the database file should be
    with pytest.raises(JournalError, match=str(tmp_path)):
        Journal.open(tmp_path)


KILLED_WRITER = """
import os, signal, sys
from pathlib import Path
from dropbox_importer.pipeline.journal import Journal
from dropbox_importer.pipeline.states import FileState
j = Journal.open(Path(sys.argv[1]))
file_id = j.record_claim("acme", "r", "x.csv", Path("/i/x.csv"), Path("/p/x.csv"), 1, "00")
j.transition(file_id, FileState.SUBMITTING)
print(file_id, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_write_survives_kill_9_right_after_it_returns(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == -9, done.stderr
    file_id = int(done.stdout.splitlines()[-1])  # the last line; log events come first
    journal = Journal.open(tmp_path)
    assert journal.get(file_id).state is S.SUBMITTING
    assert [r.id for r in journal.unfinished()] == [file_id]
    journal.close()


def test_a_claim_keeps_when_the_file_was_first_seen_and_its_mtime(
    journal: Journal, clock: Clock
) -> None:
    seen = clock.now - timedelta(seconds=40)
    modified = datetime(2019, 1, 1, tzinfo=UTC)  # `sftp put -p` keeps the partner's old mtime
    file_id = journal.record_claim(
        "acme", "", "x.csv", Path("/i"), Path("/p"), 1, "00", dropped_at=modified, seen_at=seen
    )
    record = journal.get(file_id)
    assert (record.seen_at, record.dropped_at, record.claimed_at) == (seen, modified, clock.now)
    assert record.round == 1 and record.details == {}


def test_a_changed_file_starts_a_new_round_keeping_its_earlier_parts(journal: Journal) -> None:
    file_id = claim(journal)
    journal.transition(file_id, S.SUBMITTING)
    journal.record_part(file_id, 0, first_line=2, rows=2, size=30)
    journal.record_batch(file_id, 0, 501)
    journal.record_local_failures(file_id, {3: "lookup field is empty"})
    journal.record_details(file_id, {"blank_rows": 1})
    journal.transition(file_id, S.POLLING)
    journal.transition(file_id, S.CHANGED, "grew after its claim")
    assert journal.start_round(file_id, 300, "cd" * 32, None) == 2
    record = journal.get(file_id)
    assert (record.state, record.round, record.size, record.sha256) == (
        S.CLAIMED,
        2,
        300,
        "cd" * 32,
    )
    assert record.details == {} and journal.local_failures(file_id) == {}
    journal.record_part(file_id, 1, first_line=2, rows=10, size=300, round_number=2)
    assert [(p.index, p.round, p.batch_id) for p in journal.parts(file_id)] == [
        (0, 1, 501),
        (1, 2, None),
    ]
    assert journal.transitions(file_id)[-1].detail == "round 2"


def test_a_settled_file_is_reopened_only_through_changed(journal: Journal, clock: Clock) -> None:
    file_id = claim(journal)
    finish(journal, file_id)
    assert journal.finished_since(clock.now - timedelta(minutes=5))[0].id == file_id
    with pytest.raises(InvalidTransition):
        journal.start_round(file_id, 1, "00", None)
    journal.reopen(file_id, Path("/box/processing/list-42/leads.csv"), "changed in done/")
    record = journal.get(file_id)
    assert record.state is S.CHANGED and record.finished_at is None
    assert journal.finished_since(clock.now - timedelta(minutes=5)) == []
    assert record.id in [r.id for r in journal.unfinished()]


def test_a_journal_of_schema_version_1_is_migrated_keeping_its_files(tmp_path: Path) -> None:
    from dropbox_importer.pipeline.journal import MIGRATIONS

    state = tmp_path / "state"
    state.mkdir()
    raw = sqlite3.connect(state / JOURNAL_NAME)
    raw.executescript(MIGRATIONS[0])
    raw.execute(
        "INSERT INTO files (dropbox, route, name, inbox_path, processing_path, state, size,"
        " sha256, claimed_at, updated_at) VALUES ('acme', '', 'old.csv', '/i', '/p', 'polling',"
        " 5, '00', '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z')"
    )
    raw.execute(
        "INSERT INTO parts (file_id, part_index, first_line, rows, size) VALUES (1, 0, 2, 1, 5)"
    )
    raw.execute("PRAGMA user_version=1")
    raw.commit()
    raw.close()
    journal = Journal.open(state)
    try:
        [record] = journal.unfinished()
        assert (record.name, record.round, record.seen_at, record.details) == (
            "old.csv",
            1,
            None,
            {},
        )
        assert journal.parts(record.id)[0].round == 1
    finally:
        journal.close()


def test_reopening_a_postgresql_journal_keeps_everything_and_its_schema_version(
    postgres_database: PostgresDatabase,
) -> None:
    db = database(postgres_database)
    journal = open_postgres(db)
    file_id = claim(journal)
    journal.transition(file_id, S.SUBMITTING)
    journal.close()
    again = open_postgres(db)
    assert again.get(file_id).state is S.SUBMITTING
    again.close()
    with psycopg.connect(db.url, password=db.password) as conn:
        assert conn.execute("SELECT version FROM journal_schema").fetchall() == [(SCHEMA_VERSION,)]


def test_a_postgresql_journal_from_a_newer_version_is_refused(
    postgres_database: PostgresDatabase,
) -> None:
    db = database(postgres_database)
    open_postgres(db).close()
    with psycopg.connect(db.url, password=db.password, autocommit=True) as conn:
        conn.execute("UPDATE journal_schema SET version = version + 1")
    with pytest.raises(JournalError, match="newer"):
        open_postgres(db)


MIGRATE_AT_ONCE = """
import sys
from dropbox_importer.pipeline.postgres import Database, open_postgres
db = Database(sys.argv[1], sys.argv[2])
open_postgres(db).close()
"""


def test_hosts_starting_at_once_migrate_one_after_the_other(
    postgres_database: PostgresDatabase,
) -> None:
    db = database(postgres_database)
    starts = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATE_AT_ONCE, db.url, db.password or ""],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    errors = [p.communicate(timeout=60)[1] for p in starts]
    assert [p.returncode for p in starts] == [0] * 4, errors
    journal = open_postgres(db)
    assert journal.leadership().epoch == 0  # the seed row was inserted once
    journal.close()


def test_a_wrong_password_is_named_as_the_problem_and_never_shown(
    postgres_database: PostgresDatabase,
) -> None:
    wrong = Database(postgres_database.url, "s3cret-wrong-password", lease_seconds=5.0)
    with pytest.raises(JournalError) as caught:
        open_postgres(wrong)
    message = str(caught.value)
    assert "password authentication failed" in message
    assert postgres_database.name in message  # which database, so the operator can act
    assert "s3cret-wrong-password" not in message


def test_a_newer_leader_fences_every_write_of_the_older_one(opener: Opener) -> None:
    old, new = opener(), opener()
    fenced: list[JournalError] = []
    assert old.claim_leadership("alpha", on_fenced=fenced.append) == 1
    file_id = claim(old)
    assert new.claim_leadership("beta") == 2
    with pytest.raises(JournalError, match=r"epoch 1, but beta took over under epoch 2"):
        old.transition(file_id, S.SUBMITTING)
    with pytest.raises(JournalError, match="standing down"):
        claim(old, "late.csv")
    assert len(fenced) == 2
    assert new.get(file_id).state is S.CLAIMED  # the refused transition left nothing
    assert [r.name for r in new.recent(10)] == ["leads.csv"]
    new.transition(file_id, S.SUBMITTING)  # the new leader writes on
    leadership = new.leadership()
    assert (leadership.epoch, leadership.leader) == (2, "beta")


def test_hosts_are_recorded_with_their_role_and_when_they_took_it(
    journal: Journal, clock: Clock
) -> None:
    journal.record_host("beta", "standby")
    clock.now += timedelta(seconds=3)
    journal.claim_leadership("alpha")
    clock.now += timedelta(seconds=2)
    journal.record_host("beta", "standby")
    hosts = {h.name: h for h in journal.hosts()}
    assert hosts["alpha"].role == "leader" and hosts["alpha"].since == clock.now - timedelta(
        seconds=2
    )
    assert hosts["beta"].role == "standby"
    assert hosts["beta"].since == clock.now - timedelta(seconds=5)  # same role: since is kept
    assert hosts["beta"].seen_at == clock.now
    assert journal.leadership().since == clock.now - timedelta(seconds=2)


KILLED_POSTGRES_WRITER = """
import os, signal, sys
from pathlib import Path
from dropbox_importer.pipeline.postgres import Database, open_postgres
from dropbox_importer.pipeline.states import FileState
j = open_postgres(Database(sys.argv[1], sys.argv[2]))
file_id = j.record_claim("acme", "r", "x.csv", Path("/i/x.csv"), Path("/p/x.csv"), 1, "00")
j.transition(file_id, FileState.SUBMITTING)
print(file_id, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_postgresql_write_survives_kill_9_right_after_it_returns(
    postgres_database: PostgresDatabase,
) -> None:
    db = database(postgres_database)
    done = subprocess.run(
        [sys.executable, "-c", KILLED_POSTGRES_WRITER, db.url, db.password or ""],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == -9, done.stderr
    file_id = int(done.stdout.splitlines()[-1])
    journal = open_postgres(db)
    assert journal.get(file_id).state is S.SUBMITTING
    assert [r.id for r in journal.unfinished()] == [file_id]
    journal.close()


def test_a_postgresql_session_the_server_ended_is_replaced_at_the_next_call(
    postgres_server: PostgresServer, postgres_database: PostgresDatabase
) -> None:
    journal = open_postgres(database(postgres_database))
    file_id = claim(journal)
    with postgres_server.admin() as admin:
        ended = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND application_name = 'dropbox-importer journal'",
            (postgres_database.name,),
        ).fetchall()
    assert ended == [(True,)]
    with structlog.testing.capture_logs() as logs:
        journal.transition(file_id, S.SUBMITTING)
    assert journal.get(file_id).state is S.SUBMITTING
    assert [e["event"] for e in logs] == ["journal_session_replaced"]
    journal.close()


def test_search_by_glob_drop_box_route_and_state(journal: Journal, clock: Clock) -> None:
    a = claim(journal, "leads-1.csv")
    claim(journal, "leads-22.csv", dropbox="globex")
    c = claim(journal, "other(1).csv")
    finish(journal, a)
    names = lambda **kw: sorted(r.name for r in journal.search(**kw))  # noqa: E731
    assert names(name="leads-?.csv") == ["leads-1.csv"]
    assert names(name="leads*") == ["leads-1.csv", "leads-22.csv"]
    assert names(name="other(1).*") == ["other(1).csv"]  # regex characters are literal
    assert names(name="LEADS*") == []  # case-sensitive, as GLOB is
    assert names(name="*.csv", dropbox="acme", states=frozenset({S.CLAIMED})) == ["other(1).csv"]
    assert [r.id for r in journal.search(route="list-42", limit=1)] == [c]


def test_the_daemons_own_records_round_trip(journal: Journal, clock: Clock) -> None:
    from dropbox_importer.marketo.health import HealthSnapshot
    from dropbox_importer.pipeline.runlog import RunLog

    assert journal.has_table("runs") and not journal.has_table("no_such_table")
    runlog = RunLog(journal, clock=clock)
    run_id = runlog.started("/etc/dropbox-importer/config.yaml", "ab" * 32)
    runlog.running_dropboxes(["globex", "acme"])
    runlog.record_health(HealthSnapshot("main", failures=2, queued_jobs=3))
    runlog.folder_blocked("acme", "csv", "Permission denied")
    clock.now += timedelta(seconds=5)
    runlog.heartbeat()
    run = runlog.last_run()
    assert run is not None and run.id == run_id and run.dropboxes == ["acme", "globex"]
    assert run.heartbeat_at == clock.now and run.stopped_at is None
    [(snapshot, _at)] = runlog.health().values()
    assert (snapshot.failures, snapshot.queued_jobs) == (2, 3)
    [blocked] = runlog.blocked_folders()
    assert (blocked.dropbox, blocked.folder, blocked.reason) == ("acme", "csv", "Permission denied")
    runlog.folder_cleared("acme", "csv")
    runlog.stopped()
    assert runlog.blocked_folders() == [] and runlog.last_run().stopped_at == clock.now  # type: ignore[union-attr]


def sent_alone_so_far(journal: Journal, name: str, rows: int) -> int:
    """A claimed, cut file of one part, waiting to be sent."""
    file_id = claim(journal, name)
    journal.transition(file_id, S.SUBMITTING)
    journal.record_part(file_id, 0, first_line=2, rows=rows, size=rows * 30)
    return file_id


def test_a_shared_job_records_its_members_before_the_create_and_polls_them_together(
    journal: Journal, clock: Clock
) -> None:
    a, b = sent_alone_so_far(journal, "a.csv", 3), sent_alone_so_far(journal, "b.csv", 5)
    members = [JobMember(a, 0, 0, 2, 3), JobMember(b, 0, 3, 2, 5)]
    job_id = journal.record_job("acme", "list-42", members, 250)
    # Before Marketo answers: both parts may be in Marketo, the job has no batch yet.
    assert all(journal.parts(f)[0].submission_uncertain for f in (a, b))
    job = journal.job(job_id)
    assert job is not None and job.batch_id is None and job.rows == 8
    assert job.members == tuple(members) and job.recorded_at == clock.now
    assert journal.record_job_batch(job_id, 3410) == [a, b]
    for file_id in (a, b):
        [part] = journal.parts(file_id)
        assert (part.batch_id, part.submission_uncertain) == (3410, False)
        assert journal.get(file_id).state is S.POLLING
    job = journal.job_of_batch(3410, b)
    assert job is not None and job.id == job_id and job.member(b, 0).first_row == 3
    assert journal.job_of_batch(3999, b) is None


def test_a_shared_batch_ends_with_its_own_counts_and_each_member_its_own(
    journal: Journal,
) -> None:
    a, b = sent_alone_so_far(journal, "a.csv", 3), sent_alone_so_far(journal, "b.csv", 5)
    job_id = journal.record_job("acme", "", [JobMember(a, 0, 0, 2, 3), JobMember(b, 0, 3, 2, 5)], 1)
    journal.record_job_batch(job_id, 3410)
    done = BatchStatus(3410, BatchState.COMPLETE, 6, 2, 1, "Import completed with errors")
    assert journal.record_job_status(done, a) == [a, b]
    job = journal.job(job_id)
    assert job is not None and (job.status, job.rows_failed, job.handled) == (done.status, 2, 8)
    for file_id in (a, b):
        [part] = journal.parts(file_id)
        assert part.final and part.message == done.message
        assert (part.leads_processed, part.rows_failed) == (0, 0)  # theirs come at settle
    journal.record_member_counts(b, 0, 3, 2, 1)
    [part] = journal.parts(b)
    assert (part.leads_processed, part.rows_failed, part.rows_with_warning) == (3, 2, 1)


def test_a_shared_job_not_created_is_forgotten_and_its_parts_are_free(journal: Journal) -> None:
    a, b = sent_alone_so_far(journal, "a.csv", 3), sent_alone_so_far(journal, "b.csv", 5)
    job_id = journal.record_job("acme", "", [JobMember(a, 0, 0, 2, 3), JobMember(b, 0, 3, 2, 5)], 1)
    journal.cancel_job(job_id)
    assert journal.job(job_id) is None and journal.jobs() == []
    assert not any(journal.parts(f)[0].submission_uncertain for f in (a, b))


def test_compaction_forgets_shared_jobs_with_their_files(journal: Journal, clock: Clock) -> None:
    a, b = sent_alone_so_far(journal, "a.csv", 3), sent_alone_so_far(journal, "b.csv", 5)
    job_id = journal.record_job("acme", "", [JobMember(a, 0, 0, 2, 3), JobMember(b, 0, 3, 2, 5)], 1)
    journal.record_job_batch(job_id, 3410)
    for file_id in (a, b):
        journal.transition(file_id, S.SETTLING)
        journal.transition(file_id, S.DONE)
    assert [j.id for j in journal.jobs(dropbox="acme")] == [job_id]
    clock.now += timedelta(days=40)
    assert journal.compact(timedelta(days=30)) == 2
    assert journal.jobs() == [] and journal.job(job_id) is None


def test_a_journal_of_schema_2_gains_shared_jobs_and_keeps_its_files(tmp_path: Path) -> None:
    from dropbox_importer.pipeline.journal import MIGRATIONS

    raw = sqlite3.connect(tmp_path / JOURNAL_NAME)
    for step in MIGRATIONS[:2]:
        raw.executescript(step)
    raw.execute(
        "INSERT INTO files (id, dropbox, route, name, inbox_path, processing_path, state, size,"
        " sha256, claimed_at, updated_at) VALUES (1, 'acme', '', 'a.csv', '/i', '/p', 'polling',"
        " 1, '00', '2026-11-29T03:15:00.000000Z', '2026-11-29T03:15:00.000000Z')"
    )
    raw.execute("PRAGMA user_version=2")
    raw.commit()
    raw.close()
    journal = Journal.open(tmp_path)
    assert journal.get(1).name == "a.csv" and journal.jobs() == []
    journal.close()


def test_a_file_in_its_second_round_polls_once_its_shared_job_is_created(
    journal: Journal,
) -> None:
    # Round 1 was cut but never sent (a write after the claim was found first): its part keeps
    # no batch, and must not hold round 2, sent in a job with another file, in SUBMITTING.
    changed = claim(journal, "changed.csv")
    journal.transition(changed, S.SUBMITTING)
    journal.record_part(changed, 0, first_line=2, rows=2, size=50)
    journal.transition(changed, S.CHANGED, "grew after its claim")
    assert journal.start_round(changed, 90, "cd" * 32, None) == 2
    journal.transition(changed, S.SUBMITTING)
    journal.record_part(changed, 1, first_line=2, rows=3, size=90, round_number=2)
    other = sent_alone_so_far(journal, "other.csv", 2)
    members = [JobMember(other, 0, 0, 2, 2), JobMember(changed, 1, 2, 2, 3)]
    job_id = journal.record_job("acme", "", members, 1)
    assert journal.record_job_batch(job_id, 5000) == [other, changed]
    assert journal.get(changed).state is S.POLLING
    assert journal.get(other).state is S.POLLING


def test_a_shared_batch_is_found_by_its_file_as_batch_ids_are_per_instance(
    journal: Journal,
) -> None:
    # Two instances may each have a batch 5000: one a job files of one drop box shared, the
    # other a file of another drop box sent alone. Neither answer touches the other's parts.
    a, b = sent_alone_so_far(journal, "a.csv", 3), sent_alone_so_far(journal, "b.csv", 5)
    job_id = journal.record_job("acme", "", [JobMember(a, 0, 0, 2, 3), JobMember(b, 0, 3, 2, 5)], 1)
    journal.record_job_batch(job_id, 5000)
    alone = sent_alone_so_far(journal, "alone.csv", 4)
    journal.record_batch(alone, 0, 5000)
    assert journal.job_of_batch(5000, alone) is None
    job = journal.job_of_batch(5000, a)
    assert job is not None and job.id == job_id
    journal.record_batch_status(alone, BatchStatus(5000, BatchState.COMPLETE, 4, 0, 0, "alone"))
    shared = BatchStatus(5000, BatchState.IMPORTING, 2, 0, 0, "shared")
    assert journal.record_job_status(shared, b) == [a, b]
    [part] = journal.parts(alone)
    assert (part.status, part.message) == (BatchState.COMPLETE, "alone")
    assert all(journal.parts(f)[0].message == "shared" for f in (a, b))
    with pytest.raises(RecordNotFoundError):
        journal.record_job_status(shared, alone)
