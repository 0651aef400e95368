"""The SQL of the journal, written once for both engines: the interface and the dialect rules.

The journal's methods are written in SQLite's SQL against `Connection`, the part of
`sqlite3.Connection` they use: `execute` and `executemany` with `?` placeholders, cursors with
`rowcount`, `lastrowid`, `fetchone` and `fetchall`, rows read by column name or position. On
PostgreSQL, `postgres.PostgresConnection` offers the same interface and rewrites each statement
once (`to_postgres`, cached):

- `?` placeholders become psycopg's `%s` and a literal `%` becomes `%%` (quoted text keeps its `?`);
- `INSERT OR IGNORE` becomes `INSERT ... ON CONFLICT DO NOTHING`;
- `INSERT OR REPLACE` becomes an upsert on the table's primary key (every other column set);
- `IFNULL(` becomes `COALESCE(`;
- `x GLOB ?` becomes a regular-expression match of `x` against the pattern made a regex in SQL
  (`*` any text, `?` one character, `[...]` a class; case-sensitive, as GLOB is);
- `cursor.lastrowid` is the id the last INSERT took from its table's identity column.

Migrations go through `ddl_to_postgres`: `INTEGER PRIMARY KEY` becomes an identity column and
other `INTEGER`s become `BIGINT` (SQLite's integers are 64-bit), `REAL` becomes `DOUBLE
PRECISION` and `BLOB` becomes `BYTEA`. Anything else SQLite-only (PRAGMA, `rowid`, date
functions) has no translation: the journal tests run every method on both engines, so such SQL
fails there, loudly, rather than in production.

`Dialect` holds what cannot be rewritten statement by statement: how a write transaction
begins, how a row is locked against a concurrent epoch change, where the schema version lives.
"""

from __future__ import annotations

import functools
import re
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any, Protocol


class Row(Protocol):
    """A row read by column name or position: `sqlite3.Row`, or `postgres.Row`."""

    def __getitem__(self, key: int | str, /) -> Any:
        """The value of a column, by position or (case-insensitive) name."""
        ...

    def keys(self) -> list[str]:
        """The column names, in order."""
        ...


class Cursor(Protocol):
    """What the journal reads from a cursor."""

    @property
    def rowcount(self) -> int:
        """Rows the last UPDATE, DELETE or INSERT changed."""
        ...

    @property
    def lastrowid(self) -> int | None:
        """The id the last INSERT gave its row."""
        ...

    def fetchone(self) -> Any:
        """The next row, or None."""
        ...

    def fetchall(self) -> list[Any]:
        """Every row left."""
        ...


class Connection(Protocol):
    """What the journal asks of a connection: `sqlite3.Connection` as it is, or its PG twin."""

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor:
        """Run one statement with `?` placeholders."""
        ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor:
        """Run one statement once per parameter tuple."""
        ...

    @property
    def in_transaction(self) -> bool:
        """True while a transaction is open."""
        ...

    def close(self) -> None:
        """Close the connection."""
        ...


class Dialect:
    """SQLite: what differs between the engines beyond a statement's text."""

    name = "sqlite"
    # IMMEDIATE takes the write lock at once, so a check-then-set never meets a second writer.
    begin_write = "BEGIN IMMEDIATE"
    # A row read under this suffix cannot change until the transaction ends (SQLite's write
    # lock already covers the whole database).
    for_share = ""

    def schema_version(self, conn: Connection) -> int:
        """The schema version recorded in the database (0: empty)."""
        return int(conn.execute("PRAGMA user_version").fetchone()[0])

    def set_schema_version(self, conn: Connection, version: int) -> None:
        """Record the schema version, inside the migrating transaction."""
        conn.execute(f"PRAGMA user_version={int(version)}")

    def lock_migrations(self, conn: Connection) -> None:
        """Keep a second process from migrating at the same time (BEGIN IMMEDIATE does)."""

    def ddl(self, statement: str) -> str:
        """A migration statement in this engine's types."""
        return statement

    def is_error(self, exc: BaseException) -> bool:
        """True for this engine's database errors."""
        return isinstance(exc, sqlite3.Error)

    def has_table(self, conn: Connection, name: str) -> bool:
        """True if the database has this table (a read-only reader may meet an older schema)."""
        row = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
        ).fetchone()
        return row is not None


