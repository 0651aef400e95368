"""The journal on PostgreSQL: connections, the dialect, and opening the shared journal.

`PostgresConnection` is `sql.Connection` over psycopg 3: autocommit (the journal says BEGIN and
COMMIT itself, as it does on SQLite), client-side binding (parameters are quoted into the text
by libpq, so SQLite-style SQL needs no type casts), rows readable by name or position. Every
statement is rewritten once by `sql.to_postgres`.

Secrets: the password is handed to libpq apart from the URL, and the URL a config may give is
refused if it carries one (config/build.py), so neither logs nor errors nor `status` can show
it; any error text is scrubbed of it all the same.

Every session commits synchronously (`synchronous_commit=on`, whatever the server's default), so a
write has reached the server's disk when the journal's call returns, as on SQLite. Sessions are
also told to end what a frozen process leaves behind: a transaction left open longer than
the lease is ended by the server (`idle_in_transaction_session_timeout`), which also ends the
share lock a paused leader's write holds on the epoch row. The leader's lock session is kept by
leadership.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
import structlog
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.pq import TransactionStatus

from dropbox_importer.pipeline.journal import (
    SCHEMA_VERSION,
    Journal,
    JournalError,
    JournalUnreachable,
    _now,
)
from dropbox_importer.pipeline.sql import Connection, Dialect, ddl_to_postgres, to_postgres

log = structlog.get_logger(__name__)

# idle_session_timeout, which ends a frozen leader's lock session, came with PostgreSQL 14.
MIN_SERVER_VERSION = 140000
# Serialises migrations of one database across hosts starting at once (pg_advisory_xact_lock).
MIGRATION_LOCK = 0x6462692D6D696772  # "dbi-migr"


@dataclass(frozen=True)
class Database:
    """Where the shared journal lives and how its sessions behave."""

    url: str  # postgresql://user@host:port/dbname, never with a password
    password: str | None = field(default=None, repr=False)
    lease_seconds: float = 15.0

    @property
    def display(self) -> str:
        """The URL as logs and `status` may show it."""
        return display_url(self.url)


def display_url(url: str) -> str:
    """`url` without any password (there should be none; this makes sure)."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://(unreadable URL)"
    user = f"{params['user']}@" if params.get("user") else ""
    host = params.get("host") or "localhost"
    port = f":{params['port']}" if params.get("port") else ""
    return f"postgresql://{user}{host}{port}/{params.get('dbname') or ''}"


def scrub(text: str, secret: str | None) -> str:
    """`text` with every occurrence of `secret` masked."""
    return text.replace(secret, "***") if secret else text


class Row:
    """One row, read by position or by (case-insensitive) column name, like `sqlite3.Row`."""

    __slots__ = ("_index", "_values")

    def __init__(self, values: Sequence[Any], index: dict[str, int]) -> None:
        self._values = tuple(values)
        self._index = index

    def __getitem__(self, key: int | str) -> Any:
        if isinstance(key, str):
            return self._values[self._index[key.lower()]]
        return self._values[key]

    def keys(self) -> list[str]:
        """The column names, in order."""
        return list(self._index)

    def __iter__(self) -> Any:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Row({dict(zip(self._index, self._values, strict=True))!r})"


def _row_factory(cursor: Any) -> Callable[[Sequence[Any]], Row]:
    names = [column.name.lower() for column in cursor.description or ()]
    index = {name: n for n, name in enumerate(names)}
    return lambda values: Row(values, index)


class PostgresCursor:
    """The answer to one statement: rows, rows changed, the id an INSERT took."""

    def __init__(
        self, cursor: psycopg.ClientCursor[Row] | None, owner: PostgresConnection, sql: str
    ) -> None:
        self._cursor = cursor  # None: a statement that had nothing to do
        self._owner = owner
        self._insert = sql.lstrip()[:6].upper() == "INSERT"

    @property
    def rowcount(self) -> int:
        """Rows the statement changed."""
        return -1 if self._cursor is None else self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        """The id the last INSERT took from its table's identity column (None otherwise)."""
        if not self._insert:
            return None
        row = self._owner.execute("SELECT lastval()").fetchone()
        return None if row is None else int(row[0])

    def fetchone(self) -> Any:
        """The next row, or None (also for statements that return none)."""
        if self._cursor is None or self._cursor.description is None:
            return None
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        """Every row left ([] for statements that return none)."""
        if self._cursor is None or self._cursor.description is None:
            return []
        return self._cursor.fetchall()


