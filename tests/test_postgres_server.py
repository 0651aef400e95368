"""The test PostgreSQL server: its own cluster, password authentication, a database per test."""

from __future__ import annotations

import psycopg
import pytest

from tests.postgres import DAEMON_ROLE, PostgresDatabase, PostgresServer


def test_each_test_gets_an_empty_database_the_daemon_role_owns(
    postgres_database: PostgresDatabase,
) -> None:
    password = postgres_database.password_file.read_text().strip()
    with psycopg.connect(postgres_database.url, password=password) as conn:
        user, superuser = conn.execute(
            "SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user"
        ).fetchone() or (None, None)
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
    assert (user, superuser) == (DAEMON_ROLE, False)
    assert tables == (0,)


def test_a_wrong_password_is_refused(
    postgres_server: PostgresServer, postgres_database: PostgresDatabase
) -> None:
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(postgres_database.url, password="not-the-password", connect_timeout=10)


def test_the_server_listens_on_loopback_only_with_its_own_port(
    postgres_server: PostgresServer,
) -> None:
    with postgres_server.admin() as conn:
        row = conn.execute(
            "SELECT current_setting('listen_addresses'), current_setting('port')"
        ).fetchone()
    assert row == ("127.0.0.1", str(postgres_server.port))
    assert postgres_server.port != 5432
