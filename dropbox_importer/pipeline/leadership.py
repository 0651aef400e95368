"""Who works: one daemon leads per journal, the others stand by; a leader that froze is fenced.

On SQLite (one host) `SoleLeader` leads at once: the state directory's lock already makes its
daemon the only one. On PostgreSQL every host that names the journal runs a daemon, and
`SharedLeadership` decides, the way the file-ingest systems operators trust do it (Camel's and
Spring Integration's JDBC leadership): with the database they already run, not a protocol of
our own.

- **The lock**: a session-level advisory lock (`pg_try_advisory_lock`) on a connection of its
  own. The server drops it when that session ends: at once when the process dies (the kernel
  closes its socket), and `lease_seconds` after the last heartbeat when the process or its host
  freezes or loses the network (`idle_session_timeout`; the leader sends a heartbeat every
  quarter lease, a frozen one none). A standby asks for the lock every fifth of the lease.
- **Standby**: records itself in the journal's `hosts` and waits. It does not watch, claim or
  call Marketo, so each instance keeps one call budget and one queue.
- **Takeover**: the standby that gets the lock bumps the fencing epoch (`claim_leadership`,
  which waits for a write the old leader has in progress; the server ends that transaction a
  lease after it stalled) and the daemon then runs the recovery a restart runs.
- **Fencing**: the journal refuses every write of an older epoch (journal.py). What the journal
  cannot see (a rename, a call to Marketo) asks `guard()` first, which refuses once no heartbeat
  has succeeded for three quarters of the lease: before the server can drop the lock, so before
  any standby can lead. A leader that is refused either way stands down: it logs
  `leadership_lost`, stops, and its daemon exits with EXIT_STOOD_DOWN (systemd restarts it, as a
  standby).

What fencing cannot undo is an effect already past its guard when the process froze: one rename
(a claim the next recovery adopts, or a settle move the new leader finds done) or one request to
Marketo (a create the new leader also sends: the part was marked uncertain before it, exactly as
when a create's answer is lost to a crash).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import structlog

from dropbox_importer.marketo.errors import Stopped
from dropbox_importer.pipeline.journal import Fenced, Journal, JournalError

if TYPE_CHECKING:  # psycopg is imported only for a shared journal
    from dropbox_importer.pipeline.postgres import Database, PostgresConnection

log = structlog.get_logger(__name__)

# The exit code of a daemon that stood down (EX_TEMPFAIL): systemd's Restart=on-failure brings
# it back as a standby.
EXIT_STOOD_DOWN = 75
# The advisory lock that makes a leader, one per database ("dbi-lead").
LEADER_LOCK = 0x6462692D6C656164
_UNANNOUNCED = object()
# The heartbeat: proves the session is alive (and resets its idle timer) and still holds the lock.
HOLDING = (
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND pid = pg_backend_pid())"
)


# Named for what happened, like Stopped, which it is: every wait and call in hand ends with it.
class LeadershipLost(Stopped):
    """This daemon no longer leads: no file may move and no call may reach Marketo."""


class Leadership(Protocol):
    """What the daemon asks of its leadership, on either engine."""

    @property
    def lost(self) -> str | None:
        """Why this daemon stopped leading (None while it leads or has not yet led)."""
        ...

    @property
    def leading(self) -> bool:
        """True from the granted epoch until leadership is lost or given up."""
        ...

    def wait_to_lead(self, stop: threading.Event, standing_by: Callable[[str], None]) -> bool:
        """Block until this daemon leads (True) or `stop` is set (False)."""
        ...

    def guard(self) -> None:
        """Return if this daemon may act now; raise LeadershipLost otherwise."""
        ...

    def close(self) -> None:
        """Give leadership up (or stop standing by) and note the host stopped."""
        ...


class NoLeadership:
    """Before the daemon has asked: nobody leads, nothing may act."""

    lost: str | None = None
    leading = False

    def wait_to_lead(self, stop: threading.Event, standing_by: Callable[[str], None]) -> bool:
        """Never leads."""
        return False

    def guard(self) -> None:
        """Always refuses."""
        raise LeadershipLost("this daemon does not lead its journal")

    def close(self) -> None:
        """Nothing to give up."""


class SoleLeader:
    """SQLite: the only daemon of its journal, leader from the start."""

    def __init__(self, journal: Journal, host: str) -> None:
        self._journal = journal
        self._host = host
        self._leading = False

    @property
    def lost(self) -> str | None:
        """Never lost: nobody else can take a SQLite journal over."""
        return None

    @property
    def leading(self) -> bool:
        """True once the epoch is claimed."""
        return self._leading

    def wait_to_lead(self, stop: threading.Event, standing_by: Callable[[str], None]) -> bool:
        """Claim the next epoch at once."""
        epoch = self._journal.claim_leadership(self._host)
        self._leading = True
        # At debug: on one host leading is no news (the state directory's lock said it all).
        log.debug("leadership_acquired", host=self._host, epoch=epoch, engine="sqlite")
        return True

    def guard(self) -> None:
        """Always allowed."""

    def close(self) -> None:
        """Note the host stopped."""
        self._leading = False
        _note_stopped(self._journal, self._host)


class SharedLeadership:
    """PostgreSQL: an advisory lock, a heartbeat, a fencing epoch (see the module doc)."""

    def __init__(
        self,
        journal: Journal,
        database: Database,
        host: str,
        *,
        on_lost: Callable[[str], None] = lambda _reason: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._journal = journal
        self._database = database
        self._host = host
        self._on_lost = on_lost
        self._clock = clock
        lease = database.lease_seconds
        self.lease_seconds = lease
        self.beat_every = lease / 4
        self.poll_every = max(lease / 5, 0.1)
        self.valid_for = lease * 3 / 4
        self._conn: PostgresConnection | None = None
        self._mutex = threading.Lock()
        self._renewed_at = float("-inf")  # when the last heartbeat that succeeded was sent
        self._lost: str | None = None
        self._leading = False
        self._stopping = threading.Event()
        self._beats: threading.Thread | None = None
        self.epoch: int | None = None

    @property
    def lost(self) -> str | None:
        """Why leadership was lost, once it was."""
        return self._lost

    @property
    def leading(self) -> bool:
        """True from the granted epoch until leadership is lost or given up."""
        return self._leading and self._lost is None

    # -- standing by ------------------------------------------------------------------------

    def wait_to_lead(self, stop: threading.Event, standing_by: Callable[[str], None]) -> bool:
        """Stand by until the lock is ours, then claim the next epoch; False if stopped first.

        `standing_by(line)` is called at every poll with a sentence for systemd's status.
        """
        began = self._clock()
        announced: object = _UNANNOUNCED
        while not stop.is_set():
            asked = self._clock()
            if self._try_lock():
                break
            leader = self._note_standby()
            if leader != announced:
                announced = leader
                log.info("leadership_standby", host=self._host, leader=leader)
            standing_by(f"standing by; {leader or 'no host'} leads")
            stop.wait(max(self.poll_every - (self._clock() - asked), 0.0))
        else:
            return False
        with self._mutex:
            self._renewed_at = asked
        self._beats = threading.Thread(target=self._beat, name="leadership", daemon=True)
        self._beats.start()
        previous = self._journal.leadership()
        self.epoch = self._journal.claim_leadership(self._host, on_fenced=self._fenced)
        self._leading = True
        log.info(
            "leadership_acquired",
            host=self._host,
            epoch=self.epoch,
            previous_leader=previous.leader,
            standby_seconds=round(self._clock() - began, 3),
            lease_seconds=self.lease_seconds,
        )
        return True

    def _try_lock(self) -> bool:
        from dropbox_importer.pipeline.postgres import connect

        try:
            if self._conn is None:
                self._conn = connect(
                    self._database,
                    purpose=f"leader lock ({self._host})",
                    settings={"idle_session_timeout": f"{int(self.lease_seconds * 1000)}ms"},
                    reopen=False,  # a new session would not hold the lock
                )
            row = self._conn.execute("SELECT pg_try_advisory_lock(?)", (LEADER_LOCK,)).fetchone()
            return bool(row[0])
        except JournalError as exc:
            if self._conn is not None:
                # The session ended (a database restart, or this standby was frozen past the
                # lease): a new one at the next poll.
                log.info("leadership_session_ended", host=self._host, error=str(exc))
            else:  # the database is away: keep standing by, connect again at the next poll
                log.warning("leadership_database_unreachable", host=self._host, error=str(exc))
            self._drop_connection()
            return False

    def _note_standby(self) -> str | None:
        try:
            self._journal.record_host(self._host, "standby")
            return self._journal.leadership().leader
        except JournalError as exc:
            log.warning("leadership_database_unreachable", host=self._host, error=str(exc))
            return None

    # -- leading ----------------------------------------------------------------------------

    def _beat(self) -> None:
        while not self._stopping.wait(self.beat_every):
            sent = self._clock()
            try:
                assert self._conn is not None
                held = self._conn.execute(HOLDING).fetchone()[0]
            except (JournalError, AssertionError) as exc:
                self._lose(f"the database session holding the lock ended: {exc}")
                return
            if not held:
                self._lose("the database session no longer holds the leadership lock")
                return
            with self._mutex:
                self._renewed_at = sent
            try:
                self._journal.record_host(self._host, "leader")
            except JournalError as exc:
                log.warning("leadership_heartbeat_unrecorded", host=self._host, error=str(exc))

    def guard(self) -> None:
        """Return if this daemon may act now; raise LeadershipLost otherwise."""
        if self._lost is None:
            with self._mutex:
                silent = self._clock() - self._renewed_at
            if silent > self.valid_for:
                self._lose(
                    f"no heartbeat for {silent:.1f} s (more than {self.valid_for:g} s: this "
                    "process or its host was frozen, or the database unreachable)"
                )
        if self._lost is not None:
            raise LeadershipLost(self._lost)

    def _fenced(self, exc: Fenced) -> None:
        self._lose(str(exc))

    def _lose(self, reason: str) -> None:
        with self._mutex:
            if self._lost is not None:
                return
            self._lost = reason
        log.error("leadership_lost", host=self._host, epoch=self.epoch, reason=reason)
        self._on_lost(reason)

    # -- giving up --------------------------------------------------------------------------

    def close(self) -> None:
        """Stop acting, note the host stopped, and let the lock go (a standby takes over)."""
        with self._mutex:
            if self._lost is None:
                self._lost = "stopping"  # from here on guard() refuses: nothing may act
        self._stopping.set()
        if self._beats is not None:
            self._beats.join(timeout=self.lease_seconds)
        if self._leading:
            _note_stopped(self._journal, self._host)
        self._leading = False
        self._drop_connection()

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception as exc:  # a broken session: the server has dropped it already
                log.debug("leadership_close_failed", error=str(exc))
            self._conn = None


def _note_stopped(journal: Journal, host: str) -> None:
    try:
        journal.record_host(host, "stopped")
    except JournalError as exc:
        log.warning("host_stop_unrecorded", host=host, error=str(exc))