class PostgresConnection:
    """`sql.Connection` over one psycopg session (see the module doc).

    With `reopen`, a session the server ended (a restart, an administrator, a network fault) is
    replaced at the next statement that begins a unit of work; never in the middle of a
    transaction, which fails as a whole instead. The leader's lock session has no `reopen`: a new
    session would not hold the lock.
    """

    def __init__(
        self,
        conn: psycopg.Connection[Row],
        database: Database,
        reopen: Callable[[], psycopg.Connection[Row]] | None = None,
    ) -> None:
        self._conn = conn
        self._database = database
        self._reopen = reopen
        self._in_transaction = False
        self._primary_keys: tuple[tuple[str, tuple[str, ...]], ...] | None = None

    @property
    def raw(self) -> psycopg.Connection[Row]:
        """The psycopg connection underneath."""
        return self._conn

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> PostgresCursor:
        """Run one statement written with `?` placeholders."""
        verb = sql.lstrip()[:8].split(" ")[0].upper()
        if self._conn.closed:
            if verb == "ROLLBACK":  # the server ended the session and the transaction with it
                self._in_transaction = False
                return PostgresCursor(None, self, sql)
            self._replace_session()
        try:
            cursor = self._run(sql, parameters)
        except psycopg.Error as exc:
            # A session found dead by this statement: when nothing could have been half done
            # (a BEGIN, a read outside a transaction), try once more on a new session.
            retry = verb in ("BEGIN", "SELECT") and not self._in_transaction
            if not (retry and self._conn.closed and self._reopen is not None):
                raise self._error(exc) from exc
            self._replace_session()
            try:
                cursor = self._run(sql, parameters)
            except psycopg.Error as again:
                raise self._error(again) from again
        if verb == "BEGIN":
            self._in_transaction = True
        elif verb in ("COMMIT", "ROLLBACK"):
            self._in_transaction = False
        return PostgresCursor(cursor, self, sql)

    def _run(self, sql: str, parameters: Sequence[Any]) -> psycopg.ClientCursor[Row]:
        cursor = self._conn.cursor()
        cursor.execute(self._translate(sql), tuple(parameters))
        return cursor  # type: ignore[return-value]

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> PostgresCursor:
        """Run one statement once per parameter tuple."""
        if self._conn.closed:
            self._replace_session()
        try:
            cursor = self._conn.cursor()
            cursor.executemany(self._translate(sql), [tuple(p) for p in parameters])
        except psycopg.Error as exc:
            raise self._error(exc) from exc
        return PostgresCursor(cursor, self, sql)  # type: ignore[arg-type]

    @property
    def in_transaction(self) -> bool:
        """True while a transaction is open (or failed and not yet rolled back)."""
        if self._conn.closed:
            return self._in_transaction
        return self._conn.info.transaction_status != TransactionStatus.IDLE

    def close(self) -> None:
        """Close the session; the server ends anything it held."""
        self._conn.close()

    def _replace_session(self) -> None:
        if self._in_transaction:
            raise JournalError(
                f"the session with the journal database {self._database.display} ended in the "
                "middle of a transaction; none of it was committed"
            )
        if self._reopen is None:
            raise JournalError(
                f"the session with the journal database {self._database.display} has ended"
            )
        self._conn = self._reopen()
        log.warning("journal_session_replaced", database=self._database.display)

    def _translate(self, sql: str) -> str:
        if " OR REPLACE " in sql.upper()[:40] and self._primary_keys is None:
            self._primary_keys = self._load_primary_keys()
        return to_postgres(sql, self._primary_keys or ())

    def _load_primary_keys(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        rows = self._conn.execute(
            "SELECT c.relname, array_agg(a.attname ORDER BY k.n) FROM pg_index i"
            " JOIN pg_class c ON c.oid = i.indrelid"
            " JOIN pg_namespace s ON s.oid = c.relnamespace AND s.nspname = current_schema()"
            " CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)"
            " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum"
            " WHERE i.indisprimary GROUP BY c.relname"
        ).fetchall()
        return tuple((str(row[0]), tuple(row[1])) for row in rows)

    def _error(self, exc: psycopg.Error) -> JournalError:
        message = scrub(str(exc).strip(), self._database.password)
        return JournalError(f"the journal database {self._database.display} failed: {message}")


class PostgresDialect(Dialect):
    """PostgreSQL: READ COMMITTED writes, the epoch row locked FOR SHARE, a version table."""

    name = "postgresql"
    # One writer at a time is the leadership's doing (the fenced epoch), not the isolation level's.
    begin_write = "BEGIN"
    for_share = " FOR SHARE"

    def schema_version(self, conn: Connection) -> int:
        """The version in `journal_schema` (0 when the database is empty)."""
        found = conn.execute("SELECT to_regclass('journal_schema') IS NOT NULL").fetchone()[0]
        if not found:
            return 0
        row = conn.execute("SELECT version FROM journal_schema").fetchone()
        return 0 if row is None else int(row[0])

    def set_schema_version(self, conn: Connection, version: int) -> None:
        """Record the version (creating its one-row table on the first migration)."""
        conn.execute(
            "CREATE TABLE IF NOT EXISTS journal_schema (singleton BOOLEAN PRIMARY KEY"
            " DEFAULT TRUE CHECK (singleton), version BIGINT NOT NULL)"
        )
        conn.execute(
            "INSERT INTO journal_schema (singleton, version) VALUES (TRUE, ?)"
            " ON CONFLICT (singleton) DO UPDATE SET version = excluded.version",
            (version,),
        )

    def has_table(self, conn: Connection, name: str) -> bool:
        """True if the journal's schema has this table."""
        return bool(conn.execute("SELECT to_regclass(?) IS NOT NULL", (name,)).fetchone()[0])

    def lock_migrations(self, conn: Connection) -> None:
        """Hosts starting at once migrate one after the other (until the transaction ends)."""
        conn.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))

    def ddl(self, statement: str) -> str:
        """SQLite's column types as PostgreSQL's."""
        return ddl_to_postgres(statement)

    def is_error(self, exc: BaseException) -> bool:
        """True for database errors (wrapped as JournalError by PostgresConnection)."""
        return isinstance(exc, JournalError | psycopg.Error)


