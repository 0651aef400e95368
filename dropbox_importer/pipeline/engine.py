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
    from dropbox_importer.pipeline.postgres import read_postgres

    journal = read_postgres(database_of(config))
    try:
        yield journal
    finally:
        if journal is not None:
            journal.close()