SQLITE = Dialect()

_QUOTED = re.compile(r"('(?:[^']|'')*'|\"(?:[^\"]|\"\")*\")")
_INSERT_OR = re.compile(r"^\s*INSERT\s+OR\s+(IGNORE|REPLACE)\s+INTO\s+", re.I)
_INSERT_COLUMNS = re.compile(r"^\s*INSERT\s+INTO\s+(\w+)\s*\(([^)]*)\)", re.I)


_GLOB = re.compile(r"\bGLOB\s+\?", re.I)
# The glob parameter made an anchored regex in SQL: regex metacharacters other than the glob's
# own escaped, then `*` -> `.*` and `?` -> `.` (the quoted '?' is a literal, not a placeholder).
_GLOB_AS_REGEX = (
    r"~ ('^' || replace(replace(regexp_replace(?, '([.+^$(){}|\\])', '\\\1', 'g'),"
    r" '*', '.*'), '?', '.') || '$')"
)


@functools.lru_cache(maxsize=512)
def to_postgres(sql: str, primary_keys: tuple[tuple[str, tuple[str, ...]], ...] = ()) -> str:
    """One statement in SQLite's SQL as psycopg runs it on PostgreSQL (see the module doc).

    `primary_keys` gives (table, key columns) for `INSERT OR REPLACE`; ValueError when the
    statement's table is not among them.
    """
    conflict = ""
    match = _INSERT_OR.match(sql)
    if match:
        verb = match.group(1).upper()
        sql = "INSERT INTO " + sql[match.end() :]
        conflict = " ON CONFLICT DO NOTHING"
        if verb == "REPLACE":
            conflict = _upsert(sql, dict(primary_keys))
    sql = _GLOB.sub(lambda _match: _GLOB_AS_REGEX, sql)
    # psycopg reads every `%` as a placeholder's start, inside quotes too; `?` is one only outside.
    pieces = _QUOTED.split(sql.replace("%", "%%"))
    for n in range(0, len(pieces), 2):  # even pieces are outside quotes
        text = pieces[n].replace("?", "%s")
        pieces[n] = re.sub(r"\bIFNULL\s*\(", "COALESCE(", text, flags=re.I)
    return "".join(pieces).rstrip().rstrip(";") + conflict


def _upsert(sql: str, primary_keys: dict[str, tuple[str, ...]]) -> str:
    match = _INSERT_COLUMNS.match(sql)
    if not match:
        raise ValueError(f"INSERT OR REPLACE needs a column list to translate: {sql}")
    table, columns = match.group(1).lower(), [c.strip() for c in match.group(2).split(",")]
    if table not in primary_keys:
        raise ValueError(f"INSERT OR REPLACE into {table}, which has no primary key")
    keys = primary_keys[table]
    others = [c for c in columns if c.lower() not in keys]
    if not others:
        return f" ON CONFLICT ({', '.join(keys)}) DO NOTHING"
    assignments = ", ".join(f"{c} = EXCLUDED.{c}" for c in others)
    return f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {assignments}"


_IDENTITY = "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
_TYPES = (
    (re.compile(r"\bINTEGER\s+PRIMARY\s+KEY\b", re.I), _IDENTITY),
    (re.compile(r"\bINTEGER\b", re.I), "BIGINT"),
    (re.compile(r"\bREAL\b", re.I), "DOUBLE PRECISION"),
    (re.compile(r"\bBLOB\b", re.I), "BYTEA"),
)


def ddl_to_postgres(statement: str) -> str:
    """A migration statement with SQLite's types as PostgreSQL's (see the module doc)."""
    pieces = _QUOTED.split(statement)
    for n in range(0, len(pieces), 2):
        text = pieces[n]
        # An identity column first; then the placeholder keeps the BIGINT rule off it.
        text = _TYPES[0][0].sub("\0", text)
        for pattern, replacement in _TYPES[1:]:
            text = pattern.sub(replacement, text)
        pieces[n] = text.replace("\0", _TYPES[0][1])
    return "".join(pieces)