POSTGRESQL = PostgresDialect()


def connect(
    database: Database,
    *,
    purpose: str,
    read_only: bool = False,
    settings: dict[str, str] | None = None,
    reopen: bool = True,
) -> PostgresConnection:
    """A new session on the journal's database; JournalError (password-free) when it fails.

    `purpose` names the session in `pg_stat_activity`; `settings` are server parameters for
    the session (such as idle_session_timeout); `reopen` lets the connection replace a session
    the server ended. TCP keepalives and a user timeout as long as the lease make a dead
    network fail calls instead of hanging them.
    """

    def session() -> psycopg.Connection[Row]:
        return _session(database, purpose, read_only, settings or {})

    return PostgresConnection(session(), database, session if reopen else None)


def _session(
    database: Database, purpose: str, read_only: bool, settings: dict[str, str]
) -> psycopg.Connection[Row]:
    lease = database.lease_seconds
    options = {
        # A commit has reached the server's disk when it returns, whatever the server's default:
        # the same guarantee as SQLite's synchronous=FULL.
        "synchronous_commit": "on",
        "idle_in_transaction_session_timeout": f"{int(lease * 1000)}ms",
        **settings,
    }
    if read_only:
        options["default_transaction_read_only"] = "on"
    given = conninfo_to_dict(database.url)
    extra_options = " ".join(f"-c {key}={value}" for key, value in options.items())
    conninfo = make_conninfo(
        database.url,
        application_name=f"dropbox-importer {purpose}",
        connect_timeout=max(2, int(lease)),
        keepalives=1,
        keepalives_idle=max(1, int(lease / 3)),
        keepalives_interval=max(1, int(lease / 6)),
        keepalives_count=3,
        tcp_user_timeout=int(lease * 1000),
        options=f"{given.get('options', '')} {extra_options}".strip(),
    )
    try:
        conn: psycopg.Connection[Row] = psycopg.Connection.connect(
            conninfo,
            password=database.password,
            autocommit=True,
            cursor_factory=psycopg.ClientCursor,
            row_factory=_row_factory,
        )
    except psycopg.Error as exc:
        message = scrub(str(exc).strip(), database.password)
        raise JournalUnreachable(
            f"cannot connect to the journal database {database.display}: {message}; check "
            "state.journal, the password file and that the server accepts this host"
        ) from None
    if conn.info.server_version < MIN_SERVER_VERSION:
        version = conn.info.parameter_status("server_version")
        conn.close()
        raise JournalError(
            f"the journal database {database.display} runs PostgreSQL "
            f"{version or '?'}; 14 or later is needed"
        )
    return conn


def open_postgres(database: Database, *, clock: Callable[[], datetime] = _now) -> Journal:
    """The shared journal on PostgreSQL, created or migrated to this version's schema."""
    conn = connect(database, purpose="journal")
    return Journal.over(conn, database.display, POSTGRESQL, clock=clock)


def read_postgres(database: Database, *, clock: Callable[[], datetime] = _now) -> Journal | None:
    """The shared journal opened read-only, for `status` and `check`; None if still empty.

    Nothing is created or migrated; JournalError for a schema newer than this version knows.
    """
    conn = connect(database, purpose="status", read_only=True)
    try:
        version = POSTGRESQL.schema_version(conn)
    except BaseException:
        conn.close()
        raise
    if version == 0:
        conn.close()
        return None
    if version > SCHEMA_VERSION:
        conn.close()
        raise JournalError(
            f"the journal {database.display} has schema version {version}, newer than this "
            f"version understands ({SCHEMA_VERSION}); run the newer dropbox-importer"
        )
    return Journal(conn, database.display, clock, POSTGRESQL)
