"""Which journal a config means: SQLite in `state_dir` (one host), or PostgreSQL hosts share.

The one place that tells the two apart; everything past it speaks to a `Journal`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from dropbox_importer.config import Config
from dropbox_importer.pipeline.journal import JOURNAL_NAME, Journal
from dropbox_importer.pipeline.leadership import Leadership, SharedLeadership, SoleLeader

if TYPE_CHECKING:  # psycopg is imported only for a shared journal
    from dropbox_importer.pipeline.postgres import Database


def _now() -> datetime:
    return datetime.now(UTC)


def journal_location(config: Config) -> str:
    """Where the journal is, as logs and `status` show it (never with a password)."""
    if not config.state.shared:
        return str(config.state_dir / JOURNAL_NAME)
    from dropbox_importer.pipeline.postgres import display_url

    return display_url(config.state.journal)


def open_journal(config: Config, *, clock: Callable[[], datetime] = _now) -> Journal:
    """Open (creating or migrating) the config's journal; JournalError when it cannot be."""
    if not config.state.shared:
        return Journal.open(config.state_dir, clock=clock)
    from dropbox_importer.pipeline.postgres import open_postgres

    return open_postgres(database_of(config), clock=clock)


def database_of(config: Config) -> Database:
    """The PostgreSQL database of a config with a shared journal."""
    from dropbox_importer.pipeline.postgres import Database

    state = config.state
    return Database(state.journal, state.password, state.lease_seconds)


def leadership_for(
    config: Config, journal: Journal, *, on_lost: Callable[[str], None] = lambda _reason: None
) -> Leadership:
    """Who leads `journal`: this daemon alone (SQLite), or the host holding PostgreSQL's lock.

    `on_lost(reason)` is called once if this daemon loses leadership while it leads.
    """
    if not config.state.shared:
        return SoleLeader(journal, config.state.host_name)
    return SharedLeadership(journal, database_of(config), config.state.host_name, on_lost=on_lost)


@contextmanager
def open_shared_read_only(config: Config) -> Iterator[Journal | None]:
    """A shared journal opened read-only (None while no daemon has created it yet).

    JournalError when the database cannot be reached or its schema is newer than this version.
    """
    from dropbox_importer.pipeline.journal import JournalError
    from dropbox_importer.pipeline.postgres import read_postgres

    if config.state.password is None and config.state.unreadable_password is not None:
        raise JournalError(
            f"the shared journal's password: {config.state.unreadable_password}; run this as "
            "root with CREDENTIALS_DIRECTORY=/etc/dropbox-importer/credentials (docs/install.md)"
        )
    journal = read_postgres(database_of(config))
    try:
        yield journal
    finally:
        if journal is not None:
            journal.close()


def check_journal(config: Config) -> tuple[str, bool] | None:
    """A line for `check` about a shared journal, and whether it names a problem.

    Read-only: the database is reached with the daemon's credentials, its server version and
    schema version read; nothing is created or migrated. None for a SQLite journal, which the
    daemon creates in state_dir and has nothing to check beforehand.
    """
    if not config.state.shared:
        return None
    from dropbox_importer.pipeline.journal import SCHEMA_VERSION, JournalError
    from dropbox_importer.pipeline.postgres import POSTGRESQL, connect

    database = database_of(config)
    try:
        conn = connect(database, purpose="check", read_only=True, reopen=False)
    except JournalError as exc:
        return f"journal: PROBLEM: {exc}", True
    try:
        server = (conn.raw.info.parameter_status("server_version") or "?").split()[0]
        version = POSTGRESQL.schema_version(conn)
        may_create = conn.execute(
            "SELECT has_schema_privilege(current_schema(), 'CREATE')"
        ).fetchone()[0]
    except JournalError as exc:
        return f"journal {database.display}: PROBLEM: {exc}", True
    finally:
        conn.close()
    where = f"journal {database.display} (PostgreSQL {server})"
    if version > SCHEMA_VERSION:
        return (
            f"{where}: PROBLEM: schema version {version} is newer than this version's "
            f"({SCHEMA_VERSION}); upgrade dropbox-importer on this host",
            True,
        )
    if version < SCHEMA_VERSION and not may_create:
        return (
            f"{where}: PROBLEM: schema version {version} needs migrating to {SCHEMA_VERSION} "
            "but this role may not create tables: GRANT CREATE ON SCHEMA to it, or make it "
            "the database's owner",
            True,
        )
    if version < SCHEMA_VERSION:
        state = "empty" if version == 0 else f"schema version {version}"
        return f"{where}: OK, {state}: the daemon migrates it to {SCHEMA_VERSION} at start", False
    return f"{where}: OK, schema version {version}", False
